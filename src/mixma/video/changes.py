"""Sudden changes between analysed frames: hard cuts and brief local events.

Scores
------
Consecutive analysed frames are compared as 32x32 YCbCr thumbnails, so a cut that only changes
colour at equal brightness still scores. A pixel's difference is its largest absolute channel
difference, and each of the `grid x grid` cells scores the mean difference of its pixels (0..255
levels). Where the camera moved, its shift is undone: of the two strongest shifts between the
frames (phase correlation on 64x64 luma thumbnails, `mixma.video.align.PhaseCorrelator`: the
camera's, and often a large moving object's), the one that explains most of the picture, if it
explains it clearly (`cell_scores`), and each cell keeps the smaller of its plain and its
compensated score: a pan is not a change, and a cut during a pan still is.

Decisions
---------
Every cell has a baseline of its own, taken from the scores around it: the median of its
`RECENT` scores before the frame (within the same shot: not before the last cut) and the median
of its `RECENT` scores after it, whichever is lower. A cell *jumps* when its score is at least
`change_threshold` and at least `change_ratio` times its baseline. A frame is a **cut** when at
least `cut_fraction` of the cells jump together, and an **event** (something brief and local) when
some cells jump but fewer. So

- a region that changes all the time (a ticker, a clock, a screen in the scene, traffic) has a
  high baseline of its own: it neither hides a cut elsewhere nor makes every frame an event;
- a cut stands out against the calmer of the two shots it joins, so a cut out of (or into) fast
  motion still counts;
- the first frames of a video or a shot are judged like the rest, against what follows them (a
  side with fewer than `MIN_SIDE` scores counts only when neither side has that many; then both
  are pooled), so a busy video does not start with a run of "changes";
- a "cut" whose picture comes back within `FLASH` analysed frames (a flash, a flicker, a
  one-frame insert) is an event: the picture after it matches the one before, or it matches one
  from just before.

`reference_decisions` states the rule over a whole sequence of scores; `ChangeDetector` is its
streaming form, which releases each decision `RECENT` analysed frames late.

Bursts
------
An event closer than `burst_sec` to the changes both before and after it is the inside of a
*burst* (flicker, fast motion: several "changes" a tenth of a second apart): `classify_bursts`
marks it "burst", and `BurstFilter` does so on a stream. Cuts are never a burst's inside.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import cv2
import numpy as np
from tqdm.auto import tqdm

from mixma.video.align import MOTION_THUMBNAIL, STATIC_SHIFT, PhaseCorrelator
from mixma.video.mixed_config import ANALYSIS_FPS, THUMBNAIL, MixedConfig
from mixma.video.reader import DecodedFrame, VideoReader, prefetched

RECENT = 8  # scores on each side of a frame that make its cells' baselines
MIN_SIDE = 4  # a side with fewer scores counts only when neither side has this many
GLOBAL_GAIN = 0.9  # a shift is the camera's when it cuts the median cell score to this share
FLASH = 3  # analysed frames: a "cut" whose picture comes back this soon is a flash (an event)

Kind = Literal["cut", "event"]


class Decision(NamedTuple):
    index: int  # source frame
    kind: Kind | None  # None: no sudden change


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average `image` down to `width` x `height` by halving it while it is twice as large.

    OpenCV averages exact halvings many times faster than other integer factors, so a chain of
    halvings and a last small resize beats one big reduction (0.05 ms against 0.2 ms for a
    640x360 plane to 64x64); a row or column that would make a halving inexact is dropped.
    """
    return _finish(_halved(image, width, height), width, height)


def _halved(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`shrink`'s halvings."""
    h, w = image.shape[:2]
    while w >= 2 * width and h >= 2 * height:
        image = cv2.resize(image[: h // 2 * 2, : w // 2 * 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    return image


def _finish(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`shrink`'s last resize (channels are resized independently, so planes can share it)."""
    h, w = image.shape[:2]
    return image if (w, h) == (width, height) else cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


# limited-range YCbCr (luma 16..235, chroma 16..240) to full range, per channel: what
# `mixma.video.convert.to_thumbnail` applies, here to the shrunk planes
_FULL_RANGE = np.stack([
    np.clip(np.rint((np.arange(256) - 16.0) * 255.0 / 219.0), 0, 255),
    np.clip(np.rint((np.arange(256) - 128.0) * 255.0 / 224.0 + 128.0), 0, 255),
    np.clip(np.rint((np.arange(256) - 128.0) * 255.0 / 224.0 + 128.0), 0, 255),
], axis=-1).astype(np.uint8)[:, None, :]  # [256, 1, 3]: cv2.LUT's per-channel layout


def frame_thumbnail(decoded: DecodedFrame, side: int = MOTION_THUMBNAIL) -> np.ndarray:
    """A `uint8 [side, side, 3]` full-range YCbCr thumbnail of a decoded frame.

    For 4:2:0 video each plane is shrunk on its own (`shrink`) before the planes are merged and
    brought to full range, which costs a fraction of converting at any larger size; other pixel
    formats go through the reader's own thumbnail.
    """
    frame = decoded.frame
    name = frame.format.name
    if name not in ("yuv420p", "yuvj420p"):
        return decoded.thumbnail((side, side))
    planes = [_halved(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width], side, side)
              for p in frame.planes]
    if all(p.shape == planes[0].shape for p in planes):  # one resize for the three (the same values)
        out = _finish(cv2.merge(planes), side, side)
    else:
        out = cv2.merge([_finish(p, side, side) for p in planes])
    return out if name == "yuvj420p" or frame.color_range == 2 else cv2.LUT(out, _FULL_RANGE)  # 2: JPEG (full) range


def rgb_thumbnail(rgb: np.ndarray, side: int = MOTION_THUMBNAIL) -> np.ndarray:
    """`frame_thumbnail` from an RGB image that is already small (full-range YCrCb)."""
    return cv2.cvtColor(shrink(rgb, side, side), cv2.COLOR_RGB2YCrCb)


def cell_scores(prev: np.ndarray, cur: np.ndarray, grid: int, shifts: Sequence[tuple[float, float]] = (),
                plain: np.ndarray | None = None) -> np.ndarray:
    """Per-cell change scores between two YCbCr thumbnails (see the module docstring).

    Args:
        prev, cur: `[S, S, 3]` thumbnails (uint8, or float32 for averaged ones).
        grid: cells per side; must divide S.
        shifts: candidate shifts of the content from `prev` to `cur`, in thumbnail pixels (the
            camera's, or a large object's). The one that explains the picture best (the lowest
            median cell score) is undone, if it explains it clearly better than no shift (the
            median falls by a tenth, `GLOBAL_GAIN`): then each cell keeps the smaller of its
            plain and its compensated score. A shift that only moves one thing must not be undone everywhere:
            moving a smooth picture by it would "explain" a shape that vanished as moved away.

        plain: the scores without any shift (`_cells(prev, cur, grid)`), when already computed.

    Returns:
        `float32 [grid * grid]`, row by row, on 0..255.
    """
    scores = _cells(prev, cur, grid) if plain is None else plain
    best, best_middle = None, GLOBAL_GAIN * _middle(scores)
    for dx, dy in shifts:
        if max(abs(dx), abs(dy)) >= STATIC_SHIFT / 2:
            moved = cv2.warpAffine(prev, np.float32([[1, 0, dx], [0, 1, dy]]), prev.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
            compensated = _cells(moved, cur, grid)
            middle = _middle(compensated)
            if middle < best_middle:
                best, best_middle = compensated, middle
    return scores if best is None else np.minimum(scores, best)


def _middle(values: np.ndarray) -> float:
    """`np.median` of a few values, several times faster (a robust level: one cell's spike does
    not move it)."""
    ordered = sorted(values.tolist())
    n = len(ordered)
    k = n // 2
    return ordered[k] if n % 2 else (ordered[k - 1] + ordered[k]) / 2


def _cells(a: np.ndarray, b: np.ndarray, grid: int) -> np.ndarray:
    diff = cv2.absdiff(a, b)
    per_pixel = np.maximum.reduce([diff[..., 0], diff[..., 1], diff[..., 2]]).astype(np.float32)
    return cv2.resize(per_pixel, (grid, grid), interpolation=cv2.INTER_AREA).reshape(-1)  # exact cell means


def change_score(a: np.ndarray, b: np.ndarray, grid: int) -> float:
    """The largest cell score between two thumbnails (how different two segments look)."""
    return float(_cells(a, b, grid).max())


def judge(cells: np.ndarray, baseline: np.ndarray, threshold: float, ratio: float, cut_fraction: float) -> Kind | None:
    """The decision for one frame's cell scores against the cells' baselines."""
    jumps = (cells >= threshold) & (cells >= ratio * baseline)
    if np.count_nonzero(jumps) / jumps.size >= cut_fraction:  # jumps.mean(), at a fraction of the cost
        return "cut"
    return "event" if jumps.any() else None


def _median(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Per column, the median of a few rows (`np.median` is ~5x slower at this size)."""
    ordered = np.array(list(rows))  # faster than np.stack for a handful of rows
    ordered.sort(axis=0)
    n = len(ordered)
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


def baseline(before: Sequence[np.ndarray], after: Sequence[np.ndarray], cells: int) -> np.ndarray:
    """The cells' baselines from the scores before and after a frame (see the module docstring)."""
    sides = [_median(side) for side in (before, after) if len(side) >= MIN_SIDE]
    if sides:
        return np.minimum(sides[0], sides[1]) if len(sides) == 2 else sides[0]
    pool = list(before) + list(after)
    return _median(pool) if pool else np.zeros(cells, np.float32)


def returns(a: np.ndarray, b: np.ndarray, config: MixedConfig) -> bool:
    """Whether thumbnail `b` shows the picture of `a` again (fewer than `cut_fraction` of the
    cells differ by `change_threshold` or more)."""
    return bool((_cells(a, b, config.grid) >= config.change_threshold).mean() < config.cut_fraction)


def _is_flash(thumbs: Sequence[np.ndarray], j: int, config: MixedConfig) -> bool:
    """A cut at `j` whose picture returns within `FLASH` frames is a flash (on either side)."""
    after = any(returns(thumbs[j - 1], thumbs[j + k], config) for k in range(1, FLASH + 1) if j + k < len(thumbs))
    before = any(returns(thumbs[j - 1 - k], thumbs[j], config) for k in range(1, FLASH + 1) if j - 1 - k >= 0)
    return after or before


def reference_decisions(thumbs: Sequence[np.ndarray], scores: Sequence[np.ndarray | None], config: MixedConfig,
                        window: int = RECENT) -> list[Kind | None]:
    """The change rule of the module docstring over a whole sequence, in its plainest form.

    Args:
        thumbs: per analysed frame, its `[32, 32, 3]` YCbCr thumbnail.
        scores: per analysed frame, its cell scores against the previous one (None for the first).
        config: thresholds (`change_threshold`, `change_ratio`, `cut_fraction`) and grid.

    Returns:
        Per analysed frame, "cut", "event" or None.
    """
    n = len(scores)
    kinds: list[Kind | None] = [None] * n
    start = 1  # the current shot's first score
    for j in range(1, n):
        before = [scores[i] for i in range(max(start, j - window), j)]
        after = [scores[i] for i in range(j + 1, min(n, j + 1 + window))]
        kinds[j] = judge(scores[j], baseline(before, after, len(scores[j])), config.change_threshold,
                         config.change_ratio, config.cut_fraction)
        if kinds[j] == "cut" and _is_flash(thumbs, j, config):
            kinds[j] = "event"
        if kinds[j] == "cut":
            start = j + 1
    return kinds


class ChangeDetector:
    """`reference_decisions` on a stream: push each frame, get decisions in order, `RECENT` late."""

    def __init__(self, config: MixedConfig, window: int = RECENT):
        if window < FLASH:
            raise ValueError(f"window must be at least {FLASH}")
        self.config, self.window = config, window
        self.before: deque[np.ndarray] = deque(maxlen=window)  # decided scores of the current shot
        self.history: deque[np.ndarray] = deque(maxlen=FLASH + 1)  # thumbnails of the last decided frames
        self.waiting: deque[tuple[int, np.ndarray, np.ndarray]] = deque()  # (source index, thumbnail, scores)

    def push(self, index: int, thumb: np.ndarray, scores: np.ndarray | None) -> list[Decision]:
        """Add the next analysed frame (`scores` None for the very first one)."""
        if scores is None:
            if self.history or self.waiting:
                raise ValueError("only the first analysed frame has no scores")
            self.history.append(thumb)
            return [Decision(index, None)]
        self.waiting.append((index, thumb, scores))
        return self._release(final=False)

    def finish(self) -> list[Decision]:
        """Decide the frames still waiting for the scores after them (the stream has ended)."""
        return self._release(final=True)

    def _release(self, final: bool) -> list[Decision]:
        out: list[Decision] = []
        c = self.config
        while self.waiting and (final or len(self.waiting) > self.window):
            index, thumb, scores = self.waiting.popleft()
            ahead = list(self.waiting)[: self.window]
            kind = judge(scores, baseline(self.before, [s for _, _, s in ahead], len(scores)), c.change_threshold,
                         c.change_ratio, c.cut_fraction)
            if kind == "cut":
                thumbs = list(self.history) + [thumb] + [t for _, t, _ in ahead[:FLASH]]
                if _is_flash(thumbs, len(self.history), c):
                    kind = "event"
            out.append(Decision(index, kind))
            if kind == "cut":
                self.before.clear()  # the next shot's baselines do not look back across the cut
            else:
                self.before.append(scores)
            self.history.append(thumb)
        return out


def classify_bursts(times: Sequence[float], kinds: Sequence[Kind | None], burst_sec: float) -> list[str | None]:
    """Mark the events inside bursts.

    Args:
        times: seconds of each analysed frame.
        kinds: "cut", "event" or None per analysed frame.
        burst_sec: an event whose previous and next changes are both at most this far away is
            inside a burst.

    Returns:
        `kinds` with those events replaced by "burst".
    """
    changes = [i for i, k in enumerate(kinds) if k is not None]
    out: list[str | None] = list(kinds)
    for before, here, after in zip(changes, changes[1:], changes[2:]):
        if kinds[here] == "event" and times[here] - times[before] <= burst_sec and times[after] - times[here] <= burst_sec:
            out[here] = "burst"
    return out


class BurstFilter:
    """`classify_bursts` on a stream of decisions: released in order, at most `burst_sec` late."""

    def __init__(self, times: np.ndarray, burst_sec: float):
        self.times, self.burst_sec = times, burst_sec
        self.held: deque[list] = deque()  # [index, kind], oldest first
        self.previous_change: float | None = None  # time of the last change released or held
        self.before_open: float | None = None  # time of the change before the open one
        self.open: list | None = None  # the latest change, whose next change is not known yet

    def push(self, decision: Decision) -> list[tuple[int, str | None]]:
        entry = [decision.index, decision.kind]
        time = float(self.times[decision.index])
        if decision.kind is not None:
            if self.open is not None:
                self._settle(next_change=time)
            self.before_open, self.open = self.previous_change, entry
            self.previous_change = time
        self.held.append(entry)
        if self.open is not None and time - float(self.times[self.open[0]]) > self.burst_sec:
            self._settle(next_change=None)  # nothing came within burst_sec: the open change stays
        return self._release()

    def finish(self) -> list[tuple[int, str | None]]:
        if self.open is not None:
            self._settle(next_change=None)
        return self._release()

    def _settle(self, next_change: float | None) -> None:
        here = float(self.times[self.open[0]])
        if (self.open[1] == "event" and next_change is not None and self.before_open is not None
                and here - self.before_open <= self.burst_sec and next_change - here <= self.burst_sec):
            self.open[1] = "burst"
        self.open = None

    def _release(self) -> list[tuple[int, str | None]]:
        out = []
        while self.held and self.held[0] is not self.open:
            index, kind = self.held.popleft()
            out.append((index, kind))
        return out


class Tracked(NamedTuple):
    shifts: list[tuple[float, float, float]]  # candidate content shifts since the previous analysed frame (64x64 pixels)
    thumb: np.ndarray  # uint8 [THUMBNAIL, THUMBNAIL, 3], the thumbnail scores are computed on
    decisions: list[Decision]  # decisions released by this frame


class ChangeTracker:
    """Thumbnails in, the camera's shift and decisions out.

    Shifts cost a phase correlation, so they are estimated only where they can matter: when some
    cell scores at least `change_threshold / change_ratio` (below that, no score can jump, and no
    baseline made of such scores can reach the threshold, so undoing a shift would change no
    decision), or on every frame with `motion=True` (for aligning frames).

    Args:
        config: thresholds and grid.
        motion: estimate the shifts of every frame.
    """

    def __init__(self, config: MixedConfig, motion: bool = False):
        self.config, self.motion = config, motion
        self.detector = ChangeDetector(config)
        self.correlator = PhaseCorrelator()
        self.previous: np.ndarray | None = None  # the last 32x32 YCbCr thumbnail
        self.still = config.change_threshold / config.change_ratio if config.change_ratio > 0 else math.inf

    def push(self, index: int, thumb: np.ndarray) -> Tracked:
        """Add the next analysed frame's `uint8 [64, 64, 3]` YCbCr thumbnail."""
        small = shrink(thumb, THUMBNAIL, THUMBNAIL)
        luma = thumb[..., 0].astype(np.float32)
        previous, self.previous = self.previous, small
        if previous is None:
            self.correlator.skip(luma)
            return Tracked([], small, self.detector.push(index, small, None))
        scores = _cells(previous, small, self.config.grid)
        if self.motion or scores.max() >= self.still:
            shifts = self.correlator.push(luma)
            scale = THUMBNAIL / MOTION_THUMBNAIL
            scores = cell_scores(previous, small, self.config.grid, [(dx * scale, dy * scale) for dx, dy, _ in shifts[:2]],
                                 plain=scores)
        else:
            shifts = []
            self.correlator.skip(luma)
        return Tracked(shifts, small, self.detector.push(index, small, scores))

    def finish(self) -> list[Decision]:
        return self.detector.finish()


@dataclass(frozen=True)
class Changes:
    """Sudden changes found in a video.

    Attributes:
        cuts: source frames that begin a new shot (the first analysed frame after each cut).
        events: source frames where something brief and local happens (the first and last
            change of a burst count as events).
        bursts: source frames of the changes inside bursts.
        step: every step-th frame was analysed; a change reported at frame `i` happened after
            frame `i - step`.
    """

    cuts: list[int]
    events: list[int]
    bursts: list[int]
    step: int


def detect_changes(
    source: str | os.PathLike | VideoReader,
    *,
    clip: tuple[float | None, float | None] | None = None,
    progress: bool = False,
    **options: Any,
) -> Changes:
    """Find the cuts and brief events of a video, as MixedFrame sees them (no composition).

    Args:
        source: a video file, or an open `VideoReader` (left open).
        clip: `(start, end)` in seconds: analyse only frames shown in `[start, end)`.
        progress: show a progress bar.
        **options: fields of `MixedConfig` (`change_threshold`, `change_ratio`, `cut_fraction`,
            `burst_sec`, `grid`, `step`; the others are ignored). `step=1` analyses every frame, which makes
            cut positions frame-exact.

    Returns:
        `Changes`.

    Raises:
        ValueError: a bad option.
        VideoError: the video cannot be read.
    """
    from mixma.video.sampling import clip_range  # sampling imports this package's MixedFrame

    config = MixedConfig(**options)
    video = source if isinstance(source, VideoReader) else VideoReader(source)
    try:
        first, stop = clip_range(video, clip)
        step = config.step if config.step is not None else max(1, round(video.fps / ANALYSIS_FPS))
        tracker = ChangeTracker(config)
        decisions: list[Decision] = []
        total = math.ceil((stop - first) / step)
        with tqdm(total=total, desc="changes", unit="frame", disable=not progress, leave=False) as bar:
            # thumbnails in whichever thread has time: decoding, a few frames ahead, or this one
            thumbs = prefetched(video.stream(step=step, start=first, stop=stop), 8,
                                 lambda decoded: (decoded.index, frame_thumbnail(decoded)))
            for index, thumb in thumbs:
                decisions += tracker.push(index, thumb).decisions
                bar.update()
        decisions += tracker.finish()
        kinds = classify_bursts([float(video.times[d.index]) for d in decisions], [d.kind for d in decisions],
                                config.burst_sec)
    finally:
        if video is not source:
            video.close()
    marked = [(d.index, kind) for d, kind in zip(decisions, kinds)]
    return Changes(
        cuts=[i for i, k in marked if k == "cut"],
        events=[i for i, k in marked if k == "event"],
        bursts=[i for i, k in marked if k == "burst"],
        step=step,
    )


def detect_cuts(source: str | os.PathLike | VideoReader, **options: Any) -> list[int]:
    """The frames that begin a new shot: `detect_changes(source, **options).cuts`."""
    return detect_changes(source, **options).cuts
