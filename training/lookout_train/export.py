"""ONNX export of a local VisionEncoderDecoder checkpoint folder with optimum (task image-to-text-with-past;
image-to-text, without a cache, for BERT and RoBERTa decoders, which optimum exports only so).

Usage: python -m lookout_train.export --ckpt DIR --out OUT [--layout split|merged] [--no-optimize]
Writes encoder_model.onnx, the decoder, config.json, generation_config.json, preprocessor_config.json,
tokenizer.json (+ tokenizer_config.json, special_tokens_map.json) and, when the checkpoint has attribute heads
(attributes.pt + attributes.json), attributes_model.onnx + attributes.json.

The decoder comes in one of optimum's two layouts:
  split (default): decoder_model.onnx (first step) + decoder_with_past_model.onnx (cached steps)
  merged:          decoder_model_merged.onnx (both behind an If on use_cache_branch; optimum's own default)
Both are read by the Go engine. The split files run faster: the merged graph's If node costs about 20% of a
demo caption at batch 1 (docs/BENCHMARKS.md). By default the graphs are then simplified with ONNX Runtime's
transformer optimizer (portable level-1 rewrites and fusions: constant folding, SkipLayerNormalization,
BiasGelu), which leaves inputs, outputs and captions unchanged (first-step logits within 1e-5). The
optimiser cannot rewrite a merged graph, so an optimised merged export optimises the split pair, then merges it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

COMMON = [
    "encoder_model.onnx",
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
DECODERS = {
    "split": ["decoder_model.onnx", "decoder_with_past_model.onnx"],
    "merged": ["decoder_model_merged.onnx"],
    "nocache": ["decoder_model.onnx"],  # BERT/RoBERTa decoders: no KV cache
}
# VisionEncoderDecoder families the export handles (docs/MODELS.md). optimum exports BERT and RoBERTa
# decoders only without a KV cache (task image-to-text: decoder_model.onnx, the whole prefix every step).
ENCODERS = ("vit", "deit", "beit", "swin")
DECODER_TASK = {"gpt2": "image-to-text-with-past", "trocr": "image-to-text-with-past",
                "bart": "image-to-text-with-past", "mbart": "image-to-text-with-past",
                "bert": "image-to-text", "roberta": "image-to-text"}
UNSUPPORTED: dict[str, str] = {}
# onnxruntime.transformers optimizer model types per family (fusion patterns; opt_level 1 stays portable).
# Swin is left as exported: the optimizer's swin fusion asserts on per-stage head counts.
OPT_KIND = {"vit": "vit", "deit": "vit", "beit": "vit", "swin": None, "gpt2": "gpt2", "trocr": "bart",
            "bart": "bart", "mbart": "bart",
            "bert": "bert", "roberta": "bert"}
REQUIRED = ["encoder_model.onnx", "config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json"]


class CheckpointError(Exception):
    """A checkpoint folder that cannot be used; str() is a one-line message."""


def check_checkpoint(path: str, want: str = "vision-encoder-decoder") -> dict:
    """Returns the folder's config.json as a dict or raises CheckpointError (one line).

    want: "vision-encoder-decoder" (whole model) or "encoder" (a vision-encoder-decoder or a ViT folder).
    """
    if not os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path}: not a directory; pass a local Hugging Face checkpoint folder")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        raise CheckpointError(f"checkpoint {path}: no config.json; pass a Hugging Face checkpoint folder")
    try:
        with open(cfg_path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: config.json unreadable ({e}); re-save the checkpoint") from e
    mt = cfg.get("model_type") if isinstance(cfg, dict) else None
    ok = {"vision-encoder-decoder"} if want == "vision-encoder-decoder" else {"vision-encoder-decoder", "vit"}
    if mt not in ok:
        raise CheckpointError(
            f"checkpoint {path}: model_type {mt!r} is not {' or '.join(sorted(ok))}; "
            "pass a VisionEncoderDecoder checkpoint folder")
    if mt == "vision-encoder-decoder":
        et = cfg.get("encoder", {}).get("model_type")
        dt = cfg.get("decoder", {}).get("model_type")
        if et not in ENCODERS or (want == "vision-encoder-decoder" and dt not in DECODER_TASK):
            why = UNSUPPORTED.get(dt, "")
            raise CheckpointError(
                f"checkpoint {path}: encoder/decoder {et}/{dt} is not supported (encoders {'/'.join(ENCODERS)}, "
                f"decoders {'/'.join(DECODER_TASK)}){why}")
    if not any(os.path.isfile(os.path.join(path, w)) for w in ("model.safetensors", "pytorch_model.bin")):
        raise CheckpointError(f"checkpoint {path}: no model.safetensors or pytorch_model.bin; save it with save_pretrained")
    return cfg


def export_attributes(ckpt: str, out: str) -> bool:
    """Exports attributes_model.onnx from ckpt/attributes.pt + ckpt/attributes.json if present."""
    pt = os.path.join(ckpt, "attributes.pt")
    js = os.path.join(ckpt, "attributes.json")
    if not (os.path.isfile(pt) and os.path.isfile(js)):
        return False
    import torch
    from .modeling import AttributeHeads, AttributeProbs

    with open(js) as f:
        meta = json.load(f)
    hidden = meta["hidden_size"]
    heads = AttributeHeads(hidden, meta["attributes"])
    heads.load_state_dict(torch.load(pt, map_location="cpu"))
    wrapper = AttributeProbs(heads).eval()
    names = [a["output"] for a in meta["attributes"]]
    dummy = torch.randn(2, meta.get("seq_len", 65), hidden)
    torch.onnx.export(
        wrapper, (dummy,), os.path.join(out, "attributes_model.onnx"),
        input_names=["last_hidden_state"], output_names=names,
        dynamic_axes={"last_hidden_state": {0: "batch_size", 1: "sequence_length"},
                      **{n: {0: "batch_size"} for n in names}},
        opset_version=17, dynamo=False,
    )
    with open(os.path.join(out, "attributes.json"), "w") as f:
        json.dump({"attributes": meta["attributes"], "input": "last_hidden_state",
                   "pooling": "mean over sequence axis", "hidden_size": hidden}, f, indent=1)
        f.write("\n")
    return True


def optimize(folder: str, cfg: dict) -> None:
    """Rewrites the folder's encoder and decoder graphs in place with onnxruntime.transformers' optimizer."""
    from onnxruntime.transformers.optimizer import optimize_model

    enc, dec = cfg["encoder"], cfg["decoder"]
    enc_heads = enc.get("num_attention_heads") or 0  # swin: per-stage list; 0 lets the optimizer read the graph
    kinds = {"encoder_model.onnx": (OPT_KIND.get(enc.get("model_type")), enc_heads if isinstance(enc_heads, int) else 0,
                                    enc.get("hidden_size", 0))}
    dec_heads = dec.get("n_head") or dec.get("decoder_attention_heads") or dec.get("num_attention_heads") or 0
    dec_hidden = dec.get("n_embd") or dec.get("d_model") or dec.get("hidden_size") or 0
    for name in DECODERS["split"]:
        kinds[name] = (OPT_KIND.get(dec.get("model_type"), "gpt2"), dec_heads, dec_hidden)
    for name, (kind, heads, hidden) in kinds.items():
        path = os.path.join(folder, name)
        if kind is None or not os.path.isfile(path):
            continue
        # opt_level 1: ONNX Runtime's portable rewrites only, no hardware-specific layouts in the saved file
        m = optimize_model(path, model_type=kind, num_heads=heads, hidden_size=hidden, opt_level=1)
        m.save_model_to_file(path)


def bart_export_view(ckpt: str, cfg: dict, into: str) -> str:
    """Returns a folder optimum can export a BART/mBART-decoder checkpoint from.

    optimum-onnx 0.1.0 sizes the dummy cache it traces the decoder with by the BART config's encoder_layers
    (and encoder_attention_heads), which a VisionEncoderDecoder's BART decoder does not use; when they differ
    from the decoder's own, tracing fails (IndexError in transformers' cache_utils). The view links every
    file of ckpt and rewrites config.json with the unused encoder fields set to the decoder's: the weights
    and what the model computes are unchanged.
    """
    dec = cfg["decoder"]
    fix = {"encoder_layers": dec.get("decoder_layers"), "encoder_attention_heads": dec.get("decoder_attention_heads")}
    # config.json may also carry the aliases (BART's attribute_map sends them to the encoder fields)
    for alias, field in (("num_hidden_layers", "decoder_layers"), ("num_attention_heads", "decoder_attention_heads")):
        if alias in dec:
            fix[alias] = dec.get(field)
    if all(dec.get(k) == v for k, v in fix.items()):
        return ckpt
    os.makedirs(into, exist_ok=True)
    for name in os.listdir(ckpt):
        if name != "config.json":
            os.symlink(os.path.abspath(os.path.join(ckpt, name)), os.path.join(into, name))
    patched = dict(cfg, decoder=dict(dec, **fix))
    with open(os.path.join(into, "config.json"), "w") as f:
        json.dump(patched, f, indent=2)
    return into


def export(ckpt: str, out: str, opset: int | None = None, layout: str = "split", optimized: bool = True) -> list[str]:
    """Exports ckpt to out (created). Returns the written file names. Raises CheckpointError on a bad folder."""
    if layout not in ("split", "merged"):
        raise CheckpointError(f"layout {layout!r}: want split or merged")
    cfg = check_checkpoint(ckpt)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"output {out}: cannot create ({e.strerror}); pick a writable folder") from e
    if not os.access(out, os.W_OK):
        raise CheckpointError(f"output {out}: not writable; pick a writable folder")
    from optimum.exporters.onnx import main_export

    def progress(msg):
        print(f"export: {msg}", flush=True)

    with tempfile.TemporaryDirectory(prefix="lookout-export-") as tmp:
        # optimum merges the decoders in its post-processing; ONNX Runtime's optimizer cannot rewrite the
        # merged graph (its If branches), so an optimised merged export optimises the split pair and merges after.
        task = DECODER_TASK[cfg["decoder"]["model_type"]]
        if task == "image-to-text":
            layout = "nocache"
        progress(f"optimum {task} export of {ckpt} (fp32, cpu)")
        src = ckpt
        if cfg["decoder"]["model_type"] in ("bart", "mbart"):
            src = bart_export_view(ckpt, cfg, os.path.join(tmp, "view"))
            tmp = os.path.join(tmp, "onnx")
        main_export(model_name_or_path=src, output=tmp, task=task, device="cpu",
                    opset=opset, do_validation=False, no_post_process=(layout != "merged" or optimized))
        if optimized:
            progress("ONNX Runtime transformer optimizer pass (opt_level 1) on the encoder and decoders")
            optimize(tmp, cfg)
            if layout == "merged":
                from optimum.onnx import merge_decoders

                dec, past = (os.path.join(tmp, n) for n in DECODERS["split"])
                progress("merging the decoders")
                merge_decoders(dec, past, save_path=os.path.join(tmp, DECODERS["merged"][0]))
        # The other layout's decoder files must not linger: the engine prefers a merged decoder when present.
        for other, names in DECODERS.items():
            if other != layout:
                for name in names:
                    if name in DECODERS[layout]:
                        continue
                    if os.path.isfile(os.path.join(out, name)):
                        os.remove(os.path.join(out, name))
        # A previous export's domain profile describes the previous encoder: main() fits a new one
        # when asked (--domain-data); otherwise the folder has none.
        stale = os.path.join(out, "domain_profile.json")
        if os.path.isfile(stale):
            os.remove(stale)
        for name in COMMON + DECODERS[layout]:
            src = os.path.join(tmp, name)
            if os.path.isfile(src):
                shutil.copyfile(src, os.path.join(out, name))
        # optimum re-saves generation_config.json without default-valued keys; keep the checkpoint's own
        # file so max_length / num_beams stay written out for the Go engine.
        if src != ckpt:  # the BART view's config.json differs in unused fields only: ship the checkpoint's own
            shutil.copyfile(os.path.join(ckpt, "config.json"), os.path.join(out, "config.json"))
        own = os.path.join(ckpt, "generation_config.json")
        if os.path.isfile(own):
            shutil.copyfile(own, os.path.join(out, "generation_config.json"))
        missing = [n for n in REQUIRED + DECODERS[layout] if not os.path.isfile(os.path.join(out, n))]
        if missing:
            raise CheckpointError(f"export of {ckpt}: exporter did not write {missing}; check the checkpoint has a tokenizer and preprocessor_config.json")
    export_attributes(ckpt, out)
    progress(f"wrote {out} ({layout} decoder layout)")
    return sorted(os.listdir(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description="export a VisionEncoderDecoder checkpoint folder to ONNX (optimum, image-to-text-with-past)")
    ap.add_argument("--ckpt", required=True, help="local Hugging Face VisionEncoderDecoder checkpoint folder (encoders vit/deit/beit/swin, decoders gpt2/trocr/bart/mbart/bert/roberta)")
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--opset", type=int, default=None, help="ONNX opset (default: optimum's choice)")
    ap.add_argument("--layout", choices=["merged", "split"], default="split",
                    help="decoder files: split (decoder_model + decoder_with_past_model, fastest) or merged (optimum's default); BERT/RoBERTa decoders always get decoder_model alone")
    ap.add_argument("--no-optimize", dest="optimize", action="store_false",
                    help="keep optimum's graphs as exported (skip ONNX Runtime's transformer optimizer)")
    ap.add_argument("--domain-data", action="append", default=[],
                    help="held-out training-domain dataset(s): also write domain_profile.json (lookout_train domain fit)")
    ap.add_argument("--trained-on", default="", help="with --domain-data: one sentence naming the training data")
    a = ap.parse_args(argv)
    if a.domain_data and not a.trained_on:
        print("error: --domain-data needs --trained-on (the sentence the out-of-domain warning names)", file=sys.stderr)
        return 2
    try:
        files = export(a.ckpt, a.out, a.opset, a.layout, a.optimize)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"exported {a.ckpt} -> {a.out}: {' '.join(files)}")
    if a.domain_data:
        from . import domain

        fit = ["fit", "--model", a.out, "--trained-on", a.trained_on]
        for d in a.domain_data:
            fit += ["--data", d]
        return domain.main(fit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
