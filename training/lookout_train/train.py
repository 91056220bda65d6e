"""Training of the ViT + GPT-2 captioner with the seed's strategies.

Usage (from the repo root, PYTHONPATH=training):
  python -m lookout_train train --data DIR [--val DIR] --out RUN --strategy joint|alternating|multitask|transfer
      [--steps N] [--batch 64] [--lr 1e-3] [--size demo|tiny] [--domain D] [--fraction F]
      [--alt-every K] [--attr-weight W] [--pretrain-domain D --pretrain-steps N] [--init CKPT --init-part encoder|all]

Strategies (the seed, section 3.3/3.4):
  joint        encoder and decoder optimised end to end on the caption loss.
  alternating  the seed's alternating optimisation: K steps with the encoder frozen (decoder trained), then K steps
               with the decoder frozen (encoder trained), and so on (--alt-every, default 1 = swap every step, as in
               the seed's loop).
  multitask    caption loss + attr_weight x attribute-classification loss of heads on the encoder's mean-pooled
               last_hidden_state (gradients reach the encoder).
  transfer     pre-train (joint) on --pretrain-domain with all its data for --pretrain-steps, then fine-tune on --domain
               restricted to --fraction of its data for --steps. Compare with `joint --domain D --fraction F`.
  --init CKPT  initialise from a local Hugging Face folder: --init-part all (a VisionEncoderDecoder ViT+GPT-2 folder:
               weights and tokenizer) or encoder (a ViT or VisionEncoderDecoder folder: encoder weights only).
Every strategy also trains the attribute heads; outside multitask they see the encoder output detached (a probe),
so they never change the captioner. The run folder gets: ckpt/ (save_pretrained + tokenizer + preprocessor +
attributes.pt/json), train.log, metrics.json, args.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from .export import CheckpointError, check_checkpoint
from .modeling import DEMO, TINY, AttributeHeads, ModelSize, build_model, build_processor
from .tok import SPECIAL, save_hf_tokenizer, train_bpe

SIZES = {"demo": DEMO, "tiny": TINY}


def log(msg: str, fh=None):
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, flush=True)
    if fh:
        fh.write(line + "\n")
        fh.flush()


class Tokenized:
    """Caption token ids for a dataset: input [N,L] (start + tokens + pad), labels [N,L] (tokens + eos, -100 pad)."""

    def __init__(self, tok, captions: list[str], eos: int, max_len: int):
        enc = tok.encode_batch(captions)
        L = max(len(e.ids) for e in enc) + 1
        if L > max_len:
            raise ValueError(f"captions need {L} positions, model has {max_len}; raise n_positions")
        self.inp = np.full((len(captions), L), eos, dtype=np.int64)
        self.lab = np.full((len(captions), L), -100, dtype=np.int64)
        for i, e in enumerate(enc):
            ids = e.ids
            self.inp[i, 0] = eos
            self.inp[i, 1:len(ids) + 1] = ids
            self.lab[i, :len(ids)] = ids
            self.lab[i, len(ids)] = eos
        self.L = L


def set_trainable(module, on: bool):
    for p in module.parameters():
        p.requires_grad_(on)


def load_init(model, path: str, part: str):
    """Loads weights from a local HF folder into model (part 'all' or 'encoder'); raises CheckpointError."""
    from transformers import ViTModel, VisionEncoderDecoderModel

    cfg = check_checkpoint(path, want="vision-encoder-decoder" if part == "all" else "encoder")
    if cfg["model_type"] == "vision-encoder-decoder":
        src = VisionEncoderDecoderModel.from_pretrained(path)
        sd = src.state_dict() if part == "all" else {"encoder." + k: v for k, v in src.encoder.state_dict().items()}
    else:
        src = ViTModel.from_pretrained(path)
        sd = {"encoder." + k: v for k, v in src.state_dict().items()}
    own = model.state_dict()
    bad = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"checkpoint {path}: shapes differ from the model (e.g. {bad[0]}); "
                              "use --size to match it or --init-part all with its own config")
    missing = model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    return missing


def build_tokenizer(args, captions):
    if args.init and args.init_part == "all":
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(args.init).backend_tokenizer
    return train_bpe(captions, vocab_size=args.vocab)


def lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def run_phase(model, heads, ds, toks, attr_t, args, steps, fh, phase_name, strategy, rng, t_start_global):
    """Trains for `steps` steps on ds; returns list of (step, loss)."""
    params = [p for p in model.parameters()] + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.98))
    n = len(ds.records)
    pix = torch.from_numpy(ds.pixels)
    inp = torch.from_numpy(toks.inp)
    lab = torch.from_numpy(toks.lab)
    att = torch.from_numpy(attr_t)
    order = rng.permutation(n)
    pos = 0
    t0 = time.time()
    hist = []
    ema = None
    model.train()
    heads.train()
    for step in range(steps):
        if strategy == "alternating":
            train_dec = (step // args.alt_every) % 2 == 0
            set_trainable(model.encoder, not train_dec)
            set_trainable(model.decoder, train_dec)
        if pos + args.batch > n:
            order = rng.permutation(n)
            pos = 0
        idx = torch.from_numpy(order[pos:pos + args.batch])
        pos += args.batch
        x = D.normalize(pix[idx])
        if args.augment:
            x = x + 0.03 * torch.randn_like(x)
        lr = lr_at(step, steps, args.lr, min(args.warmup, max(1, steps // 10)))
        for g in opt.param_groups:
            g["lr"] = lr
        enc = model.encoder(pixel_values=x).last_hidden_state
        dec_in = inp[idx]
        labels = lab[idx]
        # trim to the longest caption in the batch
        keep = int((labels != -100).sum(1).max().item())
        dec_in, labels = dec_in[:, :keep], labels[:, :keep]
        logits = model.decoder(input_ids=dec_in, encoder_hidden_states=enc).logits
        cap_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        pooled_src = enc if strategy == "multitask" else enc.detach()
        attr_logits = heads(pooled_src)
        a_loss = sum(F.cross_entropy(l, att[idx, j], ignore_index=-100) for j, l in enumerate(attr_logits)) / len(attr_logits)
        loss = cap_loss + (args.attr_weight if strategy == "multitask" else 1.0) * a_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        cl = cap_loss.item()
        ema = cl if ema is None else 0.95 * ema + 0.05 * cl
        hist.append((step + 1, cl))
        if (step + 1) % args.log_every == 0 or step + 1 == steps:
            el = time.time() - t0
            eta = el / (step + 1) * (steps - step - 1)
            log(f"[{phase_name}] step {step + 1}/{steps} loss {ema:.4f} attr {a_loss.item():.4f} lr {lr:.2e} "
                f"{(step + 1) * args.batch / el:.0f} img/s elapsed {el / 60:.1f}m ETA {eta / 60:.1f}m", fh)
    set_trainable(model, True)
    return hist


def save_ckpt(model, heads, tok, attrs, size: ModelSize, out: str, max_length: int, seq_len: int):
    from .tiny import write_explicit_generation_config

    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    save_hf_tokenizer(tok, out, model_max_length=size.n_positions)
    build_processor(size.image_size).save_pretrained(out)
    write_explicit_generation_config(out, max_length=max_length)
    torch.save(heads.state_dict(), os.path.join(out, "attributes.pt"))
    with open(os.path.join(out, "attributes.json"), "w") as f:
        json.dump({"attributes": attrs, "hidden_size": size.hidden, "seq_len": seq_len}, f, indent=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description="train the lookout captioner (seed strategies)")
    ap.add_argument("--data", required=True, help="training dataset folder (lookout scenes dataset)")
    ap.add_argument("--val", default=None, help="held-out dataset folder for evaluation after training")
    ap.add_argument("--out", required=True, help="run folder (ckpt/, train.log, metrics.json)")
    ap.add_argument("--strategy", default="joint", choices=["joint", "alternating", "multitask", "transfer"])
    ap.add_argument("--size", default="demo", choices=sorted(SIZES))
    ap.add_argument("--image-size", type=int, default=None, help="override the preset's input size")
    ap.add_argument("--patch", type=int, default=None, help="override the preset's ViT patch size")
    ap.add_argument("--hidden", type=int, default=None, help="override the preset's hidden size (encoder = decoder)")
    ap.add_argument("--enc-layers", type=int, default=None)
    ap.add_argument("--dec-layers", type=int, default=None)
    ap.add_argument("--heads", type=int, default=None, help="attention heads (encoder and decoder)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--vocab", type=int, default=400)
    ap.add_argument("--max-length", type=int, default=40, help="generation max_length written to generation_config.json")
    ap.add_argument("--domain", default=None, help="train only on this domain (driving|surveillance)")
    ap.add_argument("--fraction", type=float, default=1.0, help="use this fraction of the (domain) training data")
    ap.add_argument("--alt-every", type=int, default=1, help="alternating: swap the trained module every K steps")
    ap.add_argument("--attr-weight", type=float, default=0.5, help="multitask: weight of the attribute loss")
    ap.add_argument("--pretrain-domain", default=None, help="transfer: domain to pre-train on")
    ap.add_argument("--pretrain-steps", type=int, default=1000)
    ap.add_argument("--init", default=None, help="local HF checkpoint folder to initialise from")
    ap.add_argument("--init-part", default="encoder", choices=["encoder", "all"])
    ap.add_argument("--augment", action="store_true", help="add small Gaussian pixel noise")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-n", type=int, default=0, help="evaluate on at most N validation images (0 = all)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    try:
        os.makedirs(args.out, exist_ok=True)
        fh = open(os.path.join(args.out, "train.log"), "a")
    except OSError as e:
        print(f"error: run folder {args.out}: {e.strerror}; pick a writable folder", file=sys.stderr)
        return 1
    if args.strategy == "transfer" and not (args.pretrain_domain and args.domain):
        print("error: --strategy transfer needs --pretrain-domain and --domain (the fine-tune domain)", file=sys.stderr)
        return 2
    for dname in (args.domain, args.pretrain_domain):
        if dname and dname not in ("driving", "surveillance"):
            print(f"error: unknown domain {dname!r}: use driving or surveillance", file=sys.stderr)
            return 2
    if args.init:
        try:
            check_checkpoint(args.init, want="vision-encoder-decoder" if args.init_part == "all" else "encoder")
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    over = {k: v for k, v in {"image_size": args.image_size, "patch_size": args.patch, "hidden": args.hidden,
                              "enc_layers": args.enc_layers, "dec_layers": args.dec_layers,
                              "enc_heads": args.heads, "dec_heads": args.heads}.items() if v is not None}
    if args.hidden is not None:
        over["intermediate"] = 4 * args.hidden
    size = ModelSize(**{**SIZES[args.size].to_dict(), **over})
    with open(os.path.join(args.out, "args.json"), "w") as f:
        json.dump({**vars(args), "model_size": size.to_dict()}, f, indent=1)
    t_all = time.time()
    try:
        full = D.load(args.data, size.image_size)
    except D.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    log(f"data {args.data}: {len(full.records)} images; strategy {args.strategy}", fh)
    tok = build_tokenizer(args, full.captions())
    eos = tok.token_to_id(SPECIAL)
    attrs = D.attribute_space(full.schema) if full.schema else [{"name": "domain", "classes": ["driving", "surveillance"], "output": "probs_domain"}]
    model = build_model(size, vocab_size=tok.get_vocab_size(), eos_id=eos, max_length=args.max_length)
    if args.init:
        try:
            load_init(model, args.init, args.init_part)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        log(f"initialised {args.init_part} from {args.init}", fh)
    heads = AttributeHeads(size.hidden, attrs)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model: {nparams / 1e6:.2f}M params, vocab {tok.get_vocab_size()}, image {size.image_size}", fh)

    phases = []
    if args.strategy == "transfer":
        pre = D.by_domain(full, args.pretrain_domain)
        phases.append(("pretrain-" + args.pretrain_domain, pre, args.pretrain_steps, "joint"))
    main_ds = D.split_fraction(D.by_domain(full, args.domain), args.fraction, args.seed) if (args.domain or args.fraction < 1) else full
    phases.append((args.strategy, main_ds, args.steps, "joint" if args.strategy == "transfer" else args.strategy))
    history = {}
    for name, ds, steps, strat in phases:
        toks = Tokenized(tok, ds.captions(), eos, size.n_positions)
        at = D.attribute_targets(ds.records, attrs)
        log(f"phase {name}: {len(ds.records)} images, {steps} steps x batch {args.batch}", fh)
        history[name] = run_phase(model, heads, ds, toks, at, args, steps, fh, name, strat, rng, t_all)
    train_s = time.time() - t_all
    ckpt = os.path.join(args.out, "ckpt")
    seq_len = (size.image_size // size.patch_size) ** 2 + 1
    save_ckpt(model, heads, tok, attrs, size, ckpt, args.max_length, seq_len)
    log(f"saved {ckpt}; training wall time {train_s / 60:.1f} min", fh)
    metrics = {"strategy": args.strategy, "train_seconds": round(train_s, 1),
               "steps": {k: len(v) for k, v in history.items()}, "batch": args.batch,
               "train_images": {n: len(d.records) for n, d, _, _ in phases},
               "final_loss": {k: float(np.mean([l for _, l in v[-50:]])) for k, v in history.items()}}
    if args.val:
        from .evaluate import evaluate_ckpt

        t1 = time.time()
        try:
            m = evaluate_ckpt(ckpt, args.val, domain=args.domain, limit=args.eval_n)
        except D.DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        metrics["eval"] = m
        metrics["eval_seconds"] = round(time.time() - t1, 1)
        log(f"eval {args.val}: " + " ".join(f"{k}={v:.3f}" for k, v in m.items() if isinstance(v, float)), fh)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
