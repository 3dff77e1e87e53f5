"""The vector engine: the index type by size, exact search, and tuned IVF recall."""

from __future__ import annotations

import numpy as np
import pytest

from mixma.index import vectors


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n, d, clusters, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    return unit(centres[rng.integers(clusters, size=n)] + 0.35 * rng.standard_normal((n, d)))


def test_exact_below_the_threshold_ivf_above_sq8_for_the_largest():
    assert vectors.choose(50_000).factory == "IDMap2,Flat"
    big = vectors.choose(100_000)
    assert big.factory.startswith("IVF") and big.factory.endswith(",Flat") and 256 <= big.nlist <= 512
    assert vectors.choose(1_000_000).factory.endswith(",SQ8")


def test_exact_top_matches_a_full_sort():
    rng = np.random.default_rng(1)
    data, queries = unit(rng.standard_normal((1000, 8))), unit(rng.standard_normal((5, 8)))
    expected = np.argsort(-(queries @ data.T), axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(vectors.exact_top(data, queries, 7, block=128), expected)


def test_flat_index_answers_ids_and_exact_scores():
    rng = np.random.default_rng(2)
    data = unit(rng.standard_normal((300, 16)))
    ids = np.arange(1000, 1300)
    index, info = vectors.build(data, ids)
    assert info["factory"] == "IDMap2,Flat"
    scores, found = vectors.search(index, data[:3], 5)
    assert found[:, 0].tolist() == [1000, 1001, 1002]
    np.testing.assert_allclose(scores, -np.sort(-(data[:3] @ data.T), axis=1)[:, :5], rtol=1e-5)


def test_tuned_ivf_reaches_its_recall_target_on_new_queries():
    both = clustered(20_200, 32, 64)
    data, queries = both[:20_000], both[20_000:]  # queries from the same clusters, not in the index
    index, info = vectors.build(data, np.arange(len(data)), exact_max=1000, target_recall=0.95)
    assert info["factory"].startswith("IVF") and 1 <= info["nprobe"] < vectors.choose(20_000, exact_max=1000).nlist
    _, found = index.search(queries, 10)
    truth = vectors.exact_top(data, queries, 10)
    assert vectors.recall_at(found, truth) >= 0.93  # tuned on stored vectors, checked on new ones
    import faiss

    faiss.extract_index_ivf(index).nprobe = 1
    _, rough = index.search(queries, 10)
    assert vectors.recall_at(rough, truth) < vectors.recall_at(found, truth)  # nprobe mattered


@pytest.mark.parametrize("n", [0, 3])
def test_search_copes_with_fewer_vectors_than_asked(n):
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(4))
    if n:
        index.add_with_ids(unit(np.eye(4)[:n] + 0.1), np.arange(n))
    scores, ids = vectors.search(index, unit(np.ones((1, 4))), 10)
    assert ids.shape[1] == (n if n else 0) and (ids >= 0).all()


def test_sharded_search_equals_one_exact_index():
    rng = np.random.default_rng(3)
    data = unit(rng.standard_normal((3000, 24)))
    ids = rng.permutation(10_000)[:3000]
    whole, _ = vectors.build(data, ids)
    parts = [vectors.build(data[i::3], ids[i::3])[0] for i in range(3)]  # three machines' worth
    queries = unit(rng.standard_normal((20, 24)))
    s1, i1 = whole.search(queries, 10)
    s2, i2 = vectors.sharded(parts, 24).search(queries, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-6)
