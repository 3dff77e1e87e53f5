"""MixedFrame: compose motion-coherent segments of a video into exactly T frames, in one pass.

The idea comes from the MixMA-LMM fork of MA-LMM: instead of T frames at `linspace` positions,
split the video where the picture changes suddenly and compose each segment into one "action shot"
frame, so brief actions between sample points are not lost. This implementation keeps the idea
and fixes its semantics (see `research/malmm.md` §6). The parts, each in its own module:

- **Sudden changes** (`mixma.video.changes`): cuts, recognised as most cells of a grid changing
  together, and brief local events, a cell jumping above its own baseline; pans are scored with
  the camera's shift undone, busy regions have busy baselines of their own, and the first frames
  are judged like the rest.
- **The budget** (`mixma.video.segments`): analysed frames are grouped into segments and the most
  alike neighbours merged until exactly `num_frames` remain; cuts and brief events keep their
  own outputs, bursts of changes do not, and no stretch much longer than
  `B = max(max_action_sec, duration / num_frames)` goes without an output of its own unless cuts
  and events use up the budget (the exact guarantee is in that module's docstring).
- **Camera motion** (`mixma.video.align`): for `strobe` with `align`, the camera's motion between
  analysed frames is estimated (a shift by phase correlation, a homography from ORB features
  where a shift does not fit) and chained, so each segment's frames can be aligned to its
  reference view.
- **Composition** (`mixma.video.compose`): `mean` is a true long exposure, `ema` the fork's
  recency-weighted trail, `strobe` an action shot that falls back to `mean` (and says why) where
  the camera's motion is lost or most of the picture moves.

How a video is read
-------------------
Every `step`-th frame is analysed (by default about 10 per second; frames in between are not
converted, and those no other frame references are not even decoded), in a background thread a
few frames ahead of the composition. Each analysed frame is converted once, at the *working
size*: the requested output size, or with `size=None` the source size with its shorter side
capped at `size_cap` (720 by default), so a 4K video is composed, and returned, at 720p.

Memory: the segment buffer holds `2 * num_frames` compositor states at the working size (per
pixel: `mean` 12 bytes, `ema` 15, `strobe` up to 27), plus up to `RECENT + 1` analysed frames
waiting for their change decision and a burst's worth more. At 32 outputs that is about 0.7 GB
for `mean` and 1.6 GB for `strobe` at 1280x720, 70 MB / 150 MB at 398x224; never more for a
longer video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from mixma.errors import VideoError
from mixma.video.align import IDENTITY, MOTION_THUMBNAIL, Motion, MotionEstimator
from mixma.video.changes import BurstFilter, ChangeTracker, Decision, frame_thumbnail, rgb_thumbnail
from mixma.video.compose import EmaCompositor, MeanCompositor, Placement, StrobeCompositor
from mixma.video.convert import Size, output_size
from mixma.video.mixed_config import ANALYSIS_FPS, THUMBNAIL, MixedConfig
from mixma.video.reader import VideoReader, prefetched
from mixma.video.segments import Segmenter, budget_bound

__all__ = ["MixedConfig", "MixedResult", "OutputInfo", "THUMBNAIL", "mixed_sample", "working_size"]

PREFETCH = 8  # frames decoded ahead, in a background thread, while one is composed


@dataclass(frozen=True)
class OutputInfo:
    """What one MixedFrame output did (written to `frames.json` by `mixma frames`)."""

    mode: str  # how it was composed: mean | ema | strobe (a strobe that fell back says mean)
    starts_at: str  # what begins its span: start | cut | event | burst | split (a length or budget split)
    analysed: int  # analysed frames composed into it
    aligned: bool = False  # strobe: frames were warped onto the reference view (the camera moved)
    fallback: str | None = None  # strobe: why the mean was used instead
    camera_shift: float = 0.0  # strobe: the largest move of the picture from the reference view, in pixels
    pasted: float = 0.0  # strobe: share of the picture pasted from the instances
    overlap: float = 0.0  # strobe: share of the pasted area where instances overlap (shown from the latest alone)


@dataclass(frozen=True)
class MixedResult:
    frames: np.ndarray  # uint8 [T, H, W, 3] at the working size
    spans: list[tuple[int, int]]
    times: np.ndarray  # float64 [T], span centres
    changes: list[int]  # source frames of every sudden change (cuts and events)
    step: int
    outputs: list[OutputInfo]


def working_size(size: Size, width: int, height: int, cap: int | None) -> tuple[int, int]:
    """`(width, height)` MixedFrame composes at: `size` if given, else the source capped at `cap`."""
    if size is not None or cap is None or min(width, height) <= cap:
        return output_size(size, width, height)
    return output_size(cap, width, height)


def make_compositor(config: MixedConfig):
    if config.mode == "mean":
        return MeanCompositor()
    if config.mode == "ema":
        return EmaCompositor(config.alpha)
    return StrobeCompositor(config.instances, config.fg_threshold, align=config.align, max_foreground=config.max_foreground)


class _Chain:
    """Chains pairwise camera motions into placements; breaks at cuts and lost motion."""

    def __init__(self):
        self.id, self.to_chain = -1, None

    def place(self, index: int, kind: str | None, motion: Motion | None) -> Placement:
        if self.to_chain is None or kind == "cut" or motion is None or not motion.ok:
            broken = None if self.to_chain is None else ("cut" if kind == "cut" else "lost")
            self.id, self.to_chain = self.id + 1, IDENTITY
            return Placement(index, self.id, self.to_chain, broken)
        self.to_chain = self.to_chain @ motion.cur_to_prev  # this frame -> previous -> ... -> chain start
        return Placement(index, self.id, self.to_chain)


class _Pipeline:
    """Analysed frames in, segments out: change decisions, bursts, camera placements, the budget.

    Frames wait in `pending` until their change decision is out (up to `RECENT + 1` frames, and a
    burst's worth more), then go to the segmenter in order.
    """

    def __init__(self, config: MixedConfig, num_frames: int, times: np.ndarray, duration, clip_duration: float,
                 atom_len: int, width: int, height: int):
        self.aligning = config.mode == "strobe" and config.align
        self.compositor = make_compositor(config)
        self.segmenter = Segmenter(num_frames, duration, budget_bound(config.max_action_sec, clip_duration, num_frames),
                                   config.grid, self.compositor, short=clip_duration / (4 * num_frames))
        self.tracker = ChangeTracker(config, motion=self.aligning)
        self.bursts, self.chain = BurstFilter(times, config.burst_sec), _Chain()
        self.estimator = MotionEstimator(width, height) if self.aligning else None
        self.atom_len = atom_len
        self.pending: dict[int, tuple] = {}  # analysed frames waiting for their change decision
        self.changes: list[int] = []
        self.previous = None  # (luma thumbnail, image) of the last analysed frame

    def push(self, index: int, thumb: np.ndarray, image: np.ndarray) -> None:
        tracked = self.tracker.push(index, thumb)
        motion = None
        if self.estimator is not None and self.previous is not None:
            motion = self.estimator.estimate(self.previous[0], thumb[..., 0], tracked.shifts, self.previous[1], image)
        self.previous = (thumb[..., 0], image)
        self.pending[index] = (tracked.thumb, image, motion)
        self._decided(tracked.decisions)

    def finish(self) -> list:
        self._decided(self.tracker.finish())
        self._add(self.bursts.finish())
        return self.segmenter.finish()

    def _decided(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if decision.kind is not None:
                self.changes.append(decision.index)
            self._add(self.bursts.push(decision))

    def _add(self, released: list[tuple[int, str | None]]) -> None:
        for index, kind in released:
            thumb, image, motion = self.pending.pop(index)
            placement = self.chain.place(index, kind, motion) if self.aligning else None
            self.segmenter.add(index, thumb, image, kind, placement, self.atom_len)


def mixed_sample(
    video: VideoReader,
    num_frames: int,
    config: MixedConfig,
    size: Size = None,
    progress: bool = False,
    first: int = 0,
    stop: int | None = None,
) -> MixedResult:
    """Run MixedFrame over an open video (or its frames `[first, stop)`).

    Returns:
        A `MixedResult`: frames, spans `(first, last)` per output, centre times, the frames where
        sudden changes were detected, the step used and what each output did.

    Raises:
        VideoError: no frame could be decoded.
    """
    stop = video.num_frames if stop is None else stop
    n = stop - first
    step = config.step if config.step is not None else max(1, round(video.fps / ANALYSIS_FPS))
    step = max(1, min(step, n // num_frames))  # keep at least num_frames analysed frames
    analysed = math.ceil(n / step)
    max_action = max(1, math.floor(config.max_action_sec * video.fps / step + 1e-9))
    atom_len = max(1, min(max_action, analysed // (4 * num_frames)))
    width, height = working_size(size, video.info.width, video.info.height, config.size_cap)

    times = video.times
    end = float(times[stop - 1]) + 1.0 / video.fps
    span_tail = step / video.fps  # an analysed frame stands for `step` source frames

    def duration(a: int, b: int) -> float:
        return min(float(times[b]) + span_tail, end) - float(times[a])

    pipeline = _Pipeline(config, num_frames, times, duration, end - float(times[first]), atom_len, width, height)
    last_index = -1
    # thumbnails from the output when it is small (but not smaller than they are); else from the planes
    small = width * height <= 512 * 512 and min(width, height) >= MOTION_THUMBNAIL

    def convert(decoded):
        image = decoded.rgb((height, width))
        return decoded.index, image, rgb_thumbnail(image) if small else frame_thumbnail(decoded)

    # decoding runs in a background thread a few frames ahead of the analysis and composition, and
    # each frame's conversion in whichever of the two threads has time (FFmpeg and OpenCV release
    # the GIL, so the threads overlap)
    frames = prefetched(video.stream(step=step, start=first, stop=stop), PREFETCH, convert)
    with tqdm(total=analysed, desc="mixed", unit="frame", disable=not progress, leave=False) as bar:
        for index, image, thumb in frames:
            pipeline.push(index, thumb, image)
            last_index = index
            bar.update()
    segments = pipeline.finish()
    if not segments:
        raise VideoError(video.path, "no frame could be decoded")
    return _result(segments, pipeline, num_frames, times, min(stop - 1, last_index + step - 1), step)


def _result(segments, pipeline: _Pipeline, num_frames: int, times: np.ndarray, last: int, step: int) -> MixedResult:
    """Render the segments; spans tile the video (frames between analysed ones belong to the
    segment before them) up to `last`."""
    starts = [s.first for s in segments]
    spans = list(zip(starts, [s - 1 for s in starts[1:]] + [last]))
    composites = [pipeline.compositor.render(s.state) for s in segments]
    outputs = [
        OutputInfo(c.mode, s.boundary, s.count, c.aligned, c.fallback, round(c.camera_shift, 2), round(c.pasted, 4),
                   round(c.overlap, 4))
        for s, c in zip(segments, composites)
    ]
    images = [c.image for c in composites]
    if len(segments) < num_frames:  # fewer analysed frames than outputs: repeat, as linspace does
        pick = np.rint(np.linspace(0, len(segments) - 1, num_frames)).astype(int)
        spans, images, outputs = [spans[i] for i in pick], [images[i] for i in pick], [outputs[i] for i in pick]
    centre_times = np.array([(times[a] + times[b]) / 2 for a, b in spans])
    return MixedResult(np.stack(images), spans, centre_times, pipeline.changes, step, outputs)
