"""Text-video retrieval metrics (R@1/5/10, median and mean rank) in both directions, and DSL.

Protocol (`research/mama.md` §8, as CLIP4Clip/CLIP-ViP's `compute_metrics`): the 0-based rank of
a ground truth is the number of candidates with a *strictly* greater similarity, so ties are
resolved in the ground truth's favour; `R@K = 100 · mean(rank < K)`, `MdR = median(rank) + 1`,
`MnR = mean(rank) + 1`.

- t2v: each text is a query over the videos; texts of the same video are ranked independently.
- v2t: each video is a query over the texts; its rank is that of its best-ranked own text, i.e.
  the number of texts scoring strictly higher than the best of its own texts.

The matrix is scanned once in row blocks (both directions per block), so the extra memory is a
few MB of block temporaries, plus one copy when the input is not a C-contiguous numpy array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

CHUNK_ELEMENTS = 1 << 22  # similarities compared per row block: 4M, i.e. 4 MB of booleans
KS = (1, 5, 10)  # the R@K cut-offs reported
DSL_SCALE = 100.0  # λ of dual softmax (CAMoE; CLIP-ViP and MAMA use 100)


def _as_matrix(sim: Any) -> np.ndarray:
    if isinstance(sim, torch.Tensor):
        sim = sim.detach().cpu()
        if sim.dtype in (torch.float16, torch.bfloat16):
            sim = sim.float()  # exact: keeps every ordering and tie
        sim = sim.numpy()
    sim = np.asarray(sim)
    if sim.ndim != 2 or sim.size == 0:
        raise ValueError(f"sim must be a non-empty 2-D [num_texts, num_videos] matrix, got shape {sim.shape}")
    if sim.dtype == np.bool_ or not (np.issubdtype(sim.dtype, np.integer) or np.issubdtype(sim.dtype, np.floating)):
        raise ValueError(f"sim must hold real numbers, got dtype {sim.dtype}")
    return np.ascontiguousarray(sim)  # row blocks must be contiguous to scan fast


def _query_to_item(query_to_item: Any, num_texts: int, num_videos: int) -> np.ndarray:
    if query_to_item is None:
        if num_texts != num_videos:
            raise ValueError(
                f"sim is {num_texts}x{num_videos}: without query_to_item it must be square (ground truth on the diagonal)"
            )
        return np.arange(num_texts)
    if isinstance(query_to_item, torch.Tensor):
        query_to_item = query_to_item.detach().cpu().numpy()
    items = np.asarray(query_to_item)
    if items.shape != (num_texts,):
        raise ValueError(f"query_to_item must have shape ({num_texts},), one video per text; got {items.shape}")
    if not np.issubdtype(items.dtype, np.integer):
        raise ValueError(f"query_to_item must hold integer video indices, got dtype {items.dtype}")
    if items.min() < 0 or items.max() >= num_videos:
        raise ValueError(f"query_to_item values must be in [0, {num_videos}), got [{items.min()}, {items.max()}]")
    return items.astype(np.int64, copy=False)


def ground_truth_ranks(sim: Any, query_to_item: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks of the ground truth in both directions.

    Args:
        sim: `[num_texts, num_videos]` similarities (numpy array or torch tensor).
        query_to_item: `[num_texts]` video index of each text; default: the diagonal (square only).

    Returns:
        (`int64 [num_texts]` t2v ranks, `int64 [num_videos_with_text]` v2t ranks in video order;
        videos without any text are left out).

    Raises:
        ValueError: if `sim` is not a non-empty real 2-D matrix or contains NaN, or
            `query_to_item` has the wrong shape, a non-integer dtype or an index out of range.
    """
    sim = _as_matrix(sim)
    num_texts, num_videos = sim.shape
    items = _query_to_item(query_to_item, num_texts, num_videos)
    positive = sim[np.arange(num_texts), items]  # [num_texts]
    floor = -np.inf if np.issubdtype(sim.dtype, np.floating) else np.iinfo(sim.dtype).min
    best = np.full(num_videos, floor, dtype=sim.dtype)  # best score among each video's own texts
    np.maximum.at(best, items, positive)
    has_text = np.bincount(items, minlength=num_videos) > 0

    text_ranks = np.empty(num_texts, np.int64)
    video_ranks = np.zeros(num_videos, np.int64)
    rows = max(1, CHUNK_ELEMENTS // num_videos)
    floating = np.issubdtype(sim.dtype, np.floating)
    for start in range(0, num_texts, rows):
        block = sim[start : start + rows]  # [rows, num_videos]
        if floating and np.isnan(block.max()):  # max propagates NaN; NaN would compare as a hit
            raise ValueError("sim contains NaN")
        text_ranks[start : start + rows] = np.count_nonzero(block > positive[start : start + rows, None], axis=1)
        video_ranks += np.count_nonzero(block > best[None, :], axis=0)
    return text_ranks, video_ranks[has_text]


def rank_summary(ranks: np.ndarray) -> dict[str, float]:
    """R@1/5/10 (percent), MdR and MnR (1-based) of 0-based ranks.

    Args:
        ranks: non-empty 0-based ranks.

    Returns:
        `{"R@1", "R@5", "R@10", "MdR", "MnR"}` as floats.

    Raises:
        ValueError: if `ranks` is empty.
    """
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no ranks to summarise")
    summary = {f"R@{k}": float(100.0 * np.mean(ranks < k)) for k in KS}
    summary["MdR"] = float(np.median(ranks) + 1)
    summary["MnR"] = float(np.mean(ranks) + 1)
    return summary


def dual_softmax(sim: Any, scale: float = DSL_SCALE) -> np.ndarray:
    """Dual-softmax re-ranking (CAMoE): `S ⊙ softmax(scale · S)` over the text axis.

    For each video (column), the softmax normalises over all text queries, so it is transductive:
    it needs the whole query set at once. Computed in row blocks with a per-column max.

    Args:
        sim: `[num_texts, num_videos]` similarities (numpy array or torch tensor).
        scale: λ, the multiplier of the similarities inside the softmax (CAMoE's "temperature"
            100 is this multiplier).

    Returns:
        `[num_texts, num_videos]` numpy array (float32 for float32/16 input, else float64).

    Raises:
        ValueError: if `sim` is not a non-empty real 2-D matrix or `scale` is not positive.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    sim = _as_matrix(sim)
    if sim.dtype not in (np.float32, np.float64):
        sim = sim.astype(np.float64)
    num_texts, num_videos = sim.shape
    rows = max(1, CHUNK_ELEMENTS // num_videos)
    column_max = sim.max(axis=0)  # [num_videos], subtracted so exp cannot overflow
    out = np.empty_like(sim)  # first the numerators exp(scale·(S − max)), then the result
    denominator = np.zeros(num_videos, sim.dtype)
    for start in range(0, num_texts, rows):
        block = out[start : start + rows]
        np.exp(scale * (sim[start : start + rows] - column_max), out=block)
        denominator += block.sum(axis=0)
    for start in range(0, num_texts, rows):
        out[start : start + rows] *= sim[start : start + rows] / denominator
    return out


def retrieval_metrics(
    sim: Any, query_to_item: Any = None, *, dsl: bool = False, dsl_scale: float = DSL_SCALE
) -> dict[str, dict[str, float]]:
    """Text-to-video and video-to-text retrieval metrics of a similarity matrix.

    Ranks follow the module docstring: strict comparison (ties favour the ground truth); in v2t a
    video's rank is that of its best-ranked own text, and videos with no text are excluded from
    v2t (they are not queries).

    Args:
        sim: `[num_texts, num_videos]` similarities (numpy array or torch tensor).
        query_to_item: `[num_texts]` video index of each text; default: the diagonal, which
            requires a square `sim`.
        dsl: also report the metrics after `dual_softmax` re-ranking (transductive), under
            separate keys.
        dsl_scale: λ for `dual_softmax`.

    Returns:
        `{"t2v": m, "v2t": m}`, each `m` with `R@1`, `R@5`, `R@10` (percent), `MdR`, `MnR`; with
        `dsl=True` also `"t2v_dsl"` and `"v2t_dsl"` computed on the re-ranked matrix.

    Raises:
        ValueError: see `ground_truth_ranks` (shape, dtype, NaN, `query_to_item`), or a
            non-positive `dsl_scale`.
    """
    if dsl and not dsl_scale > 0:
        raise ValueError(f"dsl_scale must be positive, got {dsl_scale}")
    text_ranks, video_ranks = ground_truth_ranks(sim, query_to_item)
    metrics = {"t2v": rank_summary(text_ranks), "v2t": rank_summary(video_ranks)}
    if dsl:
        text_ranks, video_ranks = ground_truth_ranks(dual_softmax(sim, dsl_scale), query_to_item)
        metrics["t2v_dsl"] = rank_summary(text_ranks)
        metrics["v2t_dsl"] = rank_summary(video_ranks)
    return metrics
