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
    ("vit", "llama", "decoders gpt2/trocr/bart/mbart/bert/roberta"),
    ("clip_vision_model", "gpt2", "encoders vit/deit/beit/swin"),
])
def test_unsupported_family_is_one_line(tmp_path, enc, dec, why):
    with pytest.raises(export.CheckpointError) as e:
        export.check_checkpoint(_ckpt(tmp_path, enc, dec))
    assert why in str(e.value) and "\n" not in str(e.value)


def test_families_cover_every_tokenizer_kind():
    assert {v[2] for v in families.FAMILIES.values()} >= {"bpe", "wordpiece", "unigram"}
    assert {v[0] for v in families.FAMILIES.values()} == set(export.ENCODERS)
    # BART has no fixture of its own: mBART's decoder is the same code path (BartLike config, same contract).
    assert {v[1] for v in families.FAMILIES.values()} == set(export.DECODER_TASK) - {"bart"}


def test_bart_export_view_aligns_the_unused_encoder_fields(tmp_path):
    # optimum sizes its dummy cache by a BART decoder's (unused) encoder fields; the view aligns them.
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    dec = {"model_type": "mbart", "decoder_layers": 4, "decoder_attention_heads": 8, "encoder_layers": 12,
           "encoder_attention_heads": 16, "num_hidden_layers": 12}
    cfg = {"model_type": "vision-encoder-decoder", "encoder": {"model_type": "swin"}, "decoder": dec}
    (ckpt / "config.json").write_text(json.dumps(cfg))
    (ckpt / "model.safetensors").write_bytes(b"weights")
    view = export.bart_export_view(str(ckpt), cfg, str(tmp_path / "view"))
    got = json.load(open(os.path.join(view, "config.json")))["decoder"]
    assert (got["encoder_layers"], got["encoder_attention_heads"], got["num_hidden_layers"]) == (4, 8, 4)
    assert got["decoder_layers"] == 4 and open(os.path.join(view, "model.safetensors"), "rb").read() == b"weights"
    aligned = dict(cfg, decoder=dict(dec, encoder_layers=4, encoder_attention_heads=8, num_hidden_layers=4))
    assert export.bart_export_view(str(ckpt), aligned, str(tmp_path / "v2")) == str(ckpt)
