"""The vector engine: faiss, with the index type chosen by collection size, as autofaiss does.

- up to `EXACT_MAX` vectors: `Flat`, exact inner-product search (at 50k x 1000 dims, a few ms);
- above: an inverted file (`IVF{nlist}`, `nlist ~ sqrt(n)` k-means cells), storing full vectors
  (`Flat`) up to `SQ8_MIN` and 8-bit scalar-quantised ones (`SQ8`, a quarter of the memory) above;
  `nprobe` (cells visited per query) is tuned when the index is built: the smallest power of two
  whose recall@10 against exact search reaches `target_recall` for a sample of the stored vectors
  as queries, each left out of its own results (else its own cell makes recall look better than
  a new query gets), times `NPROBE_MARGIN`.

Every vector carries its moment's id (the SQLite row id), so faiss answers ids and the metadata
store answers the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EXACT_MAX = 50_000
SQ8_MIN = 300_000
TUNE_QUERIES = 200
NPROBE_MARGIN = 2  # the tuned nprobe is doubled: new queries fall a little short of held-in ones (0.938 vs 0.95 at 1M)


@dataclass(frozen=True)
class EngineChoice:
    factory: str  # faiss index_factory string
    nlist: int = 0  # IVF cells (0: exact)


def choose(n: int, exact_max: int = EXACT_MAX) -> EngineChoice:
    """The index type for `n` vectors (see the module docstring)."""
    if n <= exact_max:
        return EngineChoice("IDMap2,Flat")
    nlist = int(2 ** round(math.log2(math.sqrt(n))))  # a power of two near sqrt(n)
    return EngineChoice(f"IVF{nlist},{'SQ8' if n >= SQ8_MIN else 'Flat'}", nlist)


def build(vectors: np.ndarray, ids: np.ndarray, *, exact_max: int = EXACT_MAX, target_recall: float = 0.95,
          seed: int = 0, tune: bool = True):
    """A faiss index of `[n, d]` float32 vectors with int64 `ids`; returns (index, info dict)."""
    import faiss  # noqa: PLC0415

    n, d = vectors.shape
    choice = choose(n, exact_max)
    index = faiss.index_factory(d, choice.factory, faiss.METRIC_INNER_PRODUCT)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    info = {"factory": choice.factory, "count": int(n), "dim": int(d), "nprobe": 0}
    if choice.nlist:
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, size=min(n, 40 * choice.nlist), replace=False)]
        index.train(sample)
    index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
    if choice.nlist:
        info["nprobe"] = tune_nprobe(index, vectors, np.asarray(ids), target_recall, seed) if tune else max(1, choice.nlist // 16)
        faiss.extract_index_ivf(index).nprobe = info["nprobe"]
    return index, info


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 65536) -> np.ndarray:
    """Row positions of each query's `k` best inner products, exactly (blockwise, bounded memory)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), block):
        scores = queries @ vectors[start:start + block].T
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)], axis=1)
        keep = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1)
    return best_i


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of `truth` that appears in the same row of `found`."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def tune_nprobe(index, vectors: np.ndarray, ids: np.ndarray, target: float, seed: int = 0, k: int = 10) -> int:
    """Twice the smallest power-of-two nprobe with recall@k >= target, for stored vectors as
    queries left out of their own results (a query's own cell is not a free hit, as for a new
    query); doubled because new queries still fall a little short (benchmarks/RESULTS.md)."""
    import faiss  # noqa: PLC0415

    ivf = faiss.extract_index_ivf(index)
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(len(vectors), size=min(TUNE_QUERIES, len(vectors)), replace=False)
    queries = vectors[rows]
    truth = _without(ids[exact_top(vectors, queries, k + 1)], ids[rows], k)
    nprobe = 1
    while True:
        ivf.nprobe = nprobe
        _, found = index.search(queries, k + 1)
        if nprobe >= ivf.nlist or recall_at(_without(found, ids[rows], k), truth) >= target:
            return min(ivf.nlist, nprobe * NPROBE_MARGIN)
        nprobe *= 2


def _without(found: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """Each row's first `k` ids other than its own."""
    return np.stack([row[row != i][:k] for row, i in zip(found, own)])


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`[Q, d]` queries → (scores `[Q, k]`, ids `[Q, k]`; id -1 where fewer than k exist)."""
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    if index.ntotal == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def save(index, path) -> None:
    import faiss  # noqa: PLC0415

    faiss.write_index(index, str(path))


def load(path):
    import faiss  # noqa: PLC0415

    return faiss.read_index(str(path))


def sharded(shards: list, dim: int):
    """One searchable index over several (each holding its own ids): every query goes to every
    shard and the per-shard top-k lists are merged by score, which is exact when the shards are.
    The first step of scaling search past one index (README, "When a collection outgrows one
    machine"). The caller keeps `shards` alive: the merged index only points at them."""
    import faiss  # noqa: PLC0415

    merged = faiss.IndexShards(dim, False, False)  # threaded=False, successive_ids=False: keep each shard's ids
    for shard in shards:
        merged.add_shard(shard)
    return merged
