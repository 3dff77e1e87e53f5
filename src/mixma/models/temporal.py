"""Temporal aggregation: per-frame embeddings `[B, T, D]` (+ frame mask) → one video vector `[B, D]`.

Two aggregators, both honouring a frame mask so videos with fewer frames can share a batch:

- `MeanPooling`: the masked mean over real frames (CLIP4Clip's "meanP"; parameter-free, so a
  pretrained image-text model works zero-shot on video).
- `TemporalTransformer`: a *residual* temporal transformer. A learnable video token is prepended to
  the frame embeddings plus learned temporal position embeddings, a small pre-LN transformer
  encoder runs over them (padded frames are masked out as keys), and the video token's output is
  projected and **added to the masked mean**:

      v = mean_t(f_t) + W_o · LN(Transformer([z; f_1 + p_1, …, f_T + p_T])[0])

  `W_o` is zero-initialised, so at initialisation the module *is* mean pooling: fine-tuning starts
  from the zero-shot behaviour and only learns the temporal correction. (CLIP-ViP's video proxy
  tokens live *inside* the ViT and need its attention rewritten; working on pooled frame
  embeddings keeps any Hugging Face image encoder usable as the video tower.)
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

TemporalKind = Literal["mean", "transformer"]
TEMPORAL_KINDS: tuple[str, ...] = get_args(TemporalKind)
EMBED_INIT_STD = 0.02  # std of the learned video token and position embeddings (BERT/ViT convention)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over dim 1 of the entries where `mask` is true.

    Args:
        x: `[B, T, ...]` values.
        mask: `[B, T]` bool (true = keep); every row needs at least one true entry.

    Returns:
        `[B, ...]`.
    """
    weights = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.ndim - 2)))  # [B, T, 1, ...]
    # multiply-then-sum (not x[mask]) so masked entries cannot leak NaN/inf into the result
    total = torch.where(weights > 0, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(1)
    return total / weights.sum(1).clamp_min(1)


def check_frame_mask(frame_mask: Tensor | None, batch: int, frames: int, device: torch.device) -> Tensor:
    """Validate an optional `[B, T]` frame mask and return it as bool (all true when `None`).

    Raises:
        ValueError: wrong shape, or a video without any real frame.
    """
    if frame_mask is None:
        return torch.ones(batch, frames, dtype=torch.bool, device=device)
    if frame_mask.shape != (batch, frames):
        raise ValueError(f"frame_mask must have shape {(batch, frames)}, got {tuple(frame_mask.shape)}")
    mask = frame_mask.to(device=device, dtype=torch.bool)
    if not bool(mask.any(1).all()):
        raise ValueError("every video needs at least one real frame (a frame_mask row is all false)")
    return mask


class MeanPooling(nn.Module):
    """Masked mean over frames: `[B, T, D]`, `[B, T]` → `[B, D]`."""

    def forward(self, frames: Tensor, mask: Tensor) -> Tensor:
        return masked_mean(frames, mask)


class TemporalTransformer(nn.Module):
    """Residual temporal transformer over frame embeddings (see the module docstring).

    Args:
        dim: frame-embedding width `D`.
        layers: encoder layers.
        heads: attention heads (must divide `dim`).
        dropout: dropout inside the encoder layers.
        max_frames: size of the temporal position table; longer inputs are rejected.
    """

    no_weight_decay_params = ("video_token", "position")  # see DualEncoder.no_weight_decay

    def __init__(self, dim: int, layers: int, heads: int, dropout: float, max_frames: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"temporal heads ({heads}) must divide the frame-embedding width ({dim})")
        self.max_frames = max_frames
        self.video_token = nn.Parameter(torch.randn(1, 1, dim) * EMBED_INIT_STD)
        self.position = nn.Parameter(torch.randn(max_frames, dim) * EMBED_INIT_STD)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # nested tensors are an inference fast path that pre-LN layers cannot use anyway
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)  # zero residual: the module starts as exact mean pooling
        nn.init.zeros_(self.out.bias)

    def forward(self, frames: Tensor, mask: Tensor) -> Tensor:
        """Aggregate `[B, T, D]` frames with a `[B, T]` bool mask (true = real frame) into `[B, D]`."""
        batch, num_frames, _ = frames.shape
        if num_frames > self.max_frames:
            raise ValueError(f"{num_frames} frames exceed the temporal position table ({self.max_frames}); "
                             "raise max_frames in the config")
        tokens = torch.cat([self.video_token.expand(batch, -1, -1), frames + self.position[:num_frames]], 1)  # [B, 1+T, D]
        keep = torch.cat([mask.new_ones(batch, 1), mask], 1)  # [B, 1+T]
        hidden = self.encoder(tokens, src_key_padding_mask=~keep)  # [B, 1+T, D]
        return masked_mean(frames, mask) + self.out(self.norm(hidden[:, 0]))


def build_temporal(kind: str, dim: int, layers: int, heads: int, dropout: float, max_frames: int) -> nn.Module:
    """The aggregator named `kind` (one of `TEMPORAL_KINDS`)."""
    if kind == "mean":
        return MeanPooling()
    if kind == "transformer":
        return TemporalTransformer(dim, layers, heads, dropout, max_frames)
    raise ValueError(f"temporal must be one of {TEMPORAL_KINDS}, got {kind!r}")
