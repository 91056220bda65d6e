"""Golden generate() outputs for the Go inference engine.

Usage:
  python -m lookout_train.golden images --out testdata/golden/images          # (re)draw the fixed PNGs
  python -m lookout_train.golden run --model testdata/models/tiny-vit-gpt2 --name tiny-vit-gpt2 \
      --images testdata/golden/images --out testdata/golden
Writes OUT/<name>.json and OUT/pixel_values/<name>/<image>.f32 (raw float32 little-endian, C order,
shape [1,3,H,W] as given in the JSON). The reference is PyTorch transformers generate() on the PyTorch
checkpoint the export came from (--ckpt; an ONNX folder holds no PyTorch weights). Preprocessing: ViTImageProcessor.from_pretrained(model, use_fast=False) on PIL RGB images.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

# Generation cases. Every case lists its kwargs explicitly (max_length or max_new_tokens always given).
def cases(max_length: int) -> list[dict]:
    L = max_length
    return [
        {"name": "greedy", "kwargs": {"num_beams": 1, "do_sample": False, "max_length": L}},
        {"name": "beam3_lp0.6", "kwargs": {"num_beams": 3, "length_penalty": 0.6, "early_stopping": False, "do_sample": False, "max_length": L}},
        {"name": "beam3_lp0.6_early", "kwargs": {"num_beams": 3, "length_penalty": 0.6, "early_stopping": True, "do_sample": False, "max_length": L}},
        {"name": "beam3_lp0.6_never", "kwargs": {"num_beams": 3, "length_penalty": 0.6, "early_stopping": "never", "do_sample": False, "max_length": L}},
        {"name": "beam3_lp1.5", "kwargs": {"num_beams": 3, "length_penalty": 1.5, "early_stopping": False, "do_sample": False, "max_length": L}},
        {"name": "beam3_ret2", "kwargs": {"num_beams": 3, "length_penalty": 0.6, "num_return_sequences": 2, "early_stopping": False, "do_sample": False, "max_length": L}},
        {"name": "no_repeat_ngram2", "kwargs": {"num_beams": 1, "no_repeat_ngram_size": 2, "do_sample": False, "max_length": L}},
        {"name": "beam3_no_repeat_ngram2", "kwargs": {"num_beams": 3, "no_repeat_ngram_size": 2, "length_penalty": 0.6, "do_sample": False, "max_length": L}},
        {"name": "repetition_penalty1.3", "kwargs": {"num_beams": 1, "repetition_penalty": 1.3, "do_sample": False, "max_length": L}},
        {"name": "max_new_tokens5", "kwargs": {"num_beams": 1, "max_new_tokens": 5, "do_sample": False}},
        {"name": "min_length14", "kwargs": {"num_beams": 1, "min_length": 14, "do_sample": False, "max_length": L}},
    ]


def draw_images(out: str) -> list[str]:
    """Draws the fixed procedural test images (deterministic) and returns their paths."""
    os.makedirs(out, exist_ok=True)
    paths = []
    # 1: 64x64 RGB gradient
    y, x = np.mgrid[0:64, 0:64]
    a = np.stack([x * 4, y * 4, (x + y) * 2], -1).clip(0, 255).astype(np.uint8)
    paths.append(_save(Image.fromarray(a), out, "gradient_64x64.png"))
    # 2: 96x54 (16:9) shapes: sky, road, a red box on the left, a blue box on the right
    im = Image.new("RGB", (96, 54), (120, 170, 230))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 27, 95, 53], fill=(70, 70, 70))
    d.polygon([(46, 27), (50, 27), (56, 53), (40, 53)], fill=(240, 240, 240))
    d.rectangle([8, 34, 30, 48], fill=(220, 30, 30))
    d.ellipse([64, 30, 86, 50], fill=(30, 60, 220))
    paths.append(_save(im, out, "shapes_96x54.png"))
    # 3: 40x72 portrait stripes
    im = Image.new("RGB", (40, 72), (10, 10, 10))
    d = ImageDraw.Draw(im)
    for i in range(0, 72, 8):
        d.rectangle([0, i, 39, i + 3], fill=(250, 200 - 2 * i, 40 + 3 * i))
    paths.append(_save(im, out, "stripes_40x72.png"))
    # 4: 33x29 seeded noise (upscaled by the processor)
    rng = np.random.default_rng(1234)
    paths.append(_save(Image.fromarray(rng.integers(0, 256, (29, 33, 3), dtype=np.uint8)), out, "noise_33x29.png"))
    return paths


def _save(im: Image.Image, out: str, name: str) -> str:
    p = os.path.join(out, name)
    im.save(p, optimize=False)
    return p


def _f(x) -> float:
    return float(np.float32(x))


def _stats(a: np.ndarray, first: int = 16) -> dict:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return {
        "shape": list(a.shape),
        "sha256": hashlib.sha256(a.astype("<f4").tobytes()).hexdigest(),
        "mean": _f(a.mean(dtype=np.float64)),
        "sum": _f(a.sum(dtype=np.float64)),
        "min": _f(a.min()),
        "max": _f(a.max()),
        "first": [_f(v) for v in a.reshape(-1)[:first]],
    }


def run(model_dir: str, ckpt: str, name: str, image_paths: list[str], out: str) -> str:
    import torch
    import transformers
    from transformers import AutoTokenizer, ViTImageProcessor, VisionEncoderDecoderModel

    torch.manual_seed(0)
    proc = ViTImageProcessor.from_pretrained(model_dir, use_fast=False)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if ckpt:
        model = VisionEncoderDecoderModel.from_pretrained(ckpt).eval()
        reference = "pytorch"
        encode = lambda pv: model.encoder(pixel_values=pv).last_hidden_state
        first_logits = lambda enc, start: model.decoder(input_ids=start, encoder_hidden_states=enc).logits[0, -1].numpy()
    else:
        from optimum.onnxruntime import ORTModelForVision2Seq

        model = ORTModelForVision2Seq.from_pretrained(model_dir, use_cache=True)
        reference = "onnxruntime"
        encode = lambda pv: model.encoder(pixel_values=pv).last_hidden_state
        first_logits = lambda enc, start: model.decoder(input_ids=start, encoder_hidden_states=enc).logits[0, -1].numpy()
    gc = model.generation_config
    max_length = int(gc.max_length or 20)
    pv_dir = os.path.join(out, "pixel_values", name)
    os.makedirs(pv_dir, exist_ok=True)

    def rel(p):
        return os.path.relpath(os.path.abspath(p), os.path.abspath(out))

    doc = {
        "format": "lookout-golden/1",
        "model": name,
        "model_dir": model_dir,
        "reference": reference,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "decoder_start_token_id": int(model.config.decoder_start_token_id),
        "eos_token_id": int(gc.eos_token_id),
        "pad_token_id": int(gc.pad_token_id),
        "vocab_size": int(model.config.decoder.vocab_size),
        "generation_config_max_length": max_length,
        "sequences_include_decoder_start": True,
        "pixel_values_format": "raw float32 little-endian, C order [1,3,H,W]; path relative to this JSON",
        "images": [],
    }
    all_pv = []
    with torch.no_grad():
        for path in image_paths:
            img = Image.open(path).convert("RGB")
            pv = proc(images=img, return_tensors="pt").pixel_values
            all_pv.append(pv)
            iname = os.path.splitext(os.path.basename(path))[0]
            pv_path = os.path.join(pv_dir, iname + ".f32")
            pv.numpy().astype("<f4").tofile(pv_path)
            enc = encode(pv)
            start = torch.tensor([[model.config.decoder_start_token_id]])
            logits = first_logits(enc, start)
            enc = enc.detach()
            truth_p = os.path.join(os.path.dirname(path), "truth.json")
            truth = json.load(open(truth_p))["captions"].get(os.path.basename(path)) if os.path.isfile(truth_p) else None
            entry = {
                "name": iname,
                "truth_caption": truth,
                "file": rel(path),
                "width": img.width,
                "height": img.height,
                "pixel_values": {"file": rel(pv_path), **_stats(pv.numpy())},
                "encoder_last_hidden_state": _stats(enc.numpy()),
                "first_step_logits": {
                    "first16": [_f(v) for v in logits[:16]],
                    "all": [_f(v) for v in logits],
                    "sum": _f(logits.sum(dtype=np.float64)),
                    "argmax": int(logits.argmax()),
                    "max": _f(logits.max()),
                },
                "cases": [],
            }
            for c in cases(max_length):
                r = model.generate(pixel_values=pv, return_dict_in_generate=True, output_scores=True, **c["kwargs"])
                seqs = r.sequences.tolist()
                e = {
                    "name": c["name"],
                    "kwargs": c["kwargs"],
                    "sequences": seqs,
                    "texts": [t.strip() for t in tok.batch_decode(r.sequences, skip_special_tokens=True)],
                }
                if getattr(r, "sequences_scores", None) is not None:
                    e["sequences_scores"] = [_f(v) for v in r.sequences_scores.tolist()]
                entry["cases"].append(e)
            doc["images"].append(entry)
        # batch: all images in one greedy generate call
        batch = torch.cat(all_pv, 0)
        kw = cases(max_length)[0]["kwargs"]
        r = model.generate(pixel_values=batch, **kw)
        seqs = r.tolist()
        singles = [im["cases"][0]["sequences"][0] for im in doc["images"]]

        def trim(s):
            # drop trailing pads added for rows that finished early (keep the first eos)
            s = list(s)
            pad = doc["pad_token_id"]
            while len(s) > 1 and s[-1] == pad and s[-2] == pad:
                s.pop()
            return s

        doc["batch"] = {
            "case": "greedy",
            "kwargs": kw,
            "images": [im["name"] for im in doc["images"]],
            "sequences": seqs,
            "texts": [t.strip() for t in tok.batch_decode(r, skip_special_tokens=True)],
            "note": "rows that finish early are padded with pad_token_id to the longest row",
            "equal_to_single": all(trim(a) == trim(b) for a, b in zip(seqs, singles)),
        }
    os.makedirs(out, exist_ok=True)
    dst = os.path.join(out, name + ".json")
    with open(dst, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return dst


def main(argv=None):
    ap = argparse.ArgumentParser(description="golden generate() outputs for the Go engine")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a1 = sub.add_parser("images")
    a1.add_argument("--out", default="testdata/golden/images")
    a2 = sub.add_parser("run")
    a2.add_argument("--model", required=True, help="exported model folder (processor, tokenizer)")
    a2.add_argument("--ckpt", default=None, help="PyTorch checkpoint folder the export came from (default: ONNX Runtime reference)")
    a2.add_argument("--name", required=True)
    a2.add_argument("--images", default="testdata/golden/images", help="folder of PNGs (sorted) or comma list")
    a2.add_argument("--out", default="testdata/golden")
    a = ap.parse_args(argv)
    if a.cmd == "images":
        for p in draw_images(a.out):
            print(p)
        return 0
    if os.path.isdir(a.images):
        paths = sorted(os.path.join(a.images, p) for p in os.listdir(a.images) if p.endswith(".png"))
    else:
        paths = a.images.split(",")
    print(run(a.model, a.ckpt, a.name, paths, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
