"""Tiny random-weight Florence-2 fixture in the ONNX layout Transformers.js loads, and its goldens.

Usage:
  python -m lookout_train florence build --out testdata/models/tiny-florence2
  python -m lookout_train florence golden --model testdata/models/tiny-florence2 \
      --images testdata/golden/images --out testdata/golden

build: a seeded Florence2ForConditionalGeneration (transformers 4.57) from a small config (DaViT with two
stages at 64x64, BART with 1 encoder and 2 decoder layers, d_model 32) and a byte-level BPE tokenizer
trained here (BART's special tokens <s> <pad> </s> <unk>, plus Florence-2's task tokens and <loc_0>..
<loc_999>). Nothing is downloaded. The folder holds what onnx-community's Florence-2 folders hold:
  onnx/vision_encoder.onnx        pixel_values [B,3,H,W] -> image_features [B,N,D]
  onnx/embed_tokens.onnx          input_ids [B,S] -> inputs_embeds [B,S,D]
  onnx/encoder_model.onnx         inputs_embeds, attention_mask -> last_hidden_state
  onnx/decoder_model_merged.onnx  inputs_embeds, encoder_attention_mask, encoder_hidden_states,
                                  past_key_values.{i}.{decoder,encoder}.{key,value}, use_cache_branch
                                  -> logits, present.{i}.{decoder,encoder}.{key,value}
  config.json, generation_config.json, preprocessor_config.json, tokenizer.json (+ transformers files).
Unlike optimum's merged decoders (an If node on use_cache_branch), this decoder always recomputes the
cross-attention keys from encoder_hidden_states (same values; the past encoder inputs are read but
do not change the result), so one traced graph serves both steps.

golden: transformers generate() on the PyTorch model the export came from (the checkpoint is kept in
the fixture's pytorch/ folder) for each task and image, greedy and beam 3, with the processor's
post_process_generation; plus post-processing of crafted texts (boxes at the bin edges, odd sizes).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image

TASKS = ["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>", "<OD>", "<OCR>"]
SIZE = 64
FLORENCE_TOKENS = (
    ["<od>", "</od>", "<ocr>", "</ocr>", "<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>", "</dcap>",
     "<grounding>", "</grounding>", "<seg>", "</seg>", "<sep>", "<region_cap>", "</region_cap>",
     "<poly>", "</poly>", "<and>"]
    + [f"<loc_{i}>" for i in range(1000)]
)
LABELS = ["car", "person", "truck", "bus", "traffic light", "stop sign", "dog", "bicycle"]


def corpus() -> list[str]:
    from transformers.models.florence2.processing_florence2 import Florence2Processor

    prompts = [
        "What is the text in the image?", "What does the image describe?",
        "Describe in detail what is shown in the image.", "Describe with a paragraph what is shown in the image.",
        "Locate the objects with category name in the image.",
    ]
    _ = Florence2Processor  # the prompts above are the processor's table (checked in golden)
    words = [f"a {c} {k} on the road" for c in ["red", "blue", "white"] for k in LABELS]
    return prompts * 3 + words + ["OPEN 24 HOURS", "EXIT", "SPEED LIMIT 50"]


def build_tokenizer(out: str, tok=None):
    """BART tokenizer + Florence-2's tokens saved into out. tok: the byte-level BPE to wrap (its ids 0-3 must be
    <s> <pad> </s> <unk>); default one trained on the tiny corpus (420 tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import BartTokenizerFast

    if tok is None:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=420, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(corpus(), trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    fast = BartTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                             unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<unk>",
                             model_max_length=1024, extra_special_tokens={"image_token": "<image>"})
    fast.add_tokens(FLORENCE_TOKENS)
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    fast.save_pretrained(out)
    return fast


def build_model(vocab: int, image_token: int, seed: int):
    from transformers import Florence2Config, Florence2ForConditionalGeneration

    torch.manual_seed(seed)
    vc = dict(depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1], patch_prenorm=[False, True],
              embed_dim=[16, 32], num_heads=[2, 4], num_groups=[2, 4], window_size=4, projection_dim=32,
              max_position_embeddings=16, max_temporal_embeddings=4, drop_path_rate=0.0, initializer_range=0.3)
    tc = dict(model_type="bart", vocab_size=vocab, d_model=32, encoder_layers=1, decoder_layers=2,
              encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
              max_position_embeddings=128, scale_embedding=False, init_std=0.3, dropout=0.0, attention_dropout=0.0,
              activation_dropout=0.0)
    cfg = Florence2Config(text_config=tc, vision_config=vc, image_token_id=image_token)
    cfg._attn_implementation = "eager"
    return Florence2ForConditionalGeneration(cfg).eval()


class VisionEncoder(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, pixel_values):
        return self.m.get_image_features(pixel_values)


class EmbedTokens(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.emb = m.get_input_embeddings()

    def forward(self, input_ids):
        return self.emb(input_ids)


class Encoder(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.enc = m.get_encoder()

    def forward(self, inputs_embeds, attention_mask):
        return self.enc(inputs_embeds=inputs_embeds, attention_mask=attention_mask, return_dict=True).last_hidden_state


class Decoder(torch.nn.Module):
    """One decoder step with self-attention past; cross-attention recomputed (see the module doc)."""

    def __init__(self, m):
        super().__init__()
        self.dec = m.get_decoder()
        self.lm_head = m.lm_head
        self.layers = m.config.text_config.decoder_layers

    def forward(self, inputs_embeds, encoder_attention_mask, encoder_hidden_states, use_cache_branch, *past):
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        self_cache = DynamicCache()
        for i in range(self.layers):
            self_cache.update(past[4 * i], past[4 * i + 1], i)
        cache = EncoderDecoderCache(self_cache, DynamicCache())
        out = self.dec(inputs_embeds=inputs_embeds, encoder_hidden_states=encoder_hidden_states,
                       encoder_attention_mask=encoder_attention_mask, past_key_values=cache, use_cache=True,
                       return_dict=True)
        logits = self.lm_head(out.last_hidden_state)
        # The past encoder inputs and the branch flag take part (they are graph inputs) without changing values.
        touch = use_cache_branch.to(logits.dtype).sum() * 0
        for i in range(self.layers):
            touch = touch + past[4 * i + 2].sum() * 0 + past[4 * i + 3].sum() * 0
        logits = logits + touch
        pkv = out.past_key_values
        presents = []
        for i in range(self.layers):
            sa, ca = pkv.self_attention_cache, pkv.cross_attention_cache
            presents += [sa.layers[i].keys, sa.layers[i].values, ca.layers[i].keys, ca.layers[i].values]
        return (logits, *presents)


def kv_names(layers: int, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{part}.{kv}" for i in range(layers) for part in ("decoder", "encoder") for kv in ("key", "value")]


def export(m, out: str, prompt_len: int = 12, size: int = SIZE):
    onnx_dir = os.path.join(out, "onnx")
    os.makedirs(onnx_dir, exist_ok=True)
    tc = m.config.text_config
    L, H, D = tc.decoder_layers, tc.decoder_attention_heads, tc.d_model
    hd = D // H
    B, T, P = 2, 77, 3
    kw = dict(opset_version=17, dynamo=False, do_constant_folding=True)
    with torch.no_grad():
        pix = torch.randn(B, 3, size, size)
        torch.onnx.export(VisionEncoder(m), (pix,), os.path.join(onnx_dir, "vision_encoder.onnx"),
                          input_names=["pixel_values"], output_names=["image_features"],
                          dynamic_axes={"pixel_values": {0: "batch_size"}, "image_features": {0: "batch_size"}}, **kw)
        ids = torch.randint(4, 100, (B, prompt_len))
        torch.onnx.export(EmbedTokens(m), (ids,), os.path.join(onnx_dir, "embed_tokens.onnx"),
                          input_names=["input_ids"], output_names=["inputs_embeds"],
                          dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                        "inputs_embeds": {0: "batch_size", 1: "sequence_length"}}, **kw)
        emb = torch.randn(B, T, D)
        mask = torch.ones(B, T, dtype=torch.int64)
        torch.onnx.export(Encoder(m), (emb, mask), os.path.join(onnx_dir, "encoder_model.onnx"),
                          input_names=["inputs_embeds", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_axes={"inputs_embeds": {0: "batch_size", 1: "encoder_sequence_length"},
                                        "attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
                                        "last_hidden_state": {0: "batch_size", 1: "encoder_sequence_length"}}, **kw)
        past = []
        for _ in range(L):
            past += [torch.randn(B, H, P, hd), torch.randn(B, H, P, hd), torch.randn(B, H, T, hd), torch.randn(B, H, T, hd)]
        args = (torch.randn(B, 1, D), mask, torch.randn(B, T, D), torch.tensor([True]), *past)
        ins, outs = kv_names(L, "past_key_values"), kv_names(L, "present")
        axes = {"inputs_embeds": {0: "batch_size", 1: "decoder_sequence_length"},
                "encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
                "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
                "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
        for n in ins:
            axes[n] = {0: "batch_size", 2: "past_decoder_sequence_length" if ".decoder." in n else "encoder_sequence_length_out"}
        for n in outs:
            axes[n] = {0: "batch_size", 2: "past_decoder_sequence_length + 1" if ".decoder." in n else "encoder_sequence_length_out"}
        torch.onnx.export(Decoder(m), args, os.path.join(onnx_dir, "decoder_model_merged.onnx"),
                          input_names=["inputs_embeds", "encoder_attention_mask", "encoder_hidden_states", "use_cache_branch", *ins],
                          output_names=["logits", *outs], dynamic_axes=axes, **kw)


def write_configs(m, fast, out: str, size: int = SIZE):
    from transformers import CLIPImageProcessor, GenerationConfig

    with torch.no_grad():
        n_img = m.get_image_features(torch.zeros(1, 3, size, size)).shape[1]
    ip = CLIPImageProcessor(size={"height": size, "width": size}, crop_size={"height": size, "width": size},
                            do_center_crop=False, resample=3, image_mean=[0.485, 0.456, 0.406],
                            image_std=[0.229, 0.224, 0.225])
    ip.image_seq_length = int(n_img)
    ip.save_pretrained(out)
    m.config.save_pretrained(out)
    gen = GenerationConfig(bos_token_id=0, decoder_start_token_id=2, eos_token_id=2, pad_token_id=1,
                           forced_eos_token_id=2, max_length=21, num_beams=1)
    gen.save_pretrained(out)
    m.generation_config = gen


def processor(model_dir: str):
    from transformers import BartTokenizerFast, CLIPImageProcessor
    from transformers.models.florence2.processing_florence2 import Florence2Processor

    tok = BartTokenizerFast.from_pretrained(model_dir)
    ip = CLIPImageProcessor.from_pretrained(model_dir)
    ppc = {"NUM_BBOX_HEIGHT_BINS": 1000, "NUM_BBOX_WIDTH_BINS": 1000, "COORDINATES_HEIGHT_BINS": 1000,
           "COORDINATES_WIDTH_BINS": 1000, "pure_text": {}, "description_with_bboxes": {}, "ocr": {},
           "phrase_grounding": {}, "polygons": {}, "bboxes": {}, "description_with_polygons": {},
           "description_with_bboxes_or_polygons": {}}
    return Florence2Processor(image_processor=ip, tokenizer=tok, post_processor_config=ppc)


def train_od(m, fast, images: list[str], steps: int = 200):
    """A few optimiser steps so that <OD> answers are label + four <loc_*> tokens: the fixture then
    exercises the box parsing on generated output, not only on crafted text. Deterministic."""
    proc = processor_from(fast, m)
    torch.manual_seed(3)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    batch = []
    for k, path in enumerate(images):
        im = Image.open(path).convert("RGB")
        a, b = LABELS[k % len(LABELS)], LABELS[(k + 3) % len(LABELS)]
        target = f"{a}<loc_{40 + 90 * k}><loc_{100 + 50 * k}><loc_{500 + 60 * k}><loc_{700 + 40 * k}>" \
                 f"{b}<loc_{10 * k}><loc_{20 + k}><loc_{300 + k}><loc_{999 - k}>"
        enc = proc(images=im, text="<OD>", return_tensors="pt")
        lab = fast(target + "</s>", add_special_tokens=False, return_tensors="pt").input_ids  # generate starts at </s>, no <s>
        batch.append((enc, lab))
    m.eval()  # no dropout: the trained function is the one exported
    for _ in range(steps):
        opt.zero_grad()
        loss = 0
        for enc, lab in batch:
            loss = loss + m(**enc, labels=lab).loss
        loss.backward()
        opt.step()
    return float(loss.detach()) / len(batch)


def processor_from(fast, m):
    from transformers import CLIPImageProcessor
    from transformers.models.florence2.processing_florence2 import Florence2Processor

    ip = CLIPImageProcessor(size={"height": SIZE, "width": SIZE}, do_center_crop=False, resample=3,
                            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    ip.image_seq_length = int(m.get_image_features(torch.zeros(1, 3, SIZE, SIZE)).shape[1])
    return Florence2Processor(image_processor=ip, tokenizer=fast, post_processor_config={"pure_text": {}})


def build(out: str, images: list[str], seed: int = 11):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    fast = build_tokenizer(out)
    vocab = len(fast)
    m = build_model(vocab, fast.convert_tokens_to_ids("<image>"), seed)
    loss = train_od(m, fast, images)
    print(f"florence: tiny model {sum(p.numel() for p in m.parameters())} parameters, vocab {vocab}, <OD> loss {loss:.3f}")
    write_configs(m, fast, out)
    m.save_pretrained(os.path.join(out, "pytorch"))
    export(m, out)


def cases():
    return [
        {"name": "greedy", "kwargs": {"num_beams": 1, "max_new_tokens": 20}},
        {"name": "beam3", "kwargs": {"num_beams": 3, "max_new_tokens": 20}},
        {"name": "beam3_ngram3_early", "kwargs": {"num_beams": 3, "max_new_tokens": 20, "no_repeat_ngram_size": 3, "early_stopping": True}},
        {"name": "greedy_forced_bos", "kwargs": {"num_beams": 1, "max_new_tokens": 12, "forced_bos_token_id": 0}},
    ]


CRAFTED = [
    ("car<loc_0><loc_0><loc_999><loc_999>", (640, 480)),
    ("red car<loc_52><loc_333><loc_100><loc_400> person<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8>", (1280, 720)),
    ("</s><s>traffic light<loc_499><loc_500><loc_501><loc_502></s>", (1920, 1080)),
    ("<loc_1><loc_2><loc_3><loc_4>dog<loc_10><loc_20><loc_30>", (33, 29)),
    ("  stop sign <loc_123><loc_456><loc_789><loc_999>caf\u00e9<loc_7><loc_8><loc_9><loc_10>", (97, 55)),
    ("a\nb<loc_1><loc_2><loc_3><loc_4>bus<od><loc_5><loc_6><loc_7><loc_8>", (300, 200)),
    ("truck<pad><loc_250><loc_250><loc_750><loc_750>", (1001, 999)),
]


def golden(model_dir: str, image_paths: list[str], out: str, name: str):
    from transformers import Florence2ForConditionalGeneration

    m = Florence2ForConditionalGeneration.from_pretrained(os.path.join(model_dir, "pytorch"), attn_implementation="eager").eval()
    proc = processor(model_dir)
    tok = proc.tokenizer
    res = {"model_dir": model_dir, "reference": "transformers %s Florence2ForConditionalGeneration.generate + Florence2Processor" % __import__("transformers").__version__,
           "prompts": {}, "images": [], "crafted": []}
    for t in TASKS:
        p = proc._construct_prompts([t])[0]
        res["prompts"][t] = {"text": p, "input_ids": tok(tok.bos_token + p + tok.eos_token, add_special_tokens=False).input_ids}
    for path in image_paths:
        im = Image.open(path).convert("RGB")
        entry = {"file": os.path.relpath(path, out), "size": list(im.size), "tasks": []}
        for t in ["<CAPTION>", "<DETAILED_CAPTION>", "<OD>", "<OCR>"]:
            enc = proc(images=im, text=t, return_tensors="pt")
            tentry = {"task": t, "cases": []}
            for c in cases():
                with torch.no_grad():
                    seq = m.generate(**enc, do_sample=False, **c["kwargs"])
                ids = seq[0].tolist()
                text = proc.batch_decode(seq, skip_special_tokens=False)[0]
                post = proc.post_process_generation(text, task=t, image_size=im.size)[t]
                tentry["cases"].append({"name": c["name"], "kwargs": c["kwargs"], "ids": ids, "text": text, "post": post})
            entry["tasks"].append(tentry)
        res["images"].append(entry)
    for text, size in CRAFTED:
        res["crafted"].append({"text": text, "size": list(size), "post": proc.post_process_generation(text, task="<OD>", image_size=size)["<OD>"],
                               "pure": proc.post_process_generation(text, task="<OCR>", image_size=size)["<OCR>"]})
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(res, f, indent=1)
    n = sum(len(t["cases"]) for e in res["images"] for t in e["tasks"])
    boxes = sum(len(c["post"]["bboxes"]) for e in res["images"] for t in e["tasks"] if t["task"] == "<OD>" for c in t["cases"])
    print(f"florence golden: {len(res['images'])} images, {n} generate runs, {boxes} generated boxes -> {out}/{name}.json")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="lookout_train florence")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", required=True)
    b.add_argument("--images", required=True, help="folder of golden PNGs the <OD> warm-up trains on")
    g = sub.add_parser("golden")
    g.add_argument("--model", required=True)
    g.add_argument("--images", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--name", default="tiny-florence2")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    if a.cmd == "build":
        imgs = sorted(os.path.join(a.images, f) for f in os.listdir(a.images) if f.endswith(".png"))
        build(a.out, imgs)
    else:
        imgs = sorted(os.path.join(a.images, f) for f in os.listdir(a.images) if f.endswith(".png"))
        golden(a.model, imgs, a.out, a.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
