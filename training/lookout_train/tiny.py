"""Builds the tiny random fixture testdata/models/tiny-vit-gpt2 (ViT 32x32/8, hidden 32, 2+2 layers).

Usage: python -m lookout_train.tiny --out testdata/models/tiny-vit-gpt2 [--seed 7] [--keep-ckpt DIR]
Deterministic: the same seed gives the same weights and tokenizer. The random init is shaped so the
fixture exercises the decoding paths: initializer_range 0.35 (logits depend on the image), embedding rows
of byte tokens that do not decode to printable ASCII are zeroed (decoded texts stay valid ASCII), and a
position-growing component in wpe plus the same direction added to the EOS embedding make EOS likely
after a few steps (greedy/beam runs end at different lengths, some at max_length).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile

import torch

from . import export as export_mod
from .modeling import TINY, ModelSize, build_model, build_processor
from .tok import SPECIAL, save_hf_tokenizer, train_bpe


def tiny_corpus() -> list[str]:
    """Small caption-like corpus for the fixture tokenizer (deterministic)."""
    colours = ["red", "blue", "green", "yellow", "white", "black"]
    kinds = ["car", "truck", "bus", "van"]
    lanes = ["left", "centre", "right"]
    out = []
    for c, k, l in itertools.product(colours, kinds, lanes):
        out.append(f"a {c} {k} in the {l} lane, the traffic light is {['red', 'green', 'yellow'][len(c) % 3]}.")
    for n, d, t in itertools.product(["no people", "one person", "two people", "three people"], ["open", "closed"], ["day", "night"]):
        out.append(f"a parking lot at {t} with {n}, the door is {d}.")
    return out


def shape_weights(model, fast_tok, gamma: float = 0.1, beta: float = 1.0):
    """Applies the deterministic weight shaping described in the module doc (in place)."""
    n = fast_tok.vocab_size if hasattr(fast_tok, "vocab_size") else len(fast_tok)
    bad = [i for i in range(n) if i != 0 and not all(32 <= ord(ch) < 127 for ch in fast_tok.decode([i]))]
    tr = model.decoder.transformer
    with torch.no_grad():
        tr.wte.weight[bad] = 0
        g = torch.Generator().manual_seed(99)
        u = torch.randn(tr.wte.weight.shape[1], generator=g)
        u /= u.norm()
        tr.wpe.weight += gamma * torch.arange(tr.wpe.weight.shape[0], dtype=torch.float32)[:, None] * u[None]
        tr.wte.weight[0] += beta * u


def build(out: str, seed: int = 8, size: ModelSize | None = None, keep_ckpt: str | None = None,
          max_length: int = 20) -> str:
    size = size or ModelSize(**{**TINY.to_dict(), "initializer_range": 0.35})
    torch.manual_seed(seed)
    tok = train_bpe(tiny_corpus(), vocab_size=320, min_frequency=2)
    eos = tok.token_to_id(SPECIAL)
    ckpt = keep_ckpt or tempfile.mkdtemp(prefix="lookout-tiny-")
    os.makedirs(ckpt, exist_ok=True)
    model = build_model(size, vocab_size=tok.get_vocab_size(), eos_id=eos, max_length=max_length)
    model.eval()
    fast = save_hf_tokenizer(tok, ckpt, model_max_length=size.n_positions)
    shape_weights(model, fast)
    model.save_pretrained(ckpt)
    write_explicit_generation_config(ckpt, max_length=max_length)
    build_processor(size.image_size).save_pretrained(ckpt)
    # the fixture keeps optimum's default layout (merged, unoptimised): the Go tests cover that path with it
    export_mod.export(ckpt, out, layout="merged", optimized=False)
    return ckpt


def write_explicit_generation_config(ckpt: str, **extra):
    """Rewrites ckpt/generation_config.json with max_length and num_beams written out (save_pretrained omits defaults)."""
    import json

    p = os.path.join(ckpt, "generation_config.json")
    with open(p) as f:
        g = json.load(f)
    g.setdefault("num_beams", 1)
    g.update(extra)
    with open(p, "w") as f:
        json.dump(g, f, indent=2, sort_keys=True)
        f.write("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="testdata/models/tiny-vit-gpt2")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--keep-ckpt", default=None, help="also keep the PyTorch checkpoint folder here")
    a = ap.parse_args(argv)
    ckpt = build(a.out, a.seed, keep_ckpt=a.keep_ckpt)
    print(f"tiny fixture -> {a.out} (checkpoint {ckpt})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
