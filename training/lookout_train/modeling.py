"""Model construction: ViT encoder + GPT-2 decoder (VisionEncoderDecoderModel) and the attribute heads.

Encoder and decoder hidden sizes are always equal, so the model has no enc_to_dec_proj layer and the
optimum export (encoder_model.onnx + the decoder files) carries every weight, as for public vit-gpt2.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
from transformers import (
    GPT2Config,
    GenerationConfig,
    ViTConfig,
    ViTImageProcessor,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
)


@dataclass
class ModelSize:
    """Architecture knobs (defaults: 64x64 input, patch 8, hidden 128, 4 encoder + 2 decoder layers, 4 heads)."""

    image_size: int = 64
    patch_size: int = 8
    hidden: int = 128
    enc_layers: int = 4
    enc_heads: int = 4
    dec_layers: int = 2
    dec_heads: int = 4
    intermediate: int = 512
    n_positions: int = 64
    initializer_range: float = 0.02

    def to_dict(self):
        return asdict(self)


TINY = ModelSize(image_size=32, patch_size=8, hidden=32, enc_layers=2, enc_heads=2, dec_layers=2, dec_heads=2,
                 intermediate=64, n_positions=64)
DEMO = ModelSize(patch_size=16)  # the shipped models/demo architecture (scripts/train-demo.sh passes it explicitly)


def build_model(size: ModelSize, vocab_size: int, eos_id: int, max_length: int = 24,
                num_beams: int = 1) -> VisionEncoderDecoderModel:
    """Returns a randomly initialised VisionEncoderDecoderModel with generation settings filled in.

    decoder_start_token_id = bos = eos = pad = eos_id (GPT-2 convention). generation_config: greedy,
    max_length (counts the decoder start token), num_beams.
    """
    enc = ViTConfig(
        image_size=size.image_size,
        patch_size=size.patch_size,
        num_channels=3,
        hidden_size=size.hidden,
        num_hidden_layers=size.enc_layers,
        num_attention_heads=size.enc_heads,
        intermediate_size=size.intermediate,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=size.initializer_range,
        qkv_bias=True,
    )
    dec = GPT2Config(
        vocab_size=vocab_size,
        n_positions=size.n_positions,
        n_embd=size.hidden,
        n_layer=size.dec_layers,
        n_head=size.dec_heads,
        n_inner=size.intermediate,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=size.initializer_range,
    )
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id = eos_id
    cfg.pad_token_id = eos_id
    cfg.eos_token_id = eos_id
    cfg.bos_token_id = eos_id
    cfg.tie_word_embeddings = False  # VED-level flag; GPT-2 still ties lm_head to wte inside the decoder
    model = VisionEncoderDecoderModel(config=cfg)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=eos_id,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        max_length=max_length,
        num_beams=num_beams,
        do_sample=False,
    )
    return model


def build_processor(image_size: int) -> ViTImageProcessor:
    """ViTImageProcessor like public vit-gpt2: bilinear resize to image_size square, x/255, (x-0.5)/0.5."""
    return ViTImageProcessor(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        resample=2,  # PIL.Image.BILINEAR
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


class AttributeHeads(nn.Module):
    """One linear classifier per attribute on the mean-pooled encoder last_hidden_state.

    forward(last_hidden_state [B,T,D]) -> list of logits [B, n_classes_i], in attribute order.
    """

    def __init__(self, hidden: int, attributes: list[dict]):
        super().__init__()
        self.attributes = attributes
        self.heads = nn.ModuleList([nn.Linear(hidden, len(a["classes"])) for a in attributes])

    def forward(self, last_hidden_state: torch.Tensor):
        pooled = last_hidden_state.mean(dim=1)
        return [h(pooled) for h in self.heads]


class AttributeProbs(nn.Module):
    """Export wrapper: softmax probabilities per attribute (outputs probs_<name>)."""

    def __init__(self, heads: AttributeHeads):
        super().__init__()
        self.heads = heads

    def forward(self, last_hidden_state: torch.Tensor):
        return tuple(torch.softmax(l, dim=-1) for l in self.heads(last_hidden_state))
