"""Grouping analysed frames into exactly T segments: how MixedFrame spends its budget.

Analysed frames arrive in order with the change decision of each (`mixma.video.changes`): a
cut, an event, the inside of a burst (`classify_bursts`: flicker, fast motion; only a burst's
first and last changes stay boundaries worth keeping), or nothing.

Frames are then grouped into *atoms*: an atom ends at a change or when it reaches a length cap
(at most `max_action_sec`, and short enough that there are at least `4 T` atoms). Atoms are kept
in a buffer of `2 T` segments, each with a thumbnail sum and a compositor state that can be
merged. Whenever the buffer overflows, the best adjacent pair is merged, ranked by `merge_key`:

1. the boundary between them: a plain split or a burst's inside first, then an event, a cut last;
2. whether the merged segment would last longer than `B / 2`, where `B = max(max_action_sec,
   duration / T)`: merges within it come first (the buffer holds 2T segments, so B / 2 leaves
   room for all of the video, and pieces that small can still be balanced at the end);
3. within that length, a burst's inside first (flicker looks different from frame to frame, but
   is one thing), then slivers (a plain segment shorter than a quarter of `duration / T`), then
   how alike the two look (the largest cell difference of their mean
   thumbnails, distances under `NOISE_FLOOR` levels counting as equal), then their combined
   length; past it, the merged length alone, shortest first.

At the end, until T remain: if the plain boundaries (splits, bursts' insides) are enough to
remove, the longest output is first made as short as it can be with the boundaries left (never
shorter than B: `best_limit`), then the most alike neighbours are merged as long as the merge
keeps that limit reachable; otherwise every plain boundary goes, then events, then cuts, ranked as
above.

The rule, as a guarantee. Call a cut, or an event that is not inside a burst, a *strong*
boundary, and let S be their number. If S < T, no output blends across a strong boundary, and
no output lasts longer than `max(B, D / ceil((T - S) / 2))` for a video (or clip) of D seconds:
about 2B when S is small against T, and in practice as balanced as the strong boundaries allow.
(Proof: when a merge past the length limit is made, every pair across a plain boundary is longer
than the chosen one, and there are at least T - S such boundaries, so at least ceil((T - S) / 2)
disjoint pairs, each at least as long as the chosen one, fit in D; the final balancing can only
do better.) If S >= T, every boundary between outputs is a strong one: the budget went to cuts
and brief events, and calm stretches share outputs.

Memory is bounded by the buffer (`2 T` compositor states at the working size), not by the
video's length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from mixma.video.changes import change_score

NOISE_FLOOR = 2.0  # segment distances below this many levels are compression noise

Boundary = Literal["start", "cut", "event", "burst", "split"]
_STRENGTH = {"split": 0, "burst": 0, "event": 1, "cut": 2, "start": 3}


@dataclass
class Segment:
    first: int  # source index of the first analysed frame
    last: int  # source index of the last analysed frame
    count: int  # analysed frames
    thumb_sum: np.ndarray  # float32 [THUMBNAIL, THUMBNAIL, 3], YCbCr
    boundary: Boundary  # what begins this segment
    state: Any  # compositor state

    @property
    def thumb_mean(self) -> np.ndarray:
        return self.thumb_sum / self.count


def merge_key(a: Segment, b: Segment, duration: Callable[[int, int], float], limit: float, grid: int,
              short: float = 0.0) -> tuple:
    """How early adjacent segments `a` and `b` should be merged (smallest first; see above)."""
    strength = _STRENGTH[b.boundary]
    length = duration(a.first, b.last)
    if length > limit:
        return (strength, True, 0, 0, length, 0.0)
    distance = max(NOISE_FLOOR, change_score(a.thumb_mean, b.thumb_mean, grid))
    inside_burst = 0 if b.boundary == "burst" else 1  # a burst's inside goes first, whatever it looks like
    # a sliver between plain boundaries is not worth an output (brief events are not plain)
    sliver = 0 if strength == 0 and min(duration(a.first, a.last), duration(b.first, b.last)) < short else 1
    return (strength, False, inside_burst, sliver, distance, float(a.count + b.count))


def is_strong(boundary: str) -> bool:
    return _STRENGTH[boundary] > 0


def fewest_outputs(lengths: Sequence[float], fixed: Sequence[bool], limit: float) -> int | None:
    """The fewest outputs `lengths` can be merged into, each at most `limit` long.

    Args:
        lengths: consecutive pieces' durations.
        fixed: `fixed[i]` says the boundary between pieces `i` and `i + 1` must stay.
        limit: the longest an output may be.

    Returns:
        The count (greedy packing from the left, which is optimal), or None when a piece alone is
        longer than `limit`.
    """
    count, current = 1, 0.0
    for i, length in enumerate(lengths):
        if length > limit:
            return None
        if i > 0 and (fixed[i - 1] or current + length > limit):
            count, current = count + 1, 0.0
        current += length
    return count


def best_limit(lengths: Sequence[float], fixed: Sequence[bool], target: int) -> float:
    """The shortest `limit` with `fewest_outputs(lengths, fixed, limit) <= target`.

    Returns inf when the fixed boundaries alone make more than `target` outputs.
    """
    if sum(fixed) + 1 > target:
        return math.inf
    low, high = max(lengths), float(sum(lengths))
    if fewest_outputs(lengths, fixed, low) <= target:
        return low
    for _ in range(60):  # bisection to far below a frame's duration
        middle = (low + high) / 2
        if fewest_outputs(lengths, fixed, middle) <= target:
            high = middle
        else:
            low = middle
    return high


class Segmenter:
    """The online grouping described in the module docstring.

    Args:
        num_outputs: T.
        duration: seconds from one analysed frame's start to another's end, `duration(first, last)`.
        bound: B, in seconds.
        grid: cells per side for segment distances.
        compositor: starts, extends and merges the segments' states.
        short: a segment between plain boundaries shorter than this (seconds) is a sliver: its
            merges go first among the plain ones within the length limit.
    """

    def __init__(self, num_outputs: int, duration: Callable[[int, int], float], bound: float, grid: int, compositor,
                 short: float = 0.0):
        self.num_outputs, self.duration, self.bound, self.grid = num_outputs, duration, bound, grid
        self.short = short
        self.compositor = compositor
        self.capacity = 2 * num_outputs
        self.limit = bound / 2  # while streaming (see the module docstring)
        self.segments: list[Segment] = []
        self.keys: list[tuple] = []  # keys[i] ranks merging segments[i] with segments[i + 1]
        self.open: Segment | None = None

    def add(self, index: int, thumb: np.ndarray, image: np.ndarray, boundary: str | None, placement, atom_len: int) -> None:
        """Add the next analysed frame; `boundary` is its change kind ("cut", "event", "burst") or None."""
        seg = self.open
        if seg is not None and boundary is None and seg.count < atom_len:
            seg.last, seg.count = index, seg.count + 1
            cv2.accumulate(thumb, seg.thumb_sum)
            self.compositor.add(seg.state, image, placement)
            return
        if seg is not None:
            self._close()
        kind: Boundary = "start" if seg is None and not self.segments else (boundary or "split")
        self.open = Segment(index, index, 1, thumb.astype(np.float32), kind, self.compositor.start(image, placement))

    def _close(self) -> None:
        self.segments.append(self.open)
        self.open = None
        if len(self.segments) > 1:
            self.keys.append(self._key(self.segments[-2], self.segments[-1]))
        while len(self.segments) > self.capacity:
            self._merge(min(range(len(self.keys)), key=self.keys.__getitem__))

    def _key(self, a: Segment, b: Segment) -> tuple:
        return merge_key(a, b, self.duration, self.limit, self.grid, self.short)

    def _rekey(self) -> None:
        self.keys = [self._key(a, b) for a, b in zip(self.segments, self.segments[1:])]

    def _merge(self, k: int) -> None:
        segs, keys = self.segments, self.keys
        a, b = segs[k], segs[k + 1]
        segs[k] = Segment(a.first, b.last, a.count + b.count, a.thumb_sum + b.thumb_sum, a.boundary,
                          self.compositor.merge(a.state, b.state))
        del segs[k + 1], keys[k]
        # only the pairs that touch the merged segment change
        if k > 0:
            keys[k - 1] = self._key(segs[k - 1], segs[k])
        if k < len(keys):
            keys[k] = self._key(segs[k], segs[k + 1])

    def _lengths(self) -> list[float]:
        return [self.duration(s.first, s.last) for s in self.segments]

    def finish(self) -> list[Segment]:
        if self.open is not None:
            self._close()
        target = self.num_outputs
        strong = [is_strong(s.boundary) for s in self.segments[1:]]
        if len(self.segments) > target and len(strong) - sum(strong) >= len(self.segments) - target:
            self._balance(target)
        self.limit = self.bound
        self._rekey()
        while len(self.segments) > target:
            self._merge(min(range(len(self.keys)), key=self.keys.__getitem__))
        return self.segments

    def _balance(self, target: int) -> None:
        """Merge across plain boundaries only, the most alike first, keeping the longest output as
        short as the boundaries allow (and no shorter than B)."""
        fixed = [is_strong(s.boundary) for s in self.segments[1:]]
        limit = max(self.bound, best_limit(self._lengths(), fixed, target))
        self.limit = limit
        self._rekey()
        while len(self.segments) > target:
            lengths, fixed = self._lengths(), [is_strong(s.boundary) for s in self.segments[1:]]
            for k in sorted(range(len(self.keys)), key=self.keys.__getitem__):
                if fixed[k] or lengths[k] + lengths[k + 1] > limit + 1e-9:
                    continue
                merged = lengths[:k] + [lengths[k] + lengths[k + 1]] + lengths[k + 2 :]
                count = fewest_outputs(merged, fixed[:k] + fixed[k + 1 :], limit + 1e-9)
                if count is not None and count <= target:
                    self._merge(k)
                    break
            else:  # cannot happen while `limit` is reachable; guard against rounding
                return


def budget_bound(max_action_sec: float, duration: float, num_outputs: int) -> float:
    """B = max(max_action_sec, duration / T): the length an output may reach before coverage suffers."""
    return max(max_action_sec, duration / num_outputs)


def guaranteed_longest(bound: float, duration: float, num_outputs: int, strong: int) -> float:
    """The longest output the rule allows with `strong` strong boundaries (inf when strong >= T)."""
    if strong >= num_outputs:
        return math.inf
    return max(bound, duration / math.ceil((num_outputs - strong) / 2))
