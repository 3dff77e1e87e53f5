"""The budget rule: the stated guarantee as a property, the balancing against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mixma.video.changes import classify_bursts
from mixma.video.compose import MeanCompositor
from mixma.video.mixed_config import THUMBNAIL
from mixma.video.segments import Segmenter, best_limit, budget_bound, fewest_outputs, guaranteed_longest

IMAGE = np.zeros((2, 2, 3), np.uint8)


def run_segmenter(kinds, num_outputs, fps=10.0, max_action_sec=5.0, atom_len=None, levels=None):
    """Analysed frames one per source frame at `fps`; returns the segments and the bound B."""
    n = len(kinds)
    times = np.arange(n) / fps
    end = n / fps

    def duration(a, b):
        return min(times[b] + 1 / fps, end) - times[a]

    bound = budget_bound(max_action_sec, end, num_outputs)
    max_action = max(1, math.floor(max_action_sec * fps + 1e-9))
    atom_len = atom_len or max(1, min(max_action, n // (4 * num_outputs)))
    segmenter = Segmenter(num_outputs, duration, bound, 4, MeanCompositor(), short=end / (4 * num_outputs))
    marked = classify_bursts(times, kinds, 0.25)
    for i, kind in enumerate(marked):
        level = 100 if levels is None else levels[i]
        segmenter.add(i, np.full((THUMBNAIL, THUMBNAIL, 3), level, np.uint8), IMAGE, kind, None, atom_len)
    return segmenter.finish(), bound, marked, duration


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.sampled_from([None] * 12 + ["event", "cut"]), min_size=20, max_size=400),
    num_outputs=st.integers(1, 12),
    fps=st.sampled_from([5.0, 10.0, 12.5]),
    max_action_sec=st.sampled_from([0.5, 2.0, 5.0]),
    seed=st.integers(0, 1000),
)
def test_the_budget_guarantee(kinds, num_outputs, fps, max_action_sec, seed):
    """As stated in mixma.video.segments: with S strong boundaries and S < T, none is blended
    across and no output lasts longer than max(B, D / ceil((T - S) / 2)); with S >= T every
    boundary between outputs is a strong one."""
    levels = np.random.default_rng(seed).integers(60, 200, len(kinds))  # segments look different
    segments, bound, marked, duration = run_segmenter(kinds, num_outputs, fps, max_action_sec, levels=levels)
    n = len(kinds)
    assert len(segments) == min(num_outputs, n)
    assert segments[0].first == 0 and segments[-1].last == n - 1
    assert all(a.last + 1 == b.first for a, b in zip(segments, segments[1:]))
    strong = {i for i, k in enumerate(marked) if k in ("cut", "event") and i > 0}
    starts = {s.first for s in segments[1:]}
    if len(strong) < len(segments):
        assert strong <= starts
        longest = guaranteed_longest(bound, n / fps, num_outputs, len(strong))
        assert max(duration(s.first, s.last) for s in segments) <= longest + 1e-9
    else:
        assert starts <= strong


def test_a_calm_stretch_gets_outputs_of_its_own():
    """The vtest.avi case: 80 s at 10 analysed frames a second, four events in the first 30 s
    and a calm 50 s after them; 8 outputs. Before, the calm part got one output."""
    kinds = [None] * 800
    for t in (13, 105, 250, 300):
        kinds[t] = "event"
    levels = np.full(800, 100)
    levels[300:] = 101  # the calm stretch looks the same throughout
    segments, bound, _, duration = run_segmenter(kinds, 8, levels=levels)
    assert bound == 10.0
    lengths = [duration(s.first, s.last) for s in segments]
    calm = [length for s, length in zip(segments, lengths) if s.first >= 300]
    assert len(calm) >= 3 and max(calm) <= 1.5 * bound  # 50 s over the outputs left, evenly
    assert {13, 105, 250, 300} <= {s.first for s in segments}


def test_bursts_get_one_output_and_brief_events_their_own():
    kinds = [None] * 300
    kinds[100:110] = ["event"] * 10  # ten changes a tenth of a second apart: a burst
    kinds[200], kinds[203] = "event", "event"  # something appears and goes 0.3 s later
    segments, _, marked, _ = run_segmenter(kinds, 6)
    starts = [s.first for s in segments]
    assert 100 in starts and 109 in starts and not set(range(101, 109)) & set(starts)
    assert 200 in starts and 203 in starts
    assert marked[101:109] == ["burst"] * 8


def test_a_merge_past_the_limit_loses_to_any_merge_within_it():
    """Atoms of 0.28, 0.28, 0.08 and 0.08 s; the first two are the most alike, but together they
    would last 0.56 s > B = 0.5 s, so the merge that stays within the bound wins."""
    levels = [100] * 7 + [101] * 7 + [106] * 2 + [111] * 2
    segments, _, _, duration = run_segmenter([None] * 18, 3, fps=25, max_action_sec=0.5, atom_len=7, levels=levels)
    spans = [(s.first, s.last) for s in segments]
    assert (0, 13) not in spans
    assert len(spans) == 3 and max(duration(a, b) for a, b in spans) <= 0.5 + 1e-9


def test_the_buffer_never_grows_with_video_length():
    """Streaming: at most 2T segments are held, however many frames go by."""
    rng = np.random.default_rng(0)
    times = np.arange(20000) / 25
    segmenter = Segmenter(8, lambda a, b: times[b] - times[a] + 0.04, budget_bound(5, 800, 8), 4, MeanCompositor())
    largest = 0
    for i in range(20000):
        kind = "cut" if i % 97 == 0 and i else None
        thumb = rng.integers(0, 256, (THUMBNAIL, THUMBNAIL, 3), dtype=np.uint8) if kind else np.zeros((THUMBNAIL, THUMBNAIL, 3), np.uint8)
        segmenter.add(i, thumb, IMAGE, kind, None, atom_len=50)
        largest = max(largest, len(segmenter.segments))
    assert largest <= 16
    assert len(segmenter.finish()) == 8


def brute_force_limit(lengths, fixed, target):
    """The shortest achievable longest output, over every way of keeping boundaries."""
    best = math.inf
    free = [i for i, f in enumerate(fixed) if not f]
    for r in range(len(free) + 1):
        for kept in itertools.combinations(free, r):
            cuts = sorted(set(kept) | {i for i, f in enumerate(fixed) if f})
            if len(cuts) + 1 > target:
                continue
            edges = [0] + [c + 1 for c in cuts] + [len(lengths)]
            best = min(best, max(sum(lengths[a:b]) for a, b in zip(edges, edges[1:])))
    return best


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_best_limit_is_the_brute_force_optimum(data):
    n = data.draw(st.integers(1, 9))
    lengths = data.draw(st.lists(st.floats(0.1, 5.0), min_size=n, max_size=n))
    fixed = data.draw(st.lists(st.booleans(), min_size=n - 1, max_size=n - 1))
    target = data.draw(st.integers(1, n))
    expected = brute_force_limit(lengths, fixed, target)
    got = best_limit(lengths, fixed, target)
    if math.isinf(expected):
        assert math.isinf(got)
    else:
        assert abs(got - expected) <= 1e-9 * max(1.0, expected)
        assert fewest_outputs(lengths, fixed, got) <= target
