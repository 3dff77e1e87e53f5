"""MixedFrame: compose motion-coherent segments of a video into exactly T frames, in one pass.

The idea comes from the MixMA-LMM fork of MA-LMM: instead of T frames at `linspace` positions,
split the video where the picture changes suddenly and compose each segment into one "action shot"
frame, so brief actions between sample points are not lost. This implementation keeps the idea
and fixes its semantics (see `research/malmm.md` §6):

- A sudden change is scored with absolute differences, so it is caught whether the picture gets
  brighter or darker (the fork's uint8 `mean(f - m)` wraps around and only sees darkening). Frames
  are compared as 32x32 YCbCr thumbnails: each pixel's difference is its largest absolute channel
  difference (so a change of colour at equal brightness counts too), and the score of a frame is
  the largest mean difference from the previous analysed frame over the cells of a `grid x grid`
  split, on a 0..255 scale, so a cut (every cell changes) and a brief local event (one cell
  changes a lot) both register. A change
  is *sudden* when its score is at least `change_threshold` and at least `change_ratio` times the
  median score of the previous 8 analysed frames (the threshold itself stands in for that median
  over the first three): in busy footage (traffic, a panning camera) every frame differs from the
  last, and only spikes above that level are cuts or events.
- The longest span a segment starts with is `max_action_sec` seconds, not a number of sampled
  frames.
- `mean` is a true long exposure; `ema` is the fork's recency-weighted trail; `strobe` is an
  action shot (see `mixma.video.compose`).
- Exactly `num_frames` outputs whatever the number of changes.

How the segments are found
--------------------------
Every `step`-th frame is analysed (by default about 10 per second; frames in between are not
converted, and those no other frame references are not even decoded). Decoding runs a few frames
ahead in a background thread, overlapping the composition. Analysed frames are grouped into short *atoms*: an atom ends at
a sudden change or when it reaches a length cap (at most `max_action_sec`, and short enough that
there are at least `4 * num_frames` atoms). Atoms are kept in a buffer of `2 * num_frames`
segments, each with a thumbnail sum and a compositor state that can be merged. Whenever the buffer
overflows, and at the end until `num_frames` remain, the best adjacent pair is merged, compared by

1. whether the boundary between them is a sudden change (those are merged last),
2. whether the merged segment would exceed `max_action_sec` (those are merged later),
3. the distance between their mean thumbnails (the change score above), smallest first, where
   distances under `NOISE_FLOOR` levels count as equal,
4. their combined length, shortest first (so a static video splits into balanced segments).

So with fewer sudden changes than outputs, no output blends across a change, and an output spans
more than `max_action_sec` only when no other merge is left (always the case when
`num_frames * max_action_sec` is less than the video's duration). Because atoms are
sized from the frame count, there are always at least as many atoms as outputs and no segment ever
needs splitting; a video with fewer frames than outputs repeats outputs. Memory is bounded by the
buffer (`2 * num_frames` compositor states at the output size), not by the video's length.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from mixma.errors import VideoError
from mixma.video.compose import EmaCompositor, MeanCompositor, StrobeCompositor
from mixma.video.convert import Size, output_size, thumbnail_from_rgb
from mixma.video.reader import VideoReader

THUMBNAIL = 32  # side of the square YCbCr thumbnail used for change scores and similarity
RECENT = 8  # analysed frames whose median score is the baseline for a sudden change
ANALYSIS_FPS = 10.0  # default analysis rate: plenty for segments, and a 3-frame event at 30 fps still shows
PREFETCH = 8  # frames decoded ahead, in a background thread, while one is composed
NOISE_FLOOR = 2.0  # segment distances below this many levels are compression noise


@dataclass(frozen=True)
class MixedConfig:
    """MixedFrame options; every default lives here."""

    mode: str = "mean"  # mean | ema | strobe
    change_threshold: float = 12.0  # least change score (0..255 levels) that can be sudden
    change_ratio: float = 3.0  # ... and how far it must exceed the recent median score
    max_action_sec: float = 5.0  # longest span a segment starts with, in seconds
    step: int | None = None  # analyse every step-th frame; None: about ANALYSIS_FPS frames per second
    alpha: float = 0.5  # ema: weight of the newest frame (0.5 = the fork's addWeighted)
    instances: int = 4  # strobe: frames whose moving foreground is pasted
    fg_threshold: float = 30.0  # strobe: difference from the background that counts as foreground
    grid: int = 4  # change score: cells per side of the thumbnail

    def __post_init__(self):
        if self.mode not in ("mean", "ema", "strobe"):
            raise ValueError(f"mode must be one of mean, ema, strobe; got {self.mode!r}")
        if self.step is not None and self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if self.max_action_sec <= 0:
            raise ValueError(f"max_action_sec must be positive, got {self.max_action_sec}")
        if self.change_threshold < 0 or self.change_ratio < 0:
            raise ValueError("change_threshold and change_ratio must be >= 0")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.instances < 1:
            raise ValueError(f"instances must be >= 1, got {self.instances}")
        if self.fg_threshold < 0:
            raise ValueError(f"fg_threshold must be >= 0, got {self.fg_threshold}")
        if self.grid < 1 or THUMBNAIL % self.grid:
            raise ValueError(f"grid must divide {THUMBNAIL}, got {self.grid}")

    def compositor(self):
        if self.mode == "mean":
            return MeanCompositor()
        if self.mode == "ema":
            return EmaCompositor(self.alpha)
        return StrobeCompositor(self.instances, self.fg_threshold)


def change_score(a: np.ndarray, b: np.ndarray, grid: int) -> float:
    """Largest per-cell mean of per-pixel differences between two YCbCr thumbnails (0..255).

    A pixel's difference is its largest absolute channel difference. Works on uint8 frame
    thumbnails and on float32 segment means alike.
    """
    per_pixel = cv2.absdiff(a, b).max(axis=2).astype(np.float32)
    cells = cv2.resize(per_pixel, (grid, grid), interpolation=cv2.INTER_AREA)  # exact cell means
    return float(cells.max())


@dataclass
class _Segment:
    first: int  # source index of the first analysed frame
    last: int  # source index of the last analysed frame
    count: int  # analysed frames
    thumb_sum: np.ndarray  # float32 [THUMBNAIL, THUMBNAIL, 3], YCbCr
    after_change: bool  # the boundary before this segment is a sudden change
    state: Any  # compositor state

    @property
    def thumb_mean(self) -> np.ndarray:
        return self.thumb_sum / self.count


class _Segmenter:
    """The online grouping described in the module docstring."""

    def __init__(self, config: MixedConfig, num_outputs: int, times: np.ndarray, frame_duration: float):
        self.config, self.num_outputs = config, num_outputs
        self.times, self.frame_duration = times, frame_duration
        self.compositor = config.compositor()
        self.capacity = 2 * num_outputs
        self.segments: list[_Segment] = []
        self.keys: list[tuple] = []  # merge ranking of each adjacent pair of segments
        self.changes: list[int] = []
        self.open: _Segment | None = None
        self.previous_thumb: np.ndarray | None = None
        self.recent_scores: deque[float] = deque(maxlen=RECENT)

    def duration(self, first: int, last: int) -> float:
        return float(self.times[last] - self.times[first]) + self.frame_duration

    def add(self, index: int, thumb: np.ndarray, image: np.ndarray, atom_len: int) -> None:
        changed = False
        if self.previous_thumb is not None:
            score = change_score(thumb, self.previous_thumb, self.config.grid)
            # the first frames have no history: until they do, judge against the threshold itself
            known = len(self.recent_scores) >= 3
            baseline = float(np.median(self.recent_scores)) if known else self.config.change_threshold
            changed = score >= self.config.change_threshold and score >= self.config.change_ratio * baseline
            self.recent_scores.append(score)
            if changed:
                self.changes.append(index)
        self.previous_thumb = thumb
        seg = self.open
        if seg is not None and not changed and seg.count < atom_len:
            seg.last, seg.count = index, seg.count + 1
            cv2.accumulate(thumb, seg.thumb_sum)
            self.compositor.add(seg.state, image)
            return
        if seg is not None:
            self._close()
        self.open = _Segment(index, index, 1, thumb.astype(np.float32), changed, self.compositor.start(image))

    def _close(self) -> None:
        self.segments.append(self.open)
        self.open = None
        if len(self.segments) > 1:
            self.keys.append(self._merge_key(self.segments[-2], self.segments[-1]))
        while len(self.segments) > self.capacity:
            self._merge_best()

    def _merge_key(self, a: _Segment, b: _Segment) -> tuple:
        too_long = self.duration(a.first, b.last) > self.config.max_action_sec
        distance = max(NOISE_FLOOR, change_score(a.thumb_mean, b.thumb_mean, self.config.grid))
        return (b.after_change, too_long, distance, a.count + b.count)

    def _merge_best(self) -> None:
        segs, keys = self.segments, self.keys  # keys[i] ranks merging segs[i] with segs[i + 1]
        k = min(range(len(keys)), key=keys.__getitem__)
        a, b = segs[k], segs[k + 1]
        segs[k] = _Segment(
            a.first, b.last, a.count + b.count, a.thumb_sum + b.thumb_sum, a.after_change,
            self.compositor.merge(a.state, b.state),
        )
        del segs[k + 1], keys[k]
        # only the pairs that touch the merged segment change
        if k > 0:
            keys[k - 1] = self._merge_key(segs[k - 1], segs[k])
        if k < len(keys):
            keys[k] = self._merge_key(segs[k], segs[k + 1])

    def finish(self) -> list[_Segment]:
        if self.open is not None:
            self._close()
        while len(self.segments) > self.num_outputs:
            self._merge_best()
        return self.segments


def mixed_sample(
    video: VideoReader,
    num_frames: int,
    config: MixedConfig,
    size: Size = None,
    progress: bool = False,
    first: int = 0,
    stop: int | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray, list[int], int]:
    """Run MixedFrame over an open video (or its frames `[first, stop)`).

    Returns:
        frames `uint8 [T, H, W, 3]`, spans (first, last) per output, centre times `[T]`, the frame
        indices where sudden changes were detected, and the step actually used.
    """
    stop = video.num_frames if stop is None else stop
    n = stop - first
    step = config.step if config.step is not None else max(1, round(video.fps / ANALYSIS_FPS))
    step = max(1, min(step, n // num_frames))  # keep at least num_frames analysed frames
    analysed = math.ceil(n / step)
    max_action = max(1, round(config.max_action_sec * video.fps / step))
    atom_len = max(1, min(max_action, analysed // (4 * num_frames)))
    width, height = output_size(size, video.info.width, video.info.height)

    segmenter = _Segmenter(config, num_frames, video.times, 1.0 / video.fps)
    last_index = -1
    bar = tqdm(total=analysed, desc="mixed", unit="frame", disable=not progress, leave=False)
    with bar:
        small = width * height <= 512 * 512  # thumbnails from the small output; else from the planes
        for decoded in video.stream(step=step, start=first, stop=stop, prefetch=PREFETCH):
            image = decoded.rgb((height, width))
            thumb = thumbnail_from_rgb(image, THUMBNAIL, THUMBNAIL) if small else decoded.thumbnail((THUMBNAIL, THUMBNAIL))
            segmenter.add(decoded.index, thumb, image, atom_len)
            last_index = decoded.index
            bar.update()
    segments = segmenter.finish()
    if not segments:
        raise VideoError(video.path, "no frame could be decoded")

    # spans tile the video: frames between analysed ones belong to the segment before them
    starts = [s.first for s in segments]
    ends = [s - 1 for s in starts[1:]] + [min(stop - 1, last_index + step - 1)]
    spans = list(zip(starts, ends))
    images = [segmenter.compositor.render(s.state) for s in segments]
    if len(segments) < num_frames:  # fewer analysed frames than outputs: repeat, as linspace does
        pick = np.rint(np.linspace(0, len(segments) - 1, num_frames)).astype(int)
        spans, images = [spans[i] for i in pick], [images[i] for i in pick]
    times = np.array([(video.times[a] + video.times[b]) / 2 for a, b in spans])
    return np.stack(images), spans, times, segmenter.changes, step
