"""Search latency (p50 / p99, one query at a time) and recall@10 against exact search of the
vector engine `mixma.index.vectors` at 10k, 100k and 1M moments, and its size per moment.

Vectors: the default model's dimension (1000, the concept bank). A real collection's moments are
not spread uniformly over the sphere: neighbouring moments of a video, and videos of the same
things, form clusters. The main rows use clustered unit vectors (1000 Gaussian clusters, noise as large
as the centre: same-cluster cosines ~0.5) with queries drawn from the same clusters and not stored; `--uniform`
adds i.i.d. uniform unit vectors, the worst case for any approximate index (all distances
concentrate: there is no neighbourhood structure to exploit).

Baseline, measured in the same run on the same vectors: exact search (faiss `IndexFlatIP`, the
engine's own choice up to 50k; above 200k, to keep one copy of the vectors in memory, blockwise
numpy `exact_top`, timed on 10 single queries), whose answers are the ground truth for recall.

    .venv/bin/python benchmarks/bench_search.py --sizes 10000 100000 1000000 --queries 200
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np


def clustered(n: int, d: int, seed: int, clusters: int = 1000, noise: float = 1.0, start: int = 0) -> np.ndarray:
    centres = np.random.default_rng(12345).standard_normal((clusters, d)).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for i in range(0, n, 100_000):  # in blocks: bounded temporaries
        m = min(100_000, n - i)
        rng = np.random.default_rng([seed, start + i])
        block = centres[rng.integers(clusters, size=m)] + noise * rng.standard_normal((m, d), dtype=np.float32)
        out[i:i + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def uniform(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        _, ids = index.search(q[None], k)
        times.append(time.perf_counter() - start)
        found.append(ids[0])
    return np.array(times) * 1000, np.stack(found)


def index_bytes(index) -> int:
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def run(n: int, d: int, queries: int, kind: str) -> None:
    import faiss

    from mixma.index import vectors

    make = (lambda m, seed: clustered(m, d, seed)) if kind == "clustered" else (lambda m, seed: uniform(m, d, seed))
    data, q = make(n, 0), make(queries, 1)
    ids = np.arange(n)
    if n <= 200_000:
        exact = faiss.IndexFlatIP(d)
        exact.add(data)
        exact_ms, truth = timed(exact, q)
        del exact
    else:  # no second copy of the vectors: blockwise exact search, timed on a few single queries
        truth = vectors.exact_top(data, q, 10)
        exact_ms = []
        for one in q[:10]:
            start = time.perf_counter()
            vectors.exact_top(data, one[None], 10)
            exact_ms.append((time.perf_counter() - start) * 1000)
        exact_ms = np.array(exact_ms)
    start = time.perf_counter()
    index, info = vectors.build(data, ids)
    build_s = time.perf_counter() - start
    ms, found = timed(index, q)
    recall = vectors.recall_at(found, truth)
    size = index_bytes(index) / n
    print(f"| {kind} | {n:,} | {info['factory']} | {info['nprobe'] or '-'} | {build_s:.1f} s | "
          f"**{np.percentile(ms, 50):.2f}** / {np.percentile(ms, 99):.2f} ms | **{recall:.3f}** | "
          f"{np.percentile(exact_ms, 50):.2f} / {np.percentile(exact_ms, 99):.2f} ms | "
          f"{size:,.0f} B (+ {4 * d:,} B float32 in SQLite) |", flush=True)
    if info["nprobe"]:  # what other nprobe values would have given, on the same new queries
        ivf = faiss.extract_index_ivf(index)
        for nprobe in (1, 2, 4, 8, 16):
            ivf.nprobe = nprobe
            ms, found = timed(index, q)
            print(f"|   | nprobe {nprobe} | | | | {np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f} ms | "
                  f"{vectors.recall_at(found, truth):.3f} | | |", flush=True)
    del data, index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--uniform", type=int, nargs="*", default=[], help="sizes to also run on uniform vectors")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    print(f"dim {args.dim}, {args.queries} queries one at a time, {args.threads} threads")
    print("| vectors | moments | engine | nprobe | build | p50 / p99 | recall@10 | exact p50 / p99 (baseline) | index bytes / moment |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        run(n, args.dim, args.queries, "clustered")
    for n in args.uniform:
        run(n, args.dim, args.queries, "uniform")


if __name__ == "__main__":
    main()
