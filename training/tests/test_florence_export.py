"""The committed tiny Florence-2 fixture: its four ONNX graphs chained as Transformers.js chains them
give PyTorch's logits (batch 2, steps 0..3 with the KV cache), and the golden file's greedy <OD> ids still
come out of generate()."""
import json
import os

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

from conftest import REPO
from lookout_train.florence import processor

FIX = os.path.join(REPO, "testdata/models/tiny-florence2")
GOLDEN = os.path.join(REPO, "testdata/golden/tiny-florence2.json")


def _sessions():
    return {n: ort.InferenceSession(os.path.join(FIX, "onnx", n + ".onnx"))
            for n in ("vision_encoder", "embed_tokens", "encoder_model", "decoder_model_merged")}


def test_onnx_chain_matches_torch():
    from transformers import Florence2ForConditionalGeneration

    m = Florence2ForConditionalGeneration.from_pretrained(os.path.join(FIX, "pytorch"), attn_implementation="eager").eval()
    proc = processor(FIX)
    ims = [Image.open(os.path.join(REPO, "testdata/golden/images", f)).convert("RGB")
           for f in ("shapes_96x54.png", "gradient_64x64.png")]
    enc = proc(images=ims, text=["<OD>", "<OD>"], return_tensors="pt")
    s = _sessions()
    feat = s["vision_encoder"].run(None, {"pixel_values": enc.pixel_values.numpy()})[0]
    ids = enc.input_ids[:, feat.shape[1]:].numpy()
    emb = s["embed_tokens"].run(None, {"input_ids": ids})[0]
    x = np.concatenate([feat, emb], 1)
    mask = np.ones(x.shape[:2], np.int64)
    h = s["encoder_model"].run(None, {"inputs_embeds": x, "attention_mask": mask})[0]
    with torch.no_grad():
        h_t = m.get_encoder()(inputs_embeds=m.get_input_embeddings()(enc.input_ids).masked_scatter(
            (enc.input_ids == m.config.image_token_id)[..., None].expand(-1, -1, x.shape[-1]),
            m.get_image_features(enc.pixel_values)), attention_mask=enc.attention_mask).last_hidden_state.numpy()
    np.testing.assert_allclose(h, h_t, atol=1e-4, rtol=0)
    tc = m.config.text_config
    hd = tc.d_model // tc.decoder_attention_heads
    dec = s["decoder_model_merged"]
    names = [o.name for o in dec.get_outputs()]
    past = {f"past_key_values.{i}.{p}.{kv}": np.zeros((2, tc.decoder_attention_heads, 0, hd), np.float32)
            for i in range(tc.decoder_layers) for p in ("decoder", "encoder") for kv in ("key", "value")}
    seq = np.full((2, 1), 2, np.int64)
    for step in range(4):
        e = s["embed_tokens"].run(None, {"input_ids": seq[:, -1:]})[0]
        outs = dict(zip(names, dec.run(None, {"inputs_embeds": e, "encoder_attention_mask": mask, "encoder_hidden_states": h,
                                             "use_cache_branch": np.array([step > 0]), **past})))
        with torch.no_grad():
            ref = m.lm_head(m.get_decoder()(input_ids=torch.from_numpy(seq), encoder_hidden_states=torch.from_numpy(h_t),
                                            encoder_attention_mask=enc.attention_mask).last_hidden_state)[:, -1].numpy()
        np.testing.assert_allclose(outs["logits"][:, -1], ref, atol=1e-4, rtol=0)
        for n, v in outs.items():
            if n.startswith("present.") and (".decoder." in n or step == 0):
                past[n.replace("present.", "past_key_values.")] = v
        seq = np.concatenate([seq, outs["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)], 1)


def test_golden_greedy_od_still_matches():
    from transformers import Florence2ForConditionalGeneration

    g = json.load(open(GOLDEN))
    m = Florence2ForConditionalGeneration.from_pretrained(os.path.join(FIX, "pytorch"), attn_implementation="eager").eval()
    proc = processor(FIX)
    im = g["images"][1]
    img = Image.open(os.path.join(REPO, "testdata/golden", im["file"])).convert("RGB")
    task = next(t for t in im["tasks"] if t["task"] == "<OD>")
    case = next(c for c in task["cases"] if c["name"] == "greedy")
    with torch.no_grad():
        seq = m.generate(**proc(images=img, text="<OD>", return_tensors="pt"), do_sample=False, **case["kwargs"])
    assert seq[0].tolist() == case["ids"]
