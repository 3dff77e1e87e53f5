"""A video's moments: where they start and end, and the frames a model sees of each, in one pass.

- `mixed` (default): MixedFrame's segments (`mixma.video.mixed`) are the moments: the video is cut
  where the picture changes suddenly (cuts, brief events) and calm stretches are balanced, with
  `T = duration / moment_sec` segments per chunk. The frames the model sees are tapped from the
  same decoding pass that MixedFrame analyses, so the video is decoded once.
- `window`: fixed windows of `moment_sec` seconds (the last one shorter).
- `video`: the whole video is one moment (internally: chunk-long windows, pooled by the model).

Long videos are read in chunks of about `chunk_sec` seconds (MixedFrame runs on each chunk, its
boundaries are moment boundaries), so memory holds one chunk's frames whatever the video's length.
Frames are sampled at `frame_rate` per second, the first at time 0; a moment that holds no sampled
frame takes the one nearest its centre.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from mixma.index.options import IndexOptions
from mixma.video.mixed import MixedConfig, mixed_sample
from mixma.video.reader import VideoReader

DECODE_SIDE = 224  # shorter side of the frames handed to the models (each resizes as it needs)
MIXED_SIDE = 96  # MixedFrame analyses and composes at this shorter side (its composites are not used)


@dataclass
class Chunk:
    """Consecutive moments of one video and the sampled frames that fall in them."""

    spans: np.ndarray  # float64 [M, 2] (start, end) seconds
    frames: np.ndarray  # uint8 [N, H, W, 3]
    times: np.ndarray  # float64 [N] seconds

    def frames_of(self) -> list[np.ndarray]:
        """Per moment, the indices of its frames (never empty: see `assign_frames`)."""
        return assign_frames(self.times, self.spans)


def assign_frames(times: np.ndarray, spans: np.ndarray) -> list[np.ndarray]:
    """For each span `[start, end)`, the indices of `times` inside it; an empty span gets the
    frame nearest its centre."""
    out = []
    for start, end in spans:
        inside = np.flatnonzero((times >= start) & (times < end))
        if inside.size == 0:
            inside = np.array([int(np.argmin(np.abs(times - (start + end) / 2)))])
        out.append(inside)
    return out


def pool(values: np.ndarray, groups: list[np.ndarray], how: str) -> np.ndarray:
    """`[N, D]` per-frame values → `[M, D]`, the max or mean over each group's rows."""
    if how == "max":
        return np.stack([values[g].max(0) for g in groups])
    return np.stack([values[g].mean(0) for g in groups])


def chunk_bounds(duration: float, chunk_sec: float) -> np.ndarray:
    """`k + 1` edges splitting `[0, duration]` into `k = max(1, round(duration / chunk_sec))` equal chunks."""
    k = max(1, round(duration / chunk_sec))
    return np.linspace(0.0, duration, k + 1)


def window_spans(start: float, end: float, window: float) -> np.ndarray:
    """Windows of `window` seconds tiling `[start, end)`; a last piece shorter than half a window
    joins the one before it."""
    edges = list(np.arange(start, end, window))
    if len(edges) > 1 and end - edges[-1] < window / 2:
        edges.pop()
    edges.append(end)
    return np.array(list(zip(edges[:-1], edges[1:])), dtype=np.float64)


class _Tap:
    """A `VideoReader` seen through MixedFrame, keeping a frame every 1 / `rate` seconds of what it
    streams (MixedFrame reads nothing else of it)."""

    def __init__(self, reader: VideoReader, rate: float, side: int):
        self._reader, self._period, self._side = reader, 1.0 / rate, side
        self.kept: list[np.ndarray] = []  # not `frames` / `times`: those are the reader's
        self.kept_times: list[float] = []

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def stream(self, *args, **kwargs):
        due = None
        for decoded in self._reader.stream(*args, **kwargs):
            due = decoded.time if due is None else due
            if decoded.time >= due - 1e-9:
                self.kept.append(decoded.rgb(self._side))
                self.kept_times.append(decoded.time)
                due += self._period * max(1, math.floor((decoded.time - due) / self._period) + 1)
            yield decoded

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        frames, times = np.stack(self.kept), np.array(self.kept_times, dtype=np.float64)
        self.kept, self.kept_times = [], []
        return frames, times


def frame_range(reader: VideoReader, start: float, end: float) -> tuple[int, int]:
    """Source frame indices `[first, stop)` shown in `[start, end)` seconds."""
    times = reader.times
    return int(np.searchsorted(times, start - 1e-9)), int(np.searchsorted(times, end - 1e-9))


def read_chunks(reader: VideoReader, options: IndexOptions) -> Iterator[Chunk]:
    """The video's moments and frames, chunk by chunk, in order (see the module docstring)."""
    duration = float(reader.info.duration)
    edges = chunk_bounds(duration, options.chunk_sec)
    tap = _Tap(reader, options.frame_rate, DECODE_SIDE)
    for start, end in zip(edges[:-1], edges[1:]):
        first, stop = frame_range(reader, start, end)
        if stop <= first:
            continue
        end = duration if stop >= reader.num_frames else float(reader.times[stop])
        start = float(reader.times[first]) if first > 0 else 0.0
        if options.unit == "mixed":
            spans = _mixed_spans(tap, reader, first, stop, start, end, options.moment_sec)
        else:
            _drain(tap, reader, first, stop, options.frame_rate)
            window = options.moment_sec if options.unit == "window" else end - start
            spans = window_spans(start, end, window)
        if not tap.kept:
            continue
        frames, times = tap.take()
        yield Chunk(spans, frames, times)


def _drain(tap: _Tap, reader: VideoReader, first: int, stop: int, rate: float) -> None:
    step = max(1, math.floor(reader.fps / rate / 2))  # every step-th frame is offered to the tap
    for _ in tap.stream(step=step, start=first, stop=stop, prefetch=8):
        pass


def _mixed_spans(tap: _Tap, reader: VideoReader, first: int, stop: int, start: float, end: float,
                 moment_sec: float) -> np.ndarray:
    num = max(1, round((end - start) / moment_sec))
    result = mixed_sample(tap, num, MixedConfig(), MIXED_SIDE, False, first, stop)
    starts = sorted({int(a) for a, _ in result.spans})  # repeats when the chunk has fewer analysed frames
    bounds = [start] + [float(reader.times[s]) for s in starts[1:]] + [end]
    return np.array(list(zip(bounds[:-1], bounds[1:])), dtype=np.float64)


def thumbnail_jpeg(frame: np.ndarray, width: int) -> bytes:
    """A JPEG of an RGB frame scaled to `width` pixels wide."""
    h, w = frame.shape[:2]
    height = max(2, round(h * width / w))
    small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return data.tobytes()


def centre_frame(times: np.ndarray, group: np.ndarray, start: float, end: float) -> int:
    """The frame of `group` nearest the moment's centre."""
    return int(group[np.argmin(np.abs(times[group] - (start + end) / 2))])
