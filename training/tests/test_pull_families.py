"""model pull's Python side (hub download) and the export's family checks, without the Go binary."""
import json
import os

import pytest

from lookout_train import export, families, hub


def test_hub_offline_is_one_line(tmp_path):
    # No network here: huggingface_hub cannot reach the hub; the message names the id and what to do.
    with pytest.raises(hub.HubError) as e:
        hub.pull("no-such-owner/no-such-model", str(tmp_path / "dl"))
    msg = str(e.value)
    assert "\n" not in msg
    assert "hub id no-such-owner/no-such-model" in msg and "cannot reach huggingface.co" in msg
    assert "copy the folder here" in msg


def _ckpt(tmp_path, enc, dec):
    d = tmp_path / f"{enc}-{dec}"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "vision-encoder-decoder",
                                               "encoder": {"model_type": enc}, "decoder": {"model_type": dec}}))
    (d / "model.safetensors").write_bytes(b"")
    return str(d)


@pytest.mark.parametrize("enc,dec", [(e, d) for e in export.ENCODERS for d in export.DECODER_TASK])
def test_every_family_pair_passes_the_check(tmp_path, enc, dec):
    assert export.check_checkpoint(_ckpt(tmp_path, enc, dec))["decoder"]["model_type"] == dec


@pytest.mark.parametrize("enc,dec,why", [
    ("donut-swin", "mbart", "encoder/decoder donut-swin/mbart is not supported"),
    ("vit", "mbart", "IndexError in cache_utils"),
    ("vit", "bart", "IndexError in cache_utils"),
    ("vit", "llama", "decoders gpt2/trocr/bert/roberta"),
])
def test_unsupported_family_is_one_line(tmp_path, enc, dec, why):
    with pytest.raises(export.CheckpointError) as e:
        export.check_checkpoint(_ckpt(tmp_path, enc, dec))
    assert why in str(e.value) and "\n" not in str(e.value)


def test_families_cover_every_tokenizer_kind():
    assert {v[2] for v in families.FAMILIES.values()} >= {"bpe", "wordpiece", "unigram"}
    assert {v[0] for v in families.FAMILIES.values()} == set(export.ENCODERS)
    assert {v[1] for v in families.FAMILIES.values()} == set(export.DECODER_TASK)
