#!/usr/bin/env python3
"""Captions/s of lookout's Go engine vs the Python paths, on the same images and settings.

Measures, in one run, for each batch size:
  go        lookout model bench (Go + ONNX Runtime, this repo's engine)
  optimum   optimum-onnx ORTModelForVision2Seq.generate (Python + ONNX Runtime), processor + decode included
  pytorch   transformers VisionEncoderDecoderModel.generate (PyTorch), processor + decode included
  raw       the raw compute bound: the sum of ONNX Runtime session.run times alone (encoder + every
            greedy decoder step through the folder's decoder: merged, or split decoder_model +
            decoder_with_past_model), no pre/post-processing, no search logic

Run with the repo venv:  .state/venv/bin/python scripts/bench-python.py --model models/demo \
    --pytorch DIR --images testdata/golden/images/*.png --batch 1,4,16 --seconds 2 --rounds 3 --threads 1
Prints a Markdown table of ratios and writes --json (default .state/bench/bench.json).
Paths are interleaved round-robin and the best round counts, which tames a noisy shared machine.
Keep runs short on shared machines (--seconds is per path, batch size and round).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def die(msg: str) -> None:
    print(f"bench-python: {msg}", file=sys.stderr)
    sys.exit(1)


def timed_loop(fn, seconds: float, min_iters: int = 2):
    fn()  # warm-up
    n = 0
    t0 = time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n, time.perf_counter() - t0


def batch_of(images, b):
    return [images[i % len(images)] for i in range(b)]


def bench_optimum(model_dir, images, batches, gen, threads, seconds):
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForVision2Seq
    from transformers import AutoTokenizer, ViTImageProcessor

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    merged = os.path.isfile(os.path.join(model_dir, "decoder_model_merged.onnx"))
    model = ORTModelForVision2Seq.from_pretrained(model_dir, use_cache=True, use_merged=merged,
                                                  provider="CPUExecutionProvider", session_options=so)
    proc = ViTImageProcessor.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)

    def measure(b):
        imgs = batch_of(images, b)

        def run():
            px = proc(images=imgs, return_tensors="pt").pixel_values
            seq = model.generate(pixel_values=px, **gen)
            return tok.batch_decode(seq, skip_special_tokens=True)

        n, dt = timed_loop(run, seconds)
        return n * b / dt
    return measure


def bench_pytorch(pt_dir, images, batches, gen, threads, seconds):
    import torch
    from transformers import AutoTokenizer, ViTImageProcessor, VisionEncoderDecoderModel

    torch.set_num_threads(threads)
    model = VisionEncoderDecoderModel.from_pretrained(pt_dir).eval()
    proc = ViTImageProcessor.from_pretrained(pt_dir)
    tok = AutoTokenizer.from_pretrained(pt_dir)

    def measure(b):
        imgs = batch_of(images, b)

        def run():
            with torch.inference_mode():
                px = proc(images=imgs, return_tensors="pt").pixel_values
                seq = model.generate(pixel_values=px, **gen)
            return tok.batch_decode(seq, skip_special_tokens=True)

        n, dt = timed_loop(run, seconds)
        return n * b / dt
    return measure


def bench_raw(model_dir, images, batches, gen, threads, seconds):
    """Sum of session.run times for encoder + greedy decoding (same number of steps as generate)."""
    import numpy as np
    import onnxruntime as ort
    from transformers import ViTImageProcessor

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    dec = cfg["decoder"]
    layers, heads, hd = dec["n_layer"], dec["n_head"], dec["n_embd"] // dec["n_head"]
    start = cfg.get("decoder_start_token_id", dec.get("bos_token_id", 0))
    eos = cfg.get("eos_token_id", dec.get("eos_token_id"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    enc = ort.InferenceSession(os.path.join(model_dir, "encoder_model.onnx"), so, providers=["CPUExecutionProvider"])
    merged = os.path.isfile(os.path.join(model_dir, "decoder_model_merged.onnx"))
    names = ["decoder_model_merged.onnx"] * 2 if merged else ["decoder_model.onnx", "decoder_with_past_model.onnx"]
    decs = [ort.InferenceSession(os.path.join(model_dir, n), so, providers=["CPUExecutionProvider"]) for n in names]
    proc = ViTImageProcessor.from_pretrained(model_dir)
    max_len = gen.get("max_length", 20)
    if "max_new_tokens" in gen:
        max_len = gen["max_new_tokens"] + 1

    def measure(b):
        px = proc(images=batch_of(images, b), return_tensors="np").pixel_values.astype(np.float32)

        def run():
            spent = 0.0
            t = time.perf_counter()
            hs = enc.run(None, {"pixel_values": px})[0]
            spent += time.perf_counter() - t
            ids = np.full((b, 1), start, dtype=np.int64)
            past = {f"past_key_values.{i}.{kv}": np.zeros((b, heads, 0, hd), np.float32)
                    for i in range(layers) for kv in ("key", "value")}
            alive = np.ones(b, bool)
            for step in range(max_len - 1):
                feeds = {"input_ids": ids, "encoder_hidden_states": hs}
                if merged:
                    feeds.update(use_cache_branch=np.array([step > 0]), **past)
                elif step > 0:
                    feeds.update(past)
                t = time.perf_counter()
                res = decs[min(step, 1)].run(None, feeds)
                spent += time.perf_counter() - t
                nxt = res[0][:, -1].argmax(-1)
                alive &= nxt != eos
                if not alive.any():
                    break
                ids = nxt[:, None].astype(np.int64)
                past = {f"past_key_values.{i}.{kv}": res[1 + 2 * i + (kv == "value")]
                        for i in range(layers) for kv in ("key", "value")}
            return spent

        run()
        n, total = 0, 0.0
        t0 = time.perf_counter()
        while n < 2 or time.perf_counter() - t0 < seconds:
            total += run()
            n += 1
        return n * b / total
    return measure


def bench_go(model_dir, image_paths, batches, gen, threads, seconds, repo, resize="exact"):
    exe = os.path.join(repo, "bin", "lookout-bench")
    build = subprocess.run(["go", "build", "-o", exe, "./cmd/lookout"], cwd=repo, capture_output=True, text=True)
    if build.returncode != 0:
        die(f"go build failed: {build.stderr.strip().splitlines()[-1:]}")
    details = []

    def measure(b):
        cmd = [exe, "model", "bench", model_dir, *image_paths, "--json", "--batch", str(b),
               "--seconds", str(seconds), "--threads", str(threads), "--resize", resize]
        if gen.get("num_beams", 1) > 1:
            cmd += ["--num-beams", str(gen["num_beams"])]
        if "max_new_tokens" in gen:
            cmd += ["--max-new-tokens", str(gen["max_new_tokens"])]
        r = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
        if r.returncode != 0:
            die(f"lookout model bench failed: {r.stderr.strip()}")
        res = json.loads(r.stdout)["results"][0]
        details.append(res)
        return res["captions_per_sec"], res["captions"] / res["session_seconds"]
    return measure, details


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(repo, "testdata/models/tiny-vit-gpt2"), help="ONNX export folder")
    ap.add_argument("--pytorch", default=None, help="PyTorch checkpoint folder (default: <model>-pytorch if present)")
    ap.add_argument("--images", nargs="+", default=None, help="image files (default: testdata/golden/images/*.png)")
    ap.add_argument("--batch", default="1,4,16")
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring time per path, batch size and round")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin rounds; the best round counts (noisy shared machines)")
    ap.add_argument("--threads", type=int, default=1, help="threads per engine (ORT intra-op, torch)")
    ap.add_argument("--num-beams", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=None, help="default: generation_config.json")
    ap.add_argument("--go-resize", default="exact", choices=["exact", "fast"],
                    help="Go preprocessing: exact (Pillow bit-exact, like the Python paths) or fast (OpenCV)")
    ap.add_argument("--skip", default="", help="comma list of paths to skip: go,optimum,pytorch,raw")
    ap.add_argument("--json", default=os.path.join(repo, ".state/bench/bench.json"))
    a = ap.parse_args()

    from PIL import Image

    model_dir = os.path.abspath(a.model)
    if not os.path.isfile(os.path.join(model_dir, "encoder_model.onnx")):
        die(f"{model_dir}: no encoder_model.onnx; pass an image-to-text-with-past export folder")
    pt_dir = a.pytorch or (model_dir.rstrip("/") + "-pytorch")
    paths = a.images or sorted(os.path.join(repo, "testdata/golden/images", f)
                               for f in os.listdir(os.path.join(repo, "testdata/golden/images")))
    images = [Image.open(p).convert("RGB") for p in paths]
    batches = [int(x) for x in a.batch.split(",")]
    gcfg = json.load(open(os.path.join(model_dir, "generation_config.json")))
    gen = {"num_beams": a.num_beams, "do_sample": False, "max_length": a.max_length or gcfg.get("max_length", 20)}
    skip = set(filter(None, a.skip.split(",")))
    res = {"model": model_dir, "images": paths, "threads": a.threads, "generation": gen, "rounds": a.rounds,
           "go_resize": a.go_resize,
           "estimator": "best of rounds (paths interleaved round-robin)", "captions_per_sec": {}, "all_rounds": {}}
    paths_ = {}
    if "go" not in skip:
        paths_["go"], res["go_detail"] = bench_go(model_dir, paths, batches, gen, a.threads, a.seconds, repo, a.go_resize)
    if "optimum" not in skip:
        paths_["optimum"] = bench_optimum(model_dir, images, batches, gen, a.threads, a.seconds)
    if "pytorch" not in skip:
        if os.path.isdir(pt_dir):
            paths_["pytorch"] = bench_pytorch(pt_dir, images, batches, gen, a.threads, a.seconds)
        else:
            print(f"bench-python: no PyTorch checkpoint at {pt_dir}; pass --pytorch", file=sys.stderr)
    if "raw" not in skip and gen["num_beams"] == 1:
        paths_["raw"] = bench_raw(model_dir, images, batches, gen, a.threads, a.seconds)
    allr = res["all_rounds"]
    for b in batches:
        for r in range(a.rounds):
            for name, measure in paths_.items():
                v = measure(b)
                if name == "go":
                    v, sess = v
                    allr.setdefault("go_sessions", {}).setdefault(b, []).append(sess)
                allr.setdefault(name, {}).setdefault(b, []).append(v)
    res["captions_per_sec"] = {k: {b: max(vs) for b, vs in d.items()} for k, d in allr.items()}
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    cps = res["captions_per_sec"]
    print(f"model {os.path.basename(model_dir)}, {len(paths)} images, threads {a.threads}, go resize {a.go_resize}, {gen}")
    print("| batch | " + " | ".join(f"{k} captions/s" for k in cps) + " | go/optimum | go/pytorch | go/raw | go/go_sessions |")
    print("|---" * (len(cps) + 5) + "|")
    for b in batches:
        row = [f"{cps[k].get(b, float('nan')):.1f}" for k in cps]
        go = cps.get("go", {}).get(b)

        def ratio(k):
            v = cps.get(k, {}).get(b)
            return f"{go / v:.2f}x" if go and v else "-"

        print(f"| {b} | " + " | ".join(row) + f" | {ratio('optimum')} | {ratio('pytorch')} | {ratio('raw')} | {ratio('go_sessions')} |")


if __name__ == "__main__":
    main()
