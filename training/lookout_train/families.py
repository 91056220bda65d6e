"""Tiny random VisionEncoderDecoder fixtures, one per encoder/decoder/tokenizer family (docs/MODELS.md).

Usage: python -m lookout_train families build --family deit-trocr --out testdata/models/tiny-deit-trocr \
           --keep-ckpt testdata/models/tiny-deit-trocr-pytorch
       python -m lookout_train families list
Each fixture is a seeded random VisionEncoderDecoderModel (32x32 images, hidden 32, 2 decoder layers) with
a tokenizer of its family trained on the tiny caption corpus, saved as a PyTorch checkpoint and exported
with lookout's toolchain (lookout_train export: optimum + the optimizer pass). The golden outputs come from
lookout_train golden run on the checkpoint, as for tiny-vit-gpt2.

Families (encoder-decoder, tokenizer):
  beit-gpt2     BEiT + GPT-2, byte-level BPE            (KV cache: self-attention, past_key_values.i.key)
  deit-trocr    DeiT + TrOCR decoder, byte-level BPE    (KV cache: self + cross, past_key_values.i.decoder.key)
  swin-trocr    Swin + TrOCR decoder, SentencePiece Unigram (as trocr-small-*: XLM-R style tokenizer)
  vit-bert      ViT + BERT decoder, WordPiece           (optimum exports BERT without a cache: decoder_model.onnx)
  deit-roberta  DeiT + RoBERTa decoder, byte-level BPE  (no cache, as BERT)
  swin-mbart    Swin + mBART decoder, SentencePiece Unigram (Donut's pairing; self + cross-attention cache)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import torch

IMAGE, HIDDEN = 32, 32


def _encoder(kind: str, init: float):
    from transformers import BeitConfig, DeiTConfig, SwinConfig, ViTConfig

    common = dict(image_size=IMAGE, num_channels=3, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  initializer_range=init)
    if kind == "vit":
        return ViTConfig(patch_size=8, qkv_bias=True, **common)
    if kind == "deit":
        return DeiTConfig(patch_size=8, **common)
    if kind == "beit":
        return BeitConfig(patch_size=8, use_mask_token=False, use_mean_pooling=False, **common)
    if kind == "swin":
        return SwinConfig(image_size=IMAGE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0,
                          initializer_range=init)
    raise ValueError(kind)


def _decoder(kind: str, vocab: int, ids: dict, init: float):
    from transformers import BertConfig, GPT2Config, RobertaConfig, TrOCRConfig

    tok = dict(bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"])
    if kind == "gpt2":
        return GPT2Config(vocab_size=vocab, n_positions=64, n_embd=HIDDEN, n_layer=2, n_head=2, n_inner=64,
                          add_cross_attention=True, is_decoder=True, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                          initializer_range=init, **tok)
    if kind == "trocr":
        return TrOCRConfig(vocab_size=vocab, d_model=HIDDEN, decoder_layers=2, decoder_attention_heads=2,
                           decoder_ffn_dim=64, max_position_embeddings=64, dropout=0.0, attention_dropout=0.0,
                           activation_dropout=0.0, init_std=init, decoder_start_token_id=ids["start"], **tok)
    if kind == "mbart":
        from transformers import MBartConfig

        # encoder_layers equal to decoder_layers: transformers 4.57's own generate() sizes the decoder's cache
        # by them and fails otherwise (the export copes: lookout_train.export.bart_export_view).
        return MBartConfig(vocab_size=vocab, d_model=HIDDEN, decoder_layers=2, decoder_attention_heads=2,
                           decoder_ffn_dim=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                           max_position_embeddings=64, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                           init_std=init, is_decoder=True, add_cross_attention=True, forced_eos_token_id=None,
                           decoder_start_token_id=ids["start"], **tok)
    common = dict(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  add_cross_attention=True, is_decoder=True, initializer_range=init, **tok)
    if kind == "bert":
        return BertConfig(max_position_embeddings=64, **common)
    if kind == "roberta":
        return RobertaConfig(max_position_embeddings=66, **common)
    raise ValueError(kind)


def _corpus():
    from .tiny import tiny_corpus

    return tiny_corpus()


def _tokenizer(kind: str, out: str):
    """Trains the family's tokenizer on the tiny corpus, saves it with its transformers wrapper into out.

    Returns (fast tokenizer, ids dict with bos, eos, pad, start)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    corpus = _corpus()
    if kind == "wordpiece":
        from transformers import BertTokenizerFast

        t = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        t.normalizer = normalizers.BertNormalizer(lowercase=True)
        t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        t.decoder = decoders.WordPiece(prefix="##")
        t.train_from_iterator(corpus, trainers.WordPieceTrainer(
            vocab_size=160, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
        t.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        fast = BertTokenizerFast(tokenizer_object=t, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                 sep_token="[SEP]", mask_token="[MASK]")
        # BERT-as-decoder convention (e.g. vit-bert captioners): start at [CLS], stop at [SEP].
        ids = {"bos": 2, "eos": 3, "pad": 0, "start": 2}
    elif kind == "unigram":
        from transformers import XLMRobertaTokenizerFast

        t = Tokenizer(models.Unigram())
        t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        t.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
        t.train_from_iterator(corpus, trainers.UnigramTrainer(
            vocab_size=120, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False))
        fast = XLMRobertaTokenizerFast(tokenizer_object=t, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                       unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<unk>")
        ids = {"bos": 0, "eos": 2, "pad": 1, "start": 2}  # trocr-small-*: decoder_start = eos = 2
    elif kind == "bpe-roberta":
        from transformers import RobertaTokenizerFast

        t = Tokenizer(models.BPE())
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        t.decoder = decoders.ByteLevel()
        t.train_from_iterator(corpus, trainers.BpeTrainer(
            vocab_size=300, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
        fast = RobertaTokenizerFast(tokenizer_object=t, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                    unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<unk>")
        # RoBERTa's positions count the tokens that are not <pad>, so the start token must not be <pad>.
        ids = {"bos": 0, "eos": 2, "pad": 1, "start": 0}
    elif kind == "bpe":
        from .tok import SPECIAL, save_hf_tokenizer, train_bpe

        t = train_bpe(corpus, vocab_size=300, min_frequency=2)
        fast = save_hf_tokenizer(t, out, model_max_length=64)
        e = t.token_to_id(SPECIAL)
        return fast, {"bos": e, "eos": e, "pad": e, "start": e}
    else:
        raise ValueError(kind)
    fast.model_max_length = 64
    fast.save_pretrained(out)
    return fast, ids


FAMILIES = {
    "beit-gpt2": ("beit", "gpt2", "bpe"),
    "deit-trocr": ("deit", "trocr", "bpe"),
    "swin-trocr": ("swin", "trocr", "unigram"),
    "vit-bert": ("vit", "bert", "wordpiece"),
    "deit-roberta": ("deit", "roberta", "bpe-roberta"),
    "swin-mbart": ("swin", "mbart", "unigram"),
}


def build(family: str, out: str, keep_ckpt: str | None = None, seed: int = 11, max_length: int = 16,
          init: float = 0.3) -> str:
    """Builds the family's checkpoint (keep_ckpt or a temp folder), exports it to out; returns the checkpoint."""
    from transformers import GenerationConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    from . import export as export_mod
    from .modeling import build_processor
    from .tiny import write_explicit_generation_config

    enc_kind, dec_kind, tok_kind = FAMILIES[family]
    ckpt = keep_ckpt or tempfile.mkdtemp(prefix=f"lookout-{family}-")
    os.makedirs(ckpt, exist_ok=True)
    torch.manual_seed(seed)
    fast, ids = _tokenizer(tok_kind, ckpt)
    vocab = len(fast)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(_encoder(enc_kind, init), _decoder(dec_kind, vocab, ids, init))
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id, cfg.bos_token_id = ids["start"], ids["pad"], ids["eos"], ids["bos"]
    cfg.tie_word_embeddings = False
    model = VisionEncoderDecoderModel(config=cfg).eval()
    if dec_kind == "roberta":
        # RoBERTa numbers positions by counting non-<pad> tokens, with or without a cache differently once a
        # <pad> is generated mid-sequence; a real model never emits <pad>, so the random one must not either.
        with torch.no_grad():
            model.decoder.lm_head.bias[ids["pad"]] = -100.0
    model.generation_config = GenerationConfig(decoder_start_token_id=ids["start"], bos_token_id=ids["bos"],
                                               eos_token_id=ids["eos"], pad_token_id=ids["pad"],
                                               max_length=max_length, num_beams=1, do_sample=False)
    model.save_pretrained(ckpt)
    write_explicit_generation_config(ckpt, max_length=max_length)
    build_processor(IMAGE).save_pretrained(ckpt)
    export_mod.export(ckpt, out)
    return ckpt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build and export one family's fixture")
    b.add_argument("--family", required=True, choices=sorted(FAMILIES))
    b.add_argument("--out", required=True)
    b.add_argument("--keep-ckpt", default=None)
    b.add_argument("--seed", type=int, default=11)
    sub.add_parser("list", help="print the families")
    a = ap.parse_args(argv)
    if a.cmd == "list":
        for k, v in FAMILIES.items():
            print(k, *v)
        return 0
    ckpt = build(a.family, a.out, a.keep_ckpt, a.seed)
    print(f"{a.family} fixture -> {a.out} (checkpoint {ckpt})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
