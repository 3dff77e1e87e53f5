"""Merging one video's touching hits into moments."""

from __future__ import annotations

from mixma.index.search import merge_adjacent


def test_touching_hits_that_score_alike_become_one_moment():
    hits = [(0, 0.0, 2.0, 0.90), (1, 2.0, 4.0, 0.85), (2, 4.0, 6.0, 0.80), (4, 8.0, 10.0, 0.95)]
    assert merge_adjacent(hits) == [(8.0, 10.0, 0.95), (0.0, 6.0, 0.90)]


def test_a_much_weaker_neighbour_stays_apart():
    hits = [(0, 0.0, 2.0, 0.9), (1, 2.0, 4.0, 0.3)]
    assert merge_adjacent(hits) == [(0.0, 2.0, 0.9), (2.0, 4.0, 0.3)]


def test_the_floor_is_the_seed_score_not_the_neighbour():
    # 0.9 -> 0.75 -> 0.6: 0.75 joins (>= 0.72), 0.6 does not, even though it is 0.8 x 0.75
    hits = [(0, 0.0, 1.0, 0.9), (1, 1.0, 2.0, 0.75), (2, 2.0, 3.0, 0.6)]
    assert merge_adjacent(hits) == [(0.0, 2.0, 0.9), (2.0, 3.0, 0.6)]


def test_gaps_are_not_bridged_and_order_of_input_does_not_matter():
    hits = [(3, 6.0, 8.0, 0.5), (0, 0.0, 2.0, 0.5), (2, 4.0, 6.0, 0.5)]
    assert merge_adjacent(hits) == [(0.0, 2.0, 0.5), (4.0, 8.0, 0.5)]
    assert merge_adjacent(list(reversed(hits))) == merge_adjacent(hits)


def test_every_hit_lands_in_exactly_one_moment():
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        keep = np.sort(rng.choice(20, size=n, replace=False))
        hits = [(int(i), float(i), float(i + 1), float(s)) for i, s in zip(keep, rng.random(n))]
        moments = merge_adjacent(hits)
        covered = sorted(i for a, b, _ in moments for i in range(int(a), int(b)))
        assert covered == keep.tolist()
        assert all(any(a <= h[1] and h[2] <= b and s >= h[3] for a, b, s in moments) for h in hits)
