"""Byte-level BPE tokenizer trained on caption text, saved GPT-2 style.

The tokenizer has one special token, ``<|endoftext|>`` (id 0), used as bos, eos and pad, like GPT-2.
"""
from __future__ import annotations

import os
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIAL = "<|endoftext|>"


def train_bpe(texts: Iterable[str], vocab_size: int = 400, min_frequency: int = 2) -> Tokenizer:
    """Trains a GPT-2 style byte-level BPE on texts. vocab_size includes the 256 byte symbols and the special token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def save_hf_tokenizer(tok: Tokenizer, out_dir: str, model_max_length: int = 64):
    """Saves tokenizer.json plus the transformers wrapper files (tokenizer_config.json, special_tokens_map.json)."""
    from transformers import PreTrainedTokenizerFast

    os.makedirs(out_dir, exist_ok=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL,
        eos_token=SPECIAL,
        unk_token=SPECIAL,
        pad_token=SPECIAL,
        model_max_length=model_max_length,
    )
    fast.save_pretrained(out_dir)
    return fast


def synthetic_bpe(size: int, front: Iterable[str] = (), back: Iterable[str] = ()) -> Tokenizer:
    """A byte-level BPE of exactly size tokens with no training corpus: front specials, the 256 byte symbols,
    two-symbol merges of the byte alphabet in order, back specials. It stands in for a real vocabulary of the
    same size (GPT-2's 50257, BART's 50265) when only the cost of a model of real dimensions matters: every
    id decodes, the embedding and output tables have their real shapes."""
    front, back = list(front), list(back)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    n_merges = size - len(front) - len(back) - len(alphabet)
    if n_merges < 0 or n_merges > len(alphabet) ** 2:
        raise ValueError(f"synthetic_bpe: size {size} cannot be made from {len(alphabet)} byte symbols")
    vocab = {t: i for i, t in enumerate(front + alphabet)}
    merges = []
    for a in alphabet:
        for b in alphabet:
            if len(merges) == n_merges:
                break
            merges.append((a, b))
            vocab[a + b] = len(vocab)
    for t in back:
        vocab[t] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.add_special_tokens(front + back)
    return tok
