"""Tiny InstructBLIP checkpoints saved in transformers format, for MA-LMM tests."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipQFormerConfig,
    InstructBlipVisionConfig,
    LlamaConfig,
)

IMAGE_TOKEN = 119


def tiny_instructblip_config(num_query_tokens: int = 4, cross_attention_frequency: int = 2) -> InstructBlipConfig:
    return InstructBlipConfig(
        vision_config=InstructBlipVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
        ).to_dict(),
        qformer_config=InstructBlipQFormerConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, encoder_hidden_size=32,
            vocab_size=100, cross_attention_frequency=cross_attention_frequency,
        ).to_dict(),
        text_config=LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=120, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        ).to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=IMAGE_TOKEN,
    )


@pytest.fixture(scope="session")
def instructblip_dir(tmp_path_factory):
    """A random InstructBLIP saved by transformers, as a user's hub checkpoint would be."""
    torch.manual_seed(0)
    model = InstructBlipForConditionalGeneration(tiny_instructblip_config())
    # random non-zero query tokens and projection, so outputs depend on everything
    with torch.no_grad():
        model.query_tokens.normal_(0, 1)
    path = tmp_path_factory.mktemp("instructblip")
    model.save_pretrained(path)
    return path


def batch(b: int = 2, t: int = 3, seed: int = 0, text_len: int = 5, prompt_len: int = 6, num_query_tokens: int = 4):
    """Random inputs: frames, a padded Q-Former instruction, LLM ids with image placeholders."""
    g = torch.Generator().manual_seed(seed)
    qformer_ids = torch.randint(3, 100, (b, text_len), generator=g)
    qformer_mask = torch.ones_like(qformer_ids)
    qformer_mask[-1, text_len - 2 :] = 0  # the last item's instruction is shorter
    ids = torch.cat([torch.full((b, num_query_tokens), IMAGE_TOKEN), torch.randint(3, 110, (b, prompt_len), generator=g)], 1)
    return {
        "pixel_values": torch.randn(b, t, 3, 32, 32, generator=g),
        "qformer_input_ids": qformer_ids,
        "qformer_attention_mask": qformer_mask,
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
    }
