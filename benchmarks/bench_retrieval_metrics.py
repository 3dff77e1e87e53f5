"""Retrieval metrics on a 10,000 x 10,000 float32 matrix: ours against a CLIP4Clip-style baseline.

Baseline ("naive-argsort"): CLIP4Clip's `compute_metrics`, which sorts every row of the negated
matrix and finds where the sorted row equals the ground truth's score; v2t runs it on the
transpose. Ours: `mixma.eval.retrieval_metrics` (one blocked scan, strict comparisons).

Time is wall-clock of one call (best of `--repeats`); memory is the tracemalloc peak during the
call (numpy allocations), i.e. extra memory beyond the input matrix.

Run: `.venv/bin/python benchmarks/bench_retrieval_metrics.py`
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from mixma.eval.retrieval import retrieval_metrics


def naive_metrics(sim: np.ndarray) -> dict[str, dict[str, float]]:
    """CLIP4Clip-style metrics of a square matrix with the ground truth on the diagonal."""

    def one_direction(x: np.ndarray) -> dict[str, float]:
        ordered = np.sort(-x, axis=1)
        truth = np.diag(-x)[:, None]
        ranks = np.where(ordered - truth == 0)[1]  # first match per row (no ties in random floats)
        return {
            "R@1": float(np.mean(ranks == 0) * 100),
            "R@5": float(np.mean(ranks < 5) * 100),
            "R@10": float(np.mean(ranks < 10) * 100),
            "MdR": float(np.median(ranks) + 1),
            "MnR": float(np.mean(ranks) + 1),
        }

    return {"t2v": one_direction(sim), "v2t": one_direction(sim.T)}


def measure(fn, sim: np.ndarray, repeats: int) -> tuple[float, int, dict]:
    best, peak, result = float("inf"), 0, None
    for _ in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        result = fn(sim)
        best = min(best, time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return best, peak, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="texts = videos")
    parser.add_argument("--repeats", type=int, default=3, help="calls of ours; the baseline runs once")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    sim = rng.standard_normal((args.size, args.size), dtype=np.float32)
    sim[np.arange(args.size), np.arange(args.size)] += 3.0  # a plausible model: truths score high
    mb = sim.nbytes / 2**20
    print(f"matrix: {args.size} x {args.size} float32 ({mb:.0f} MiB)")

    ours_time, ours_peak, ours = measure(retrieval_metrics, sim, args.repeats)
    naive_time, naive_peak, naive = measure(naive_metrics, sim, 1)
    for direction in ("t2v", "v2t"):
        for key in ours[direction]:
            assert abs(ours[direction][key] - naive[direction][key]) < 1e-9, (direction, key)
    print(f"ours          : {ours_time:7.3f} s   peak extra memory {ours_peak / 2**20:8.1f} MiB ({ours_peak / sim.nbytes:.3f}x matrix)")
    print(f"naive-argsort : {naive_time:7.3f} s   peak extra memory {naive_peak / 2**20:8.1f} MiB ({naive_peak / sim.nbytes:.3f}x matrix)")
    print(f"speed-up vs naive-argsort: {naive_time / ours_time:.1f}x; memory ratio naive/ours: {naive_peak / ours_peak:.0f}x")
    print(f"goal <= 2 s: {'met' if ours_time <= 2.0 else 'NOT met'}; results identical: yes")
    print("t2v", {k: round(v, 3) for k, v in ours["t2v"].items()})


if __name__ == "__main__":
    main()
