"""Retrieval metrics against a slow sort-based reference, hand-computed cases and the DSL formula."""

from __future__ import annotations

import statistics
import tracemalloc

import numpy as np
import pytest
import torch

from mixma.eval import retrieval
from mixma.eval.retrieval import dual_softmax, ground_truth_ranks, retrieval_metrics


def reference_ranks(sim: np.ndarray, query_to_item: np.ndarray) -> tuple[list[int], list[int]]:
    """CLIP4Clip's statement: sort each query's scores, the rank is the first position of the
    ground truth's value; in v2t, the best position over the video's own texts."""
    num_texts, num_videos = sim.shape
    t2v = []
    for i in range(num_texts):
        ordered = np.sort(-sim[i])
        t2v.append(int(np.where(ordered == -sim[i, query_to_item[i]])[0][0]))
    v2t = []
    for j in range(num_videos):
        own = [i for i in range(num_texts) if query_to_item[i] == j]
        if own:
            ordered = np.sort(-sim[:, j])
            v2t.append(min(int(np.where(ordered == -sim[i, j])[0][0]) for i in own))
    return t2v, v2t


def reference_summary(ranks: list[int]) -> dict[str, float]:
    n = len(ranks)
    out = {f"R@{k}": 100.0 * sum(r < k for r in ranks) / n for k in (1, 5, 10)}
    out["MdR"] = statistics.median(ranks) + 1
    out["MnR"] = sum(ranks) / n + 1
    return out


def assert_metrics_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-12), key


def test_hand_computed_square_case_with_a_tie():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.4, 0.4, 0.4]])
    # t2v ranks: row 0 → 0; row 1: 0.8 > 0.3 → 1; row 2: all tied → 0 (ties favour the truth)
    # v2t ranks: column 0 → 0; column 1: 0.4 > 0.3 → 1; column 2: 0.5, 0.8 > 0.4 → 2
    text_ranks, video_ranks = ground_truth_ranks(sim)
    assert text_ranks.tolist() == [0, 1, 0] and video_ranks.tolist() == [0, 1, 2]
    metrics = retrieval_metrics(sim)
    assert metrics["t2v"] == pytest.approx({"R@1": 200 / 3, "R@5": 100.0, "R@10": 100.0, "MdR": 1.0, "MnR": 4 / 3})
    assert metrics["v2t"] == pytest.approx({"R@1": 100 / 3, "R@5": 100.0, "R@10": 100.0, "MdR": 2.0, "MnR": 2.0})


def test_hand_computed_several_captions_per_video():
    sim = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.5]])
    # texts 0, 1 describe video 0 and texts 2, 3 video 1
    text_ranks, video_ranks = ground_truth_ranks(sim, [0, 0, 1, 1])
    assert text_ranks.tolist() == [1, 0, 0, 1]
    # video 0's best own text scores 0.8 (rank 0); video 1's scores 0.7 and 0.9 (text 0) beats it
    assert video_ranks.tolist() == [0, 1]


def test_videos_without_text_are_left_out_of_v2t():
    sim = np.array([[0.5, 0.1, 0.9, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4, 0.6]])
    text_ranks, video_ranks = ground_truth_ranks(sim, np.array([2, 4]))
    assert text_ranks.tolist() == [0, 0]
    assert video_ranks.tolist() == [0, 0]  # videos 2 and 4 only
    assert retrieval_metrics(sim, [2, 4])["v2t"]["R@1"] == 100.0


def random_case(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "square":
        num_texts = num_videos = 37
        items = np.arange(37)
    elif kind == "captions":  # 3 to 5 captions per video, shuffled
        num_videos = 23
        items = rng.permutation(np.repeat(np.arange(num_videos), rng.integers(3, 6, num_videos)))
        num_texts = len(items)
    else:  # "sparse": more videos than texts, several videos without any text
        num_texts, num_videos = 30, 41
        items = rng.integers(0, num_videos, num_texts)
    sim = rng.integers(0, 6, (num_texts, num_videos)).astype(np.float32) / 5  # many ties
    return sim, items


@pytest.mark.parametrize("kind", ["square", "captions", "sparse"])
@pytest.mark.parametrize("chunk", [7, 100, retrieval.CHUNK_ELEMENTS])  # many blocks, a few, one
def test_random_matrices_with_ties_match_the_reference(monkeypatch, kind, chunk):
    monkeypatch.setattr(retrieval, "CHUNK_ELEMENTS", chunk)
    for seed in range(3):
        sim, items = random_case(kind, seed)
        want_t2v, want_v2t = reference_ranks(sim, items)
        text_ranks, video_ranks = ground_truth_ranks(sim, items)
        assert text_ranks.tolist() == want_t2v and video_ranks.tolist() == want_v2t
        metrics = retrieval_metrics(sim, None if kind == "square" else items)
        assert_metrics_equal(metrics["t2v"], reference_summary(want_t2v))
        assert_metrics_equal(metrics["v2t"], reference_summary(want_v2t))


def test_torch_and_half_precision_inputs_give_the_numpy_result():
    sim, items = random_case("captions", 4)
    expected = retrieval_metrics(sim, items)
    assert retrieval_metrics(torch.from_numpy(sim), torch.from_numpy(items)) == expected
    assert retrieval_metrics(torch.from_numpy(sim).half(), items) == retrieval_metrics(sim.astype(np.float16), items)
    assert retrieval_metrics(sim.T.copy().T, items) == expected  # a non-contiguous (transposed) view


def test_dual_softmax_is_the_product_with_the_softmax_over_texts():
    rng = np.random.default_rng(5)
    sim = rng.uniform(-1, 1, (9, 6))
    numerator = np.exp(100 * sim)  # float64 is exact enough without the max shift here
    expected = sim * numerator / numerator.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(dual_softmax(sim), expected, rtol=1e-12)
    np.testing.assert_allclose(dual_softmax(sim, scale=3.0), sim * np.exp(3 * sim) / np.exp(3 * sim).sum(0), rtol=1e-12)
    assert dual_softmax(sim.astype(np.float32)).dtype == np.float32


def test_dsl_is_reported_separately_and_suppresses_a_hub_video():
    # video 2 is a hub: every text scores 0.9 with it, so plain t2v only gets text 2 right
    sim = np.array([[0.8, 0.1, 0.9], [0.1, 0.8, 0.9], [0.1, 0.1, 0.9]])
    metrics = retrieval_metrics(sim, dsl=True)
    assert set(metrics) == {"t2v", "v2t", "t2v_dsl", "v2t_dsl"}
    assert metrics["t2v"]["R@1"] == pytest.approx(100 / 3)
    assert metrics["t2v_dsl"]["R@1"] == 100.0  # the hub's column is spread over all three texts
    plain_of_dsl = retrieval_metrics(dual_softmax(sim))
    assert metrics["t2v_dsl"] == plain_of_dsl["t2v"] and metrics["v2t_dsl"] == plain_of_dsl["v2t"]
    assert retrieval_metrics(sim) == {k: metrics[k] for k in ("t2v", "v2t")}


@pytest.mark.parametrize(
    "sim, items, match",
    [
        (np.zeros(4), None, "2-D"),
        (np.zeros((0, 3)), None, "non-empty"),
        (np.zeros((3, 4)), None, "square"),
        (np.zeros((3, 4)), [0, 1], "shape"),
        (np.zeros((3, 4)), [0, 1, 4], r"\[0, 4\)"),
        (np.zeros((3, 4)), [0, -1, 2], r"\[0, 4\)"),
        (np.zeros((3, 4)), [0.0, 1.0, 2.0], "integer"),
        (np.array([[0.1, np.nan], [0.2, 0.3]]), None, "NaN"),
        (np.ones((2, 2), dtype=bool), None, "real"),
    ],
)
def test_bad_input_raises_value_error(sim, items, match):
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(sim, items)


def test_bad_dsl_scale_raises_value_error():
    with pytest.raises(ValueError, match="scale"):
        retrieval_metrics(np.eye(3), dsl=True, dsl_scale=0.0)


def test_extra_memory_is_a_few_blocks_not_a_matrix():
    sim = np.random.default_rng(6).random((3000, 3000), dtype=np.float32)  # 36 MB
    tracemalloc.start()
    try:
        retrieval_metrics(sim)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * retrieval.CHUNK_ELEMENTS  # the blocks' temporaries, far below sim.nbytes
    assert peak < sim.nbytes / 4


@pytest.mark.slow
def test_ten_thousand_square():
    """At benchmark size (its speed is measured in benchmarks/bench_retrieval_metrics.py)."""
    rng = np.random.default_rng(7)
    sim = rng.random((10_000, 10_000), dtype=np.float32)
    sim[np.arange(10_000), np.arange(10_000)] += 1.0  # every ground truth strictly on top
    metrics = retrieval_metrics(sim)
    assert metrics["t2v"]["R@1"] == metrics["v2t"]["R@1"] == 100.0
