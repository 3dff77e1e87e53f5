"""MA-LMM's real architecture as configurations, and random weights for it without two copies.

`real_config` gives MA-LMM's sizes (CVPR 2024, from InstructBLIP-Vicuna-7B): EVA ViT-g/14 (39
layers, 1408 wide, 16 heads, MLP 6144, 224-pixel frames in 14-pixel patches: P = 257 tokens), a
BERT-base Q-Former (12 layers of 768, cross-attention every second layer, 32 queries, vocabulary
30523 with `[DEC]`) and Vicuna-7B (32 layers of 4096, vocabulary 32001), or a small Llama in its
place. `write_random_checkpoint` writes a random-weight model folder tensor by tensor from a model
built on the meta device (no memory for weights), so that a model of any size can be tried
without downloading one or holding it twice. (To build one directly on a GPU, construct `MALMM`
under `torch.device("cuda")`: its weights are allocated there once, and initialised there.)
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import torch
from transformers import InstructBlipQFormerConfig, InstructBlipVisionConfig, LlamaConfig

from mixma.models.malmm.modeling import MALMM, MALMMConfig
from mixma.models.malmm.weights import write_shards

VICUNA_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32}
IMAGE_TOKEN = 32000  # an id inside the vocabulary; a real tokenizer decides it


def real_config(llm: dict | None = None, memory_bank_length: int = 20, **options) -> MALMMConfig:
    """MA-LMM's architecture; `llm` overrides the language model's Llama sizes (default
    Vicuna-7B's), `options` go to `MALMMConfig` (e.g. `vision_chunk`)."""
    text = {"vocab_size": 32001, **VICUNA_7B, **(llm or {})}
    text.setdefault("num_key_value_heads", text["num_attention_heads"])
    return MALMMConfig(
        vision_config=InstructBlipVisionConfig(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39,
                                               num_attention_heads=16, image_size=224, patch_size=14).to_dict(),
        qformer_config=InstructBlipQFormerConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                 intermediate_size=3072, cross_attention_frequency=2,
                                                 encoder_hidden_size=1408, vocab_size=30523).to_dict(),
        text_config=LlamaConfig(max_position_embeddings=2048, rms_norm_eps=1e-6, bos_token_id=1,
                                eos_token_id=2, pad_token_id=0, **text).to_dict(),
        num_query_tokens=32, image_token_index=IMAGE_TOKEN, memory_bank_length=memory_bank_length, **options,
    )


def random_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """A deterministic random value for parameter `name`: norms' weights 1, biases and the temporal
    table 0, everything else N(0, 0.02) seeded by the name (so any two builds agree)."""
    if name.endswith("bias") or name.startswith("temporal_embedding"):
        return torch.zeros(shape, dtype=dtype, device=device)
    if name.endswith("weight") and len(shape) == 1:  # layer and RMS norms
        return torch.ones(shape, dtype=dtype, device=device)
    generator = torch.Generator(device=device).manual_seed(zlib.crc32(name.encode()))
    return (torch.randn(shape, generator=generator, device=device) * 0.02).to(dtype)


def meta_model(config: MALMMConfig) -> MALMM:
    """The model's structure with no memory behind its tensors."""
    with torch.device("meta"):
        return MALMM(config)


def write_random_checkpoint(config: MALMMConfig, out_dir: str | os.PathLike, dtype: torch.dtype = torch.float32,
                            max_shard_bytes: int = 1 << 30) -> int:
    """Save a random-weight model folder that `MALMM.from_pretrained` loads, one tensor at a time
    (at most one shard in memory). Returns the bytes of weights written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = meta_model(config).state_dict()
    entries = [(name, tuple(t.shape), dtype if t.is_floating_point() else t.dtype) for name, t in state.items()]
    sizes = {name: shape for name, shape, _ in entries}
    types = {name: dtype for name, _, dtype in entries}
    write_shards(out_dir, entries, lambda name: random_tensor(name, sizes[name], types[name]), max_shard_bytes)
    config.save_pretrained(out_dir)
    return sum(torch.empty(0, dtype=d).element_size() * _count(s) for _, s, d in entries)


def _count(shape) -> int:
    count = 1
    for n in shape:
        count *= n
    return count
