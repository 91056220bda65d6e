"""The committed tiny fixture: ONNX export == PyTorch within 1e-4; golden file still matches generate()."""
import json
import os

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from conftest import REPO

TINY = os.path.join(REPO, "testdata/models/tiny-vit-gpt2")
TINY_PT = os.path.join(REPO, "testdata/models/tiny-vit-gpt2-pytorch")
GOLDEN = os.path.join(REPO, "testdata/golden/tiny-vit-gpt2.json")


def onnx_vs_torch(onnx_dir, model, pixel_values, steps=3, atol=1e-4):
    """Runs encoder + merged decoder (no cache at step 0, cache after) and compares with PyTorch."""
    enc_s = ort.InferenceSession(os.path.join(onnx_dir, "encoder_model.onnx"))
    dec_s = ort.InferenceSession(os.path.join(onnx_dir, "decoder_model_merged.onnx"))
    with torch.no_grad():
        enc_t = model.encoder(pixel_values=pixel_values).last_hidden_state.numpy()
    enc_o = enc_s.run(None, {"pixel_values": pixel_values.numpy()})[0]
    np.testing.assert_allclose(enc_o, enc_t, atol=atol, rtol=0)
    cfg = model.config.decoder
    B = pixel_values.shape[0]
    hd = cfg.n_embd // cfg.n_head
    past = {f"past_key_values.{i}.{kv}": np.zeros((B, cfg.n_head, 0, hd), np.float32)
            for i in range(cfg.n_layer) for kv in ("key", "value")}
    ids = np.full((B, 1), model.config.decoder_start_token_id, np.int64)
    seq = ids
    names = [o.name for o in dec_s.get_outputs()]
    for step in range(steps):
        feeds = {"input_ids": ids, "encoder_hidden_states": enc_o, "use_cache_branch": np.array([step > 0]), **past}
        outs = dict(zip(names, dec_s.run(None, feeds)))
        with torch.no_grad():
            ref = model.decoder(input_ids=torch.from_numpy(seq), encoder_hidden_states=torch.from_numpy(enc_t)).logits[:, -1].numpy()
        np.testing.assert_allclose(outs["logits"][:, -1], ref, atol=atol, rtol=0)
        nxt = outs["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)
        seq = np.concatenate([seq, nxt], 1)
        ids = nxt
        past = {k.replace("present", "past_key_values"): v for k, v in outs.items() if k.startswith("present")}
        assert past["past_key_values.0.key"].shape[2] == step + 1
    return enc_o


def test_tiny_onnx_matches_pytorch():
    from transformers import VisionEncoderDecoderModel

    model = VisionEncoderDecoderModel.from_pretrained(TINY_PT).eval()
    g = torch.Generator().manual_seed(0)
    pv = torch.randn(2, 3, 32, 32, generator=g)
    onnx_vs_torch(TINY, model, pv, steps=5)


def test_tiny_layout_is_public_vit_gpt2_layout():
    for f in ["encoder_model.onnx", "decoder_model_merged.onnx", "config.json", "generation_config.json",
              "preprocessor_config.json", "tokenizer.json"]:
        assert os.path.isfile(os.path.join(TINY, f)), f
    dec = ort.InferenceSession(os.path.join(TINY, "decoder_model_merged.onnx"))
    ins = {i.name for i in dec.get_inputs()}
    assert {"input_ids", "encoder_hidden_states", "use_cache_branch", "past_key_values.0.key"} <= ins
    gc = json.load(open(os.path.join(TINY, "generation_config.json")))
    assert gc["max_length"] == 20 and gc["decoder_start_token_id"] == 0


def test_golden_matches_generate():
    """The committed golden file agrees with generate() on the committed checkpoint (catches stale goldens)."""
    from transformers import ViTImageProcessor, VisionEncoderDecoderModel

    doc = json.load(open(GOLDEN))
    model = VisionEncoderDecoderModel.from_pretrained(TINY_PT).eval()
    proc = ViTImageProcessor.from_pretrained(TINY, use_fast=False)
    base = os.path.dirname(GOLDEN)
    for im in doc["images"][:2]:
        img = Image.open(os.path.join(base, im["file"])).convert("RGB")
        pv = proc(images=img, return_tensors="pt").pixel_values
        raw = np.fromfile(os.path.join(base, im["pixel_values"]["file"]), dtype="<f4").reshape(im["pixel_values"]["shape"])
        np.testing.assert_array_equal(raw, pv.numpy())
        for case in im["cases"]:
            out = model.generate(pixel_values=pv, **case["kwargs"])
            assert out.tolist() == case["sequences"], (im["name"], case["name"])


def test_preprocessing_matches_vit_image_processor():
    from transformers import ViTImageProcessor
    from lookout_train import data as D

    proc = ViTImageProcessor.from_pretrained(TINY, use_fast=False)
    for name in sorted(os.listdir(os.path.join(REPO, "testdata/golden/images"))):
        img = Image.open(os.path.join(REPO, "testdata/golden/images", name))
        ref = proc(images=img.convert("RGB"), return_tensors="pt").pixel_values
        ours = D.normalize(torch.from_numpy(D.resize_u8(img, 32)[None]))
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-6, rtol=0)


DEMO = os.path.join(REPO, "models/demo")


def test_demo_bundle_layout_size_and_captions():
    """The shipped bundle: complete, <= 25 MB, attribute heads consistent, right captions on the golden frames."""
    from lookout_train.evaluate import OrtCaptioner
    from lookout_train import data as D

    need = ["encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx", "config.json", "generation_config.json",
            "preprocessor_config.json", "tokenizer.json", "attributes_model.onnx", "attributes.json", "MODEL.md"]
    for f in need:
        assert os.path.isfile(os.path.join(DEMO, f)), f
    # shipped in the fast layout (split + ONNX Runtime's fusions); a merged file would take precedence in the engine
    assert not os.path.exists(os.path.join(DEMO, "decoder_model_merged.onnx"))
    total = sum(os.path.getsize(os.path.join(DEMO, f)) for f in os.listdir(DEMO))
    assert total <= 25 * 1024 * 1024
    meta = json.load(open(os.path.join(DEMO, "attributes.json")))
    s = ort.InferenceSession(os.path.join(DEMO, "attributes_model.onnx"))
    assert [o.name for o in s.get_outputs()] == [a["output"] for a in meta["attributes"]]
    frames = os.path.join(REPO, "testdata/golden/frames")
    truth = json.load(open(os.path.join(frames, "truth.json")))["captions"]
    cap = OrtCaptioner(DEMO)
    names = sorted(truth)
    px = np.stack([D.resize_u8(Image.open(os.path.join(frames, n)), cap.size) for n in names])
    assert cap.caption_u8(px) == [truth[n] for n in names]
    # attribute heads on the same frames: probabilities, and the domain head agrees with the truth
    enc = ort.InferenceSession(os.path.join(DEMO, "encoder_model.onnx"))
    h = enc.run(None, {"pixel_values": D.normalize(torch.from_numpy(px)).numpy()})[0]
    probs = s.run(None, {"last_hidden_state": h})
    np.testing.assert_allclose(probs[0].sum(-1), 1.0, atol=1e-5)
    doms = [meta["attributes"][0]["classes"][i] for i in probs[0].argmax(-1)]
    assert doms == [n.split("_")[0] for n in names]
