"""MAMA's subtractive angular-margin contrastive loss, per sample, gathered across processes.

For L2-normalised video embeddings `v_i` and text embeddings `t_j` with cosine `c_ij = <v_i, t_j>`
and angle `θ_ij = arccos c_ij`, the logits are `scale · c_ij`, except each positive pair's, which
becomes `scale · cos(θ_ii − margin)`: positives are made *easier*, so their gradient vanishes at
angle `margin` instead of pushing them to perfect similarity. The per-sample loss is
`½(CE_v2t,i + CE_t2v,i)`; with `margin = 0` its mean is the CLIP loss.

Fixes against MAMA's code (`research/mama.md` §1.2):

- The margin goes on positives only (the original also applied it to negatives closer than the
  margin).
- No `acos`: `cos(θ − m) = c·cos m + sqrt(1 − c²)·sin m`, because `sin θ = sqrt(1 − c²) >= 0` on
  `[0, π]`. Inside the square root `c` is clamped to `[−1 + ε, 1 − ε]`, so the gradient stays
  finite even when `c = ±1` exactly (acos has an infinite derivative there).

Under `torch.distributed`, `AngularMarginLoss` all-gathers both embeddings (the gradient flows back
to every rank's own features) so each rank sees the global batch as negatives, and returns the
losses of its *local* samples: local sample `i` gets exactly the loss that global sample
`offset + i` has in the single-process loss over the concatenated batch. Backpropagating each
rank's `losses.sum()` gives every rank the gradient of the global sum for its own features; with
DDP's gradient averaging, each rank's `losses.mean()` gives the gradient of the global mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

COS_EPS = 1e-6  # c is clamped to [-1+eps, 1-eps] inside sqrt(1 - c²) so d/dc stays finite


def margin_cosine(cos: Tensor, margin: float) -> Tensor:
    """`cos(arccos(cos) − margin)`, computed without `acos`.

    Args:
        cos: cosines, any shape, nominally in [-1, 1].
        margin: angle in radians subtracted from each angle.

    Returns:
        Same shape as `cos`. Exactly `cos` when `margin == 0`; finite gradients everywhere,
        including `cos = ±1`.
    """
    clamped = cos.clamp(-1 + COS_EPS, 1 - COS_EPS)
    return cos * math.cos(margin) + torch.sqrt(1 - clamped * clamped) * math.sin(margin)


def _check_embeddings(name: str, emb: Tensor, batch: int | None = None) -> None:
    if emb.ndim != 2:
        raise ValueError(f"{name} must be 2-D [batch, dim], got shape {tuple(emb.shape)}")
    if emb.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if batch is not None and emb.shape[0] != batch:
        raise ValueError(f"{name} has {emb.shape[0]} rows, expected {batch}")


def _directional_loss(queries: Tensor, keys: Tensor, margin: float, scale: Tensor | float, offset: int) -> Tensor:
    """CE of each query row against all keys; the positive of row `i` is key `offset + i`."""
    cos = queries @ keys.T  # [b, N]
    targets = torch.arange(offset, offset + queries.shape[0], device=queries.device)[:, None]  # [b, 1]
    positive = margin_cosine(cos.gather(1, targets), margin)  # [b, 1]
    cos = cos.scatter(1, targets, positive)  # margin on positives only
    return F.cross_entropy(scale * cos, targets[:, 0], reduction="none")


def angular_margin_loss(
    video_emb: Tensor,
    text_emb: Tensor,
    margin: float,
    scale: Tensor | float,
    *,
    all_video_emb: Tensor | None = None,
    all_text_emb: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """Per-sample angular-margin contrastive loss (MAMA, positive-only subtractive margin).

    Square form (the default): sample `i` is the pair `(video_emb[i], text_emb[i])` and the other
    samples of the batch are its negatives. Rectangular (global) form, for multi-process training:
    the rows are this process's `b` local samples and the negatives are all `N` samples of
    `all_video_emb`/`all_text_emb`, where local sample `i` is global sample `offset + i`; the
    result equals rows `offset : offset + b` of the square loss over the global batch.

    Embeddings are L2-normalised here; the loss is computed in float32, or float64 for float64
    input (half-precision input is upcast).

    Args:
        video_emb: `[b, D]` video embeddings.
        text_emb: `[b, D]` text embeddings of the same samples.
        margin: radians subtracted from each positive pair's angle, in `[0, π]`.
        scale: logit multiplier (e.g. 100; not its log). A tensor keeps its gradient.
        all_video_emb: `[N, D]` global video embeddings (rectangular form), or None.
        all_text_emb: `[N, D]` global text embeddings; given together with `all_video_emb`.
        offset: global index of local sample 0 (rectangular form only).

    Returns:
        `[b]` (float32 or float64): `½(CE_v2t,i + CE_t2v,i)` for each local sample; its mean with
        `margin = 0` is the standard CLIP loss.

    Raises:
        ValueError: on shapes that are not `[b, D]`/`[N, D]` with matching `b` and `D`, only one
            of the global tensors, an offset that does not fit, a negative or non-finite margin,
            or a non-positive float scale.
    """
    _check_embeddings("video_emb", video_emb)
    batch = video_emb.shape[0]
    _check_embeddings("text_emb", text_emb, batch)
    if video_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"embedding dims differ: video {video_emb.shape[1]}, text {text_emb.shape[1]}")
    if not (math.isfinite(margin) and 0 <= margin <= math.pi):
        raise ValueError(f"margin must be in [0, pi] radians (it is subtractive), got {margin}")
    if not isinstance(scale, Tensor) and not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive multiplier, got {scale}")

    dtype = torch.promote_types(torch.promote_types(video_emb.dtype, text_emb.dtype), torch.float32)
    video = F.normalize(video_emb.to(dtype), dim=-1)
    text = F.normalize(text_emb.to(dtype), dim=-1)
    if all_video_emb is None and all_text_emb is None:
        if offset != 0:
            raise ValueError("offset is only meaningful with all_video_emb and all_text_emb")
        cos = video @ text.T  # [b, b], rows videos, columns texts
        diagonal = torch.arange(batch, device=cos.device)
        cos = cos.diagonal_scatter(margin_cosine(cos.diagonal(), margin))
        logits = scale * cos
        return 0.5 * (F.cross_entropy(logits, diagonal, reduction="none") + F.cross_entropy(logits.T, diagonal, reduction="none"))

    if all_video_emb is None or all_text_emb is None:
        raise ValueError("give both all_video_emb and all_text_emb, or neither")
    _check_embeddings("all_video_emb", all_video_emb)
    _check_embeddings("all_text_emb", all_text_emb, all_video_emb.shape[0])
    if all_video_emb.shape[1] != video_emb.shape[1] or all_text_emb.shape[1] != video_emb.shape[1]:
        raise ValueError("global embeddings must have the local embedding dim")
    if not 0 <= offset <= all_video_emb.shape[0] - batch:
        raise ValueError(f"offset {offset} with {batch} local rows does not fit {all_video_emb.shape[0]} global rows")
    all_video = F.normalize(all_video_emb.to(dtype), dim=-1)
    all_text = F.normalize(all_text_emb.to(dtype), dim=-1)
    v2t = _directional_loss(video, all_text, margin, scale, offset)
    t2v = _directional_loss(text, all_video, margin, scale, offset)
    return 0.5 * (v2t + t2v)


class _AllGather(torch.autograd.Function):
    """All-gather rows of possibly different counts; backward sums every rank's gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int], rank: int, group) -> Tensor:
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        padded = x.new_zeros((max(sizes), *x.shape[1:]))  # all_gather needs equal shapes
        padded[: x.shape[0]] = x
        buckets = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(buckets, padded, group=group)
        return torch.cat([bucket[:n] for bucket, n in zip(buckets, sizes)])  # [N, ...]

    @staticmethod
    def backward(ctx, grad: Tensor):
        # every rank's loss may use our rows as negatives: our gradient is the sum over ranks
        # (all_reduce rather than reduce_scatter, which gloo lacks)
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None, None


def gather_features(*features: Tensor, group=None) -> tuple[tuple[Tensor, ...], int]:
    """All-gather per-sample features from every rank, keeping gradients to the local ones.

    All tensors are gathered in one collective (concatenated along the last dim). The local rows
    in the result are the input tensors themselves (re-inserted, so their graph is kept); the
    other ranks' rows carry gradient back to those ranks through the gather's backward. Ranks may
    hold different batch sizes. Without an initialised process group, or with one process, the
    inputs are returned unchanged.

    Args:
        *features: `[b, D_k]` tensors with the same `b` and dtype.
        group: process group (default: the world).

    Returns:
        (`[N, D_k]` gathered tensors in rank order, global index of this rank's first row).

    Raises:
        ValueError: if no tensor is given or they are not 2-D with the same batch size and dtype.
    """
    if not features:
        raise ValueError("gather_features needs at least one tensor")
    for k, x in enumerate(features):
        _check_embeddings(f"features[{k}]", x, features[0].shape[0])
        if x.dtype != features[0].dtype:
            raise ValueError("gathered features must share a dtype")
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return features, 0
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    local = torch.cat(features, dim=1)  # [b, ΣD_k]: one collective for all
    count = torch.tensor([local.shape[0]], device=local.device)
    counts = [torch.empty_like(count) for _ in range(world)]
    dist.all_gather(counts, count, group=group)
    sizes = [int(c) for c in counts]
    offset = sum(sizes[:rank])
    gathered = _AllGather.apply(local, sizes, rank, group)  # [N, ΣD_k]
    # re-insert the local rows so the local graph is used directly (their slice of the gathered
    # tensor then gets zero gradient, so nothing is counted twice)
    gathered = torch.cat([gathered[:offset], local, gathered[offset + local.shape[0] :]])
    widths = [x.shape[1] for x in features]
    return tuple(gathered.split(widths, dim=1)), offset


@dataclass(frozen=True)
class AngularMarginConfig:
    """Options of `AngularMarginLoss`; every default lives here."""

    margin: float = 0.05  # radians; MAMA's QA code defines 0.05 (the paper's value is unknown)
    init_scale: float = 100.0  # initial logit multiplier: log-scale ln 100 (CLIP-ViP)
    max_scale: float = 200.0  # log-scale is clamped to [0, ln max_scale] (CLIP-ViP)
    learnable_scale: bool = True  # train the log-scale (CLIP-ViP: yes, without weight decay)
    gather: bool = True  # under torch.distributed, every rank's samples are negatives

    def __post_init__(self):
        if not (math.isfinite(self.margin) and 0 <= self.margin <= math.pi):
            raise ValueError(f"margin must be in [0, pi] radians, got {self.margin}")
        if not 1.0 <= self.init_scale <= self.max_scale:
            raise ValueError(f"need 1 <= init_scale <= max_scale, got {self.init_scale}, {self.max_scale}")


class AngularMarginLoss(nn.Module):
    """`angular_margin_loss` with a learnable log logit scale and the cross-rank gather.

    Returns per-sample losses (no reduction), so sample weights can be applied to them.

    Args:
        config: options (default `AngularMarginConfig()`).
        group: process group to gather over (default: the world).
    """

    def __init__(self, config: AngularMarginConfig | None = None, group=None):
        super().__init__()
        self.config = config or AngularMarginConfig()
        self.group = group
        self.log_scale = nn.Parameter(
            torch.tensor(math.log(self.config.init_scale)), requires_grad=self.config.learnable_scale
        )

    @property
    def scale(self) -> Tensor:
        """The logit multiplier in use: `exp` of the log-scale clamped to `[0, ln max_scale]`."""
        return self.log_scale.clamp(0.0, math.log(self.config.max_scale)).exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp the log-scale parameter in place; call after each optimizer step (as CLIP-ViP).

        `scale` is always clamped; this keeps the parameter itself in range, where it has a
        gradient, so the optimizer cannot drift it beyond the bound.
        """
        self.log_scale.clamp_(0.0, math.log(self.config.max_scale))

    def forward(self, video_emb: Tensor, text_emb: Tensor) -> Tensor:
        """Per-sample losses of the local samples.

        Args:
            video_emb: `[b, D]` local video embeddings.
            text_emb: `[b, D]` local text embeddings.

        Returns:
            `[b]` (float32, or float64 for float64 input); see the module docstring for the
            multi-process meaning.

        Raises:
            ValueError: on bad shapes (see `angular_margin_loss`).
        """
        _check_embeddings("video_emb", video_emb)
        _check_embeddings("text_emb", text_emb, video_emb.shape[0])
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size(self.group) > 1
        if not (self.config.gather and distributed):
            return angular_margin_loss(video_emb, text_emb, self.config.margin, self.scale)
        if video_emb.dtype != text_emb.dtype:
            text_emb = text_emb.to(video_emb.dtype)
        (all_video, all_text), offset = gather_features(video_emb, text_emb, group=self.group)
        return angular_margin_loss(
            video_emb, text_emb, self.config.margin, self.scale,
            all_video_emb=all_video, all_text_emb=all_text, offset=offset,
        )
