"""Evaluation: BLEU-4 (sacrebleu), exact match, slot accuracy (the grammar of lookout scenes), attribute accuracy.

Usage (PYTHONPATH=training):
  python -m lookout_train eval --ckpt RUN/ckpt --data DIR            # PyTorch checkpoint on a scenes dataset
  python -m lookout_train eval --model models/demo --data DIR        # exported ONNX folder (ONNX Runtime)
  python -m lookout_train eval --model models/demo --video X.mp4 --truth X.truth.jsonl [--every 1s] --out Y.jsonl
      decodes X.mp4 with ffmpeg (RGB24), samples one frame per --every (first frame at pts >= k*every),
      captions it with the ONNX model and writes caption records {"kind":"caption","pts_ms","caption"} that
      `lookout scenes score --truth X.truth.jsonl --captions Y.jsonl` scores; prints the same summary line.
Metrics: exact_match = caption == truth (stripped); slot_accuracy = mean over images of the fraction of the
truth domain's slots the parsed caption gets right (0 if it does not parse or parses to the other domain), as
corpus.Score (synth/corpus); bleu4 = sacrebleu corpus BLEU (0-100); attr_accuracy = mean head accuracy (checkpoints only).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from . import data as D
from .grammar import parse


def score(preds: list[str], truths: list[str], truth_slots: list[dict], truth_domains: list[str]) -> dict:
    import sacrebleu

    exact = np.mean([p.strip() == t.strip() for p, t in zip(preds, truths)])
    slot = []
    per = {}
    for p, s, d in zip(preds, truth_slots, truth_domains):
        r = parse(p)
        ok = {k: (r is not None and r[0] == d and r[1].get(k) == v) for k, v in s.items()}
        slot.append(sum(ok.values()) / max(1, len(ok)))
        for k, v in ok.items():
            per.setdefault(f"{d}.{k}", []).append(v)
    bleu = sacrebleu.corpus_bleu([p.strip() for p in preds], [[t.strip() for t in truths]]).score
    return {"bleu4": float(bleu), "exact_match": float(exact), "slot_accuracy": float(np.mean(slot)),
            "unparseable": int(sum(parse(p) is None for p in preds)), "n": len(preds),
            "per_slot": {k: float(np.mean(v)) for k, v in sorted(per.items())}}


def _generate_torch(model, pixels_u8, batch=64, **kw):
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(pixels_u8), batch):
            x = D.normalize(torch.from_numpy(pixels_u8[i:i + batch]))
            out.extend(model.generate(pixel_values=x, **kw).tolist())
    return out


def evaluate_ckpt(ckpt: str, data_dir: str, domain: str | None = None, limit: int = 0, threads: int = 2) -> dict:
    import torch
    from transformers import AutoTokenizer, VisionEncoderDecoderModel

    torch.set_num_threads(threads)
    model = VisionEncoderDecoderModel.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    size = model.config.encoder.image_size
    ds = D.by_domain(D.load(data_dir, size), domain)
    if limit:
        ds = ds.subset(range(min(limit, len(ds.records))))
    seqs = _generate_torch(model, ds.pixels, num_beams=1, do_sample=False)
    preds = [t.strip() for t in tok.batch_decode(seqs, skip_special_tokens=True)]
    m = score(preds, ds.captions(), [r["slots"] for r in ds.records], [r["domain"] for r in ds.records])
    # attribute heads
    ap = os.path.join(ckpt, "attributes.pt")
    if os.path.isfile(ap):
        from .modeling import AttributeHeads

        meta = json.load(open(os.path.join(ckpt, "attributes.json")))
        heads = AttributeHeads(meta["hidden_size"], meta["attributes"])
        heads.load_state_dict(torch.load(ap, map_location="cpu"))
        tgt = D.attribute_targets(ds.records, meta["attributes"])
        correct, total = 0, 0
        with torch.no_grad():
            for i in range(0, len(ds.records), 128):
                x = D.normalize(torch.from_numpy(ds.pixels[i:i + 128]))
                logits = heads(model.encoder(pixel_values=x).last_hidden_state)
                for j, l in enumerate(logits):
                    t = torch.from_numpy(tgt[i:i + 128, j])
                    ok = t != -100
                    correct += int((l.argmax(-1)[ok] == t[ok]).sum())
                    total += int(ok.sum())
        m["attr_accuracy"] = correct / max(1, total)
    m["examples"] = [{"pred": p, "truth": t} for p, t in list(zip(preds, ds.captions()))[:5]]
    return m


class OrtCaptioner:
    """Greedy captioner over an exported folder with optimum's ORTModelForVision2Seq (transformers generate)."""

    def __init__(self, model_dir: str):
        from optimum.onnxruntime import ORTModelForVision2Seq
        from transformers import AutoTokenizer, ViTImageProcessor

        self.model = ORTModelForVision2Seq.from_pretrained(model_dir, use_cache=True)
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.proc = ViTImageProcessor.from_pretrained(model_dir, use_fast=False)
        self.size = self.proc.size["height"]

    def caption_u8(self, pixels_u8: np.ndarray, batch: int = 64) -> list[str]:
        import torch

        out = []
        for i in range(0, len(pixels_u8), batch):
            x = D.normalize(torch.from_numpy(pixels_u8[i:i + batch]))
            seqs = self.model.generate(pixel_values=x, num_beams=1, do_sample=False)
            out.extend(t.strip() for t in self.tok.batch_decode(seqs, skip_special_tokens=True))
        return out


def video_frames(path: str, every_ms: int):
    """Yields (pts_ms, PIL.Image) for the first frame at or after each multiple of every_ms (ffmpeg decode)."""
    from PIL import Image

    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height,r_frame_rate", "-of", "json", path], capture_output=True, text=True)
    if probe.returncode != 0:
        raise D.DataError(f"video {path}: ffprobe failed ({probe.stderr.strip()[:200]}); check the file")
    st = json.loads(probe.stdout)["streams"][0]
    w, h = int(st["width"]), int(st["height"])
    num, den = (int(x) for x in st["r_frame_rate"].split("/"))
    fps = num / den
    p = subprocess.Popen(["ffmpeg", "-v", "error", "-threads", "1", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         stdout=subprocess.PIPE)
    n = w * h * 3
    i = 0
    nxt = 0
    try:
        while True:
            buf = p.stdout.read(n)
            if len(buf) < n:
                break
            pts = int(round(i * 1000 / fps))
            if pts >= nxt:
                yield pts, Image.frombuffer("RGB", (w, h), buf, "raw", "RGB", 0, 1)
                nxt = (pts // every_ms + 1) * every_ms
            i += 1
    finally:
        p.stdout.close()
        p.wait()


def evaluate_video(model_dir: str, video: str, truth: str, every_ms: int, out: str | None) -> dict:
    cap = OrtCaptioner(model_dir)
    pts, px = [], []
    for t, im in video_frames(video, every_ms):
        pts.append(t)
        px.append(D.resize_u8(im, cap.size))
    preds = cap.caption_u8(np.stack(px))
    tr = [json.loads(l) for l in open(truth) if l.strip()]
    tr.sort(key=lambda r: r["pts_ms"])
    tp = [r["pts_ms"] for r in tr]
    import bisect

    matched = [tr[bisect.bisect_right(tp, t) - 1] for t in pts]
    if out:
        with open(out, "w") as f:
            for t, c in zip(pts, preds):
                f.write(json.dumps({"kind": "caption", "pts_ms": t, "caption": c}) + "\n")
    dom = [parse(r["caption"])[0] for r in matched]
    return score(preds, [r["caption"] for r in matched], [r["slots"] for r in matched], dom)


def main(argv=None):
    ap = argparse.ArgumentParser(description="evaluate a captioner checkpoint or exported model")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--ckpt", help="PyTorch checkpoint folder (run/ckpt)")
    g.add_argument("--model", help="exported ONNX folder (evaluated with ONNX Runtime)")
    ap.add_argument("--data", help="scenes dataset folder")
    ap.add_argument("--video", help="MP4 from lookout scenes video")
    ap.add_argument("--truth", help="truth JSONL of --video")
    ap.add_argument("--every", default="1s", help="video sampling period (e.g. 1s, 500ms)")
    ap.add_argument("--out", help="write caption records JSONL here (video mode)")
    ap.add_argument("--domain", default=None)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the full metrics JSON")
    a = ap.parse_args(argv)
    t0 = time.time()
    try:
        if a.video:
            if not (a.model and a.truth):
                print("error: --video needs --model and --truth", file=sys.stderr)
                return 2
            ev = a.every.strip()
            every = int(float(ev[:-2])) if ev.endswith("ms") else int(float(ev.rstrip("s")) * 1000)
            m = evaluate_video(a.model, a.video, a.truth, every, a.out)
        elif a.ckpt:
            m = evaluate_ckpt(a.ckpt, a.data, a.domain, a.limit)
        else:
            cap = OrtCaptioner(a.model)
            ds = D.by_domain(D.load(a.data, cap.size), a.domain)
            if a.limit:
                ds = ds.subset(range(min(a.limit, len(ds.records))))
            preds = cap.caption_u8(ds.pixels)
            m = score(preds, ds.captions(), [r["slots"] for r in ds.records], [r["domain"] for r in ds.records])
    except D.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    m["seconds"] = round(time.time() - t0, 1)
    if a.json:
        print(json.dumps(m, indent=1))
    print(f"bleu4={m['bleu4']:.1f} exact_match={m['exact_match']:.3f} slot_accuracy={m['slot_accuracy']:.3f} "
          f"frames={m['n']} unparseable={m['unparseable']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
