#!/usr/bin/env python3
"""Cost per caption of real-size models: random-weight ViT-GPT2 base and Florence-2 base through `lookout caption`.

No hub is reachable here, so the two models are built from configs of their real dimensions with random
weights (seeded) and exported with lookout's own toolchain:

  vit-gpt2-base   nlpconnect/vit-gpt2-image-captioning's shape: a ViT-base/16 224 encoder
                  (google/vit-base-patch16-224-in21k: 12 layers, 768 wide, 12 heads, MLP 3072) + GPT-2 124M
                  (12 layers, 768, 12 heads, 1024 positions, vocabulary 50257); ViTImageProcessor 224, mean/std 0.5.
                  Exported by lookout_train.export (optimum image-to-text-with-past + the optimizer pass, split
                  decoder).
  florence2-base  microsoft/Florence-2-base's config: DaViT (embed 128/256/512/1024, depths 1/1/9/1, heads
                  4/8/16/32, window 12, projection 768) at 768x768 (577 image tokens) + BART-base-like language
                  model (6+6 layers, d_model 768, 12 heads, FFN 3072, vocabulary 51289 with the <loc_*> tokens).
                  Exported by lookout_train.florence.export (Transformers.js's four-graph layout).

Tokenizers are synthetic byte-level BPEs of the real vocabulary sizes (lookout_train.tok.synthetic_bpe):
captions from random weights are nonsense; only cost matters. Generation is greedy, capped at 20 new tokens
(max_length 21); a random model practically never emits EOS, so every caption costs 20 decoder steps.

Then it renders a 1280x720 30 fps clip with `lookout scenes video`, and runs `lookout caption --every 1s` on
it with each model (and the tiny fixtures, for comparison) at --max-batch 1 and 8, measuring the lookout
process's CPU seconds (user + system, from wait4's rusage), wall time and peak RSS. The fixed cost (start,
model load, first caption) is measured on a 1-second clip and subtracted: "CPU per caption" is
(CPU of the N-second run - CPU of the 1-second run) / (captions - 1).

  scripts/bench-models.py                 # make bench-models: builds once into .state/basebench (about 3 GB)
  scripts/bench-models.py --seconds 10    # a shorter clip
  scripts/bench-models.py --only tiny-vit-gpt2,vit-gpt2-base

Writes the markdown table to .state/basebench/report.md and prints it; docs/MODELS.md holds the figures.
Run with the project's venv Python (.state/venv/bin/python): the build needs torch and transformers.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin", "lookout")
STATE = os.path.join(ROOT, ".state", "basebench")
MAX_LENGTH = 21  # decoder start token + 20 new tokens
sys.path.insert(0, os.path.join(ROOT, "training"))

# google/vit-base-patch16-224-in21k
VIT_BASE = dict(image_size=224, patch_size=16, num_channels=3, hidden_size=768, num_hidden_layers=12,
                num_attention_heads=12, intermediate_size=3072, hidden_act="gelu", qkv_bias=True,
                layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# gpt2 (124M) as nlpconnect/vit-gpt2-image-captioning's decoder: cross-attention added
GPT2_BASE = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
                 activation_function="gelu_new", layer_norm_epsilon=1e-5, bos_token_id=50256, eos_token_id=50256,
                 pad_token_id=50256, add_cross_attention=True, is_decoder=True, resid_pdrop=0.0, embd_pdrop=0.0,
                 attn_pdrop=0.0)
# microsoft/Florence-2-base config.json, in transformers 4.57's Florence2VisionConfig / BartConfig names
DAVIT_BASE = dict(in_channels=3, depths=[1, 1, 9, 1], patch_size=[7, 3, 3, 3], patch_stride=[4, 2, 2, 2],
                  patch_padding=[3, 1, 1, 1], patch_prenorm=[False, True, True, True], embed_dim=[128, 256, 512, 1024],
                  num_heads=[4, 8, 16, 32], num_groups=[4, 8, 16, 32], window_size=12, projection_dim=768,
                  max_position_embeddings=50, max_temporal_embeddings=100, drop_path_rate=0.0)
BART_BASE = dict(model_type="bart", vocab_size=51289, d_model=768, encoder_layers=6, decoder_layers=6,
                 encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                 max_position_embeddings=1024, activation_function="gelu", scale_embedding=False, dropout=0.0,
                 attention_dropout=0.0, activation_dropout=0.0, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                 decoder_start_token_id=2, forced_eos_token_id=2)
FLORENCE_SIZE = 768

MODELS = {  # name -> (folder, task)
    "tiny-vit-gpt2": (os.path.join(ROOT, "testdata", "models", "tiny-vit-gpt2"), None),
    "tiny-florence2": (os.path.join(ROOT, "testdata", "models", "tiny-florence2"), None),
    "vit-gpt2-base": (os.path.join(STATE, "vit-gpt2-base"), None),
    "florence2-base": (os.path.join(STATE, "florence2-base"), None),
}


def die(msg):
    print("bench-models: " + msg, file=sys.stderr)
    sys.exit(1)


def log(msg):
    print("bench-models: " + msg, file=sys.stderr, flush=True)


def build_vit_gpt2(out):
    """Random ViT-base + GPT-2 VisionEncoderDecoder saved as a checkpoint, exported by lookout_train.export."""
    import torch
    from transformers import (GenerationConfig, GPT2Config, ViTConfig, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)

    from lookout_train import export as export_mod
    from lookout_train.modeling import build_processor
    from lookout_train.tiny import write_explicit_generation_config
    from lookout_train.tok import SPECIAL, save_hf_tokenizer, synthetic_bpe

    ckpt = out + "-ckpt"
    torch.manual_seed(11)
    tok = synthetic_bpe(GPT2_BASE["vocab_size"], back=[SPECIAL])
    save_hf_tokenizer(tok, ckpt, model_max_length=1024)
    eos = tok.token_to_id(SPECIAL)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(**VIT_BASE), GPT2Config(**GPT2_BASE))
    cfg.decoder_start_token_id = cfg.pad_token_id = cfg.eos_token_id = cfg.bos_token_id = eos
    model = VisionEncoderDecoderModel(config=cfg).eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=eos, bos_token_id=eos, eos_token_id=eos,
                                               pad_token_id=eos, max_length=MAX_LENGTH, num_beams=1, do_sample=False)
    model.save_pretrained(ckpt)
    write_explicit_generation_config(ckpt, max_length=MAX_LENGTH)
    build_processor(VIT_BASE["image_size"]).save_pretrained(ckpt)
    log("vit-gpt2-base: %.1fM parameters, exporting" % (sum(p.numel() for p in model.parameters()) / 1e6))
    del model
    export_mod.export(ckpt, out)
    shutil.rmtree(ckpt)  # 0.9 GB of safetensors; the export is what is measured


def build_florence2(out):
    """Random Florence-2 base exported by lookout_train.florence (its tokenizer wrapper, configs and graphs)."""
    import torch
    from transformers import Florence2Config, Florence2ForConditionalGeneration

    from lookout_train import florence
    from lookout_train.tiny import write_explicit_generation_config
    from lookout_train.tok import synthetic_bpe

    torch.manual_seed(11)
    # BART's four specials first, then bytes and merges; florence.build_tokenizer adds the 1020 task and
    # <loc_*> tokens and <image>, so the base is sized to make the whole vocabulary 51289, as the model's.
    base = synthetic_bpe(BART_BASE["vocab_size"] - len(florence.FLORENCE_TOKENS) - 1,
                         front=["<s>", "<pad>", "</s>", "<unk>"])
    os.makedirs(out, exist_ok=True)
    fast = florence.build_tokenizer(out, base)
    if len(fast) != BART_BASE["vocab_size"]:
        die("florence2-base: tokenizer has %d tokens, want %d" % (len(fast), BART_BASE["vocab_size"]))
    cfg = Florence2Config(text_config=BART_BASE, vision_config=DAVIT_BASE,
                          image_token_id=fast.convert_tokens_to_ids("<image>"))
    cfg._attn_implementation = "eager"
    m = Florence2ForConditionalGeneration(cfg).eval()
    log("florence2-base: %.1fM parameters, exporting" % (sum(p.numel() for p in m.parameters()) / 1e6))
    florence.write_configs(m, fast, out, size=FLORENCE_SIZE)
    # With random weights and tied embeddings the decoder start token </s> predicts itself, i.e. EOS at once;
    # min_length keeps EOS out until the 20th token (forced there by forced_eos_token_id), as a caption would.
    write_explicit_generation_config(out, min_length=MAX_LENGTH - 1)
    florence.export(m, out, size=FLORENCE_SIZE)


def ensure_models(names):
    done = os.path.join(STATE, "{}.built")
    for name, build in (("vit-gpt2-base", build_vit_gpt2), ("florence2-base", build_florence2)):
        if name not in names or os.path.isfile(done.format(name)):
            continue
        t0 = time.time()
        log("building %s into %s (once; cached)" % (name, MODELS[name][0]))
        build(MODELS[name][0])
        with open(done.format(name), "w") as f:
            f.write("built in %.0f s\n" % (time.time() - t0))
        log("%s built in %.0f s" % (name, time.time() - t0))


def render(seconds):
    path = os.path.join(STATE, "clip-%ds.mp4" % seconds)
    if not os.path.isfile(path):
        r = subprocess.run([BIN, "scenes", "video", "--domain", "driving", "--seed", "9001", "--duration",
                            "%ds" % seconds, "--size", "1280x720", "--fps", "30", "--out", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            die("lookout scenes video failed: " + r.stderr[-1000:])
    return path


def caption(model, clip, batch, task):
    """Runs lookout caption; returns (records, cpu seconds, wall seconds, peak RSS MiB, system share of cpu)."""
    out = os.path.join(STATE, "out.jsonl")
    cmd = [BIN, "caption", clip, "--every", "1s", "--model", model, "--max-batch", str(batch), "--out", out,
           "--no-progress"]
    if task:
        cmd += ["--task", task]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        die("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode, err[-1500:]))
    with open(out) as f:
        n = sum(1 for line in f if line.strip())
    cpu = ru.ru_utime + ru.ru_stime
    return n, cpu, wall, ru.ru_maxrss / 1024, ru.ru_stime / max(cpu, 1e-9)


def size_mb(folder):
    total = 0
    for d, _, files in os.walk(folder):
        if os.path.basename(d) == "pytorch":
            continue
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files if f.endswith(".onnx"))
    return total / 2**20


def bench(names, seconds, batches):
    clip, one = render(seconds), render(1)
    rows = []
    for name in names:
        folder, task = MODELS[name]
        n1, cpu1, _, _, _ = caption(folder, one, 1, task)
        for b in batches:
            n, cpu, wall, rss, sys_share = caption(folder, clip, b, task)
            per = (cpu - cpu1) / max(n - n1, 1)
            row = dict(model=name, graphs_mb=size_mb(folder), batch=b, captions=n, cpu=cpu, wall=wall, rss=rss, sys=sys_share,
                       fixed_cpu=cpu1, per_caption=per, wall_per=wall / n)
            log(json.dumps(row))
            rows.append(row)
    return rows


def florence_breakdown(folder, steps=20, past=10):
    """Times Florence-2's four graphs at batch 1 with ONNX Runtime in Python (one intra-op thread, median of
    3): where a caption's CPU goes. Returns markdown lines."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    with open(os.path.join(folder, "config.json")) as f:
        tc = json.load(f)["text_config"]
    with open(os.path.join(folder, "preprocessor_config.json")) as f:
        pc = json.load(f)
    D, H, size, n_img = tc["d_model"], tc["decoder_attention_heads"], pc["size"]["height"], pc["image_seq_length"]
    seq = n_img + 12  # image tokens + a <CAPTION> prompt of 12 tokens

    def timed(name, feeds):
        sess = ort.InferenceSession(os.path.join(folder, "onnx", name + ".onnx"), so, providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
        ts = []
        for _ in range(3):
            t0 = time.process_time()
            sess.run(None, feeds)
            ts.append(time.process_time() - t0)
        return sorted(ts)[1]

    rnd = np.random.default_rng(0)
    f32 = lambda *shape: rnd.standard_normal(shape, dtype=np.float32)
    dec = {"inputs_embeds": f32(1, 1, D), "encoder_attention_mask": np.ones((1, seq), np.int64),
           "encoder_hidden_states": f32(1, seq, D), "use_cache_branch": np.array([True])}
    for i in range(tc["decoder_layers"]):
        for kv in ("key", "value"):
            dec["past_key_values.%d.decoder.%s" % (i, kv)] = f32(1, H, past, D // H)
            dec["past_key_values.%d.encoder.%s" % (i, kv)] = f32(1, H, seq, D // H)
    parts = [("vision_encoder", 1, timed("vision_encoder", {"pixel_values": f32(1, 3, size, size)})),
             ("embed_tokens (prompt)", 1, timed("embed_tokens", {"input_ids": np.ones((1, 12), np.int64)})),
             ("encoder_model (%d positions)" % seq, 1,
              timed("encoder_model", {"inputs_embeds": f32(1, seq, D), "attention_mask": np.ones((1, seq), np.int64)})),
             ("decoder_model_merged, one step (past %d)" % past, steps, timed("decoder_model_merged", dec)),
             ("embed_tokens, one token", steps, timed("embed_tokens", {"input_ids": np.ones((1, 1), np.int64)}))]
    total = sum(n * t for _, n, t in parts)
    lines = ["| graph | runs per caption | CPU s per run | share of a caption |", "|---|---|---|---|"]
    lines += ["| %s | %d | %.3f | %.0f %% |" % (name, n, t, 100 * n * t / total) for name, n, t in parts]
    lines.append("| sum | | %.2f | 100 %% |" % total)
    return "\n".join(lines) + "\n"


def table(rows, seconds):
    head = ("| model | ONNX graphs | --max-batch | captions | CPU s per caption (marginal) | fixed CPU s (load + 1) |"
            " run CPU s (system share) | run wall s (per caption) | peak RSS |\n|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        "| %s | %.0f MB | %d | %d | %.3f | %.1f | %.1f (%.0f %%) | %.1f (%.2f) | %.0f MiB |\n"
        % (r["model"], r["graphs_mb"], r["batch"], r["captions"], r["per_caption"], r["fixed_cpu"], r["cpu"], 100 * r["sys"],
           r["wall"], r["wall_per"], r["rss"]) for r in rows)
    note = ("\n%s, %s, %d CPUs visible (2 cores shared with other agents and a CI run: figures taken under load); "
            "`lookout caption` of a %d s 1280x720 30 fps H.264 clip (`lookout scenes video --seed 9001`), "
            "`--every 1s`, greedy, max 20 new tokens.\n"
            % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), platform.processor() or platform.machine(),
               os.cpu_count(), seconds))
    return head + body + note


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=20, help="clip length (one caption per second)")
    ap.add_argument("--batches", default="1,8", help="--max-batch values")
    ap.add_argument("--only", default=",".join(MODELS), help="comma-separated models: " + ", ".join(MODELS))
    ap.add_argument("--build-only", action="store_true", help="build and export the base models, measure nothing")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time florence2-base's graphs one by one (batch 1, one thread, ONNX Runtime in Python)")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n]
    for n in names:
        if n not in MODELS:
            die("--only: unknown model %r (have %s)" % (n, ", ".join(MODELS)))
    if not os.access(BIN, os.X_OK):
        die("%s missing: run make build" % BIN)
    os.makedirs(STATE, exist_ok=True)
    ensure_models(names)
    if a.build_only:
        return
    rows = bench(names, a.seconds, [int(b) for b in a.batches.split(",")])
    md = table(rows, a.seconds)
    if a.breakdown and "florence2-base" in names:
        md += "\nflorence2-base per graph:\n\n" + florence_breakdown(MODELS["florence2-base"][0])
    with open(os.path.join(STATE, "report.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
