"""Keyframes for LVLM captioning: exactly K frames of a video, in time order.

Two sources:

- `diff` (MAMA's detector, done right): the video is streamed once and every analysed frame gets a
  change score against the previous analysed frame: the mean, over the pixels of small blurred
  YCbCr thumbnails, of the largest absolute channel difference (0..255 levels). Absolute values
  see a change whether the picture gets brighter or darker; the original's saturating
  `cv2.subtract` only saw pixels that got brighter. The scores are detrended by subtracting a
  running median (so sustained motion, a pan or busy traffic, is not a peak while a cut is), and
  peaks are the local maxima that reach a relative threshold (`threshold` of the detrended range,
  like the original) and an absolute floor, at least `min_distance_sec` apart (the higher peak
  wins). A peak at frame `i` means frame `i` differs from the frame before it: frame `i` starts a
  new shot and is the keyframe. Frame 0 (or the clip's first frame) starts the first shot and is
  always a candidate.
- `mixed`: MixedFrame segments (`mixma.video.mixed`): the video is split into K motion-coherent
  spans, and each keyframe is the span's centre frame (`mixed_frame="center"`) or the MixedFrame
  composite of the span (`"composite"`).

Exactly K frames come back, sorted by time. With at least K candidates, K are taken spread
uniformly over the candidate list (as MAMA does). With fewer, all candidates are kept and the
rest is filled with evenly spaced frames (the original produced fewer than 12 frames here and its
grid broke): each shot gets extra keyframes in proportion to its length, cutting it into equal
parts, so a video without any change gives K evenly spaced frames from the first,
`rint(j * n / K)`. A video shorter than K frames repeats frames.

Memory: the scoring pass keeps one float per analysed frame and one thumbnail; the K keyframes
are then decoded by exact index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np
from tqdm.auto import tqdm

from mixma.video.convert import Size
from mixma.video.reader import VideoInfo, VideoReader
from mixma.video.sampling import clip_range, sample_frames, uniform_indices

METHODS = ("diff", "mixed")
MIXED_FRAMES = ("center", "composite")


@dataclass(frozen=True)
class KeyframeConfig:
    """How keyframes are chosen; every default lives here."""

    method: str = "diff"  # diff | mixed
    num_keyframes: int = 12  # K, as MAMA's 3x4 grid
    frame_size: Size = 224  # returned frames: shorter side in pixels, (height, width), or None (source)
    # -- diff --
    thumbnail: int = 64  # shorter side of the thumbnails that are compared
    blur_sigma: float = 1.0  # Gaussian blur of the thumbnails (pixels), against noise and grain
    step: int | None = None  # analyse every step-th frame; None: diff 1, mixed MixedConfig's (~10 per second)
    threshold: float = 0.1  # a peak reaches this fraction of the detrended score range (MAMA: 0.1)
    min_change: float = 3.0  # ... and this many levels (0..255) above the baseline
    min_distance_sec: float = 0.5  # peaks closer than this keep only the higher one
    baseline_sec: float = 2.0  # running-median window of the detrending baseline
    # -- mixed --
    mixed_frame: str = "center"  # center: the span's middle frame; composite: the MixedFrame image
    mixed_mode: str = "mean"  # composite only: mean | ema | strobe (see mixma.video.compose)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown keyframe method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.mixed_frame not in MIXED_FRAMES:
            raise ValueError(f"mixed_frame must be one of {', '.join(MIXED_FRAMES)}, got {self.mixed_frame!r}")
        if self.num_keyframes < 1:
            raise ValueError(f"num_keyframes must be at least 1, got {self.num_keyframes}")
        if (self.step is not None and self.step < 1) or self.thumbnail < 8:
            raise ValueError("step must be >= 1 and thumbnail >= 8")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.min_change < 0 or self.min_distance_sec < 0 or self.baseline_sec <= 0 or self.blur_sigma < 0:
            raise ValueError("min_change, min_distance_sec and blur_sigma must be >= 0 and baseline_sec > 0")


@dataclass(frozen=True)
class Keyframes:
    """K keyframes of a video, sorted by time.

    Attributes:
        frames: `uint8 [K, H, W, 3]` RGB.
        indices: `int64 [K]`, the source frame each keyframe shows (for a composite: its span's
            centre frame).
        spans: per keyframe, the `(first, last)` source frames it stands for (`first == last`
            for single frames).
        times: `float64 [K]`, each keyframe's time in seconds (first frame at 0).
        method: "diff" or "mixed".
        changes: source frames where a change was detected (diff: the peaks; mixed: sudden
            changes), sorted.
        info: the source video.
    """

    frames: np.ndarray
    indices: np.ndarray
    spans: list[tuple[int, int]]
    times: np.ndarray
    method: str
    info: VideoInfo
    changes: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)


# -- scoring ---------------------------------------------------------------------------------


def change_scores(
    video: VideoReader, *, thumbnail: int = 64, blur_sigma: float = 1.0, step: int = 1,
    start: int = 0, stop: int | None = None, progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Stream a video once and score how much each analysed frame differs from the previous one.

    Args:
        video: an open reader.
        thumbnail: shorter side of the compared thumbnails.
        blur_sigma: Gaussian blur applied to each thumbnail (0: none).
        step: analyse every step-th frame.
        start, stop: analyse frames `[start, stop)`.
        progress: show a progress bar.

    Returns:
        `(indices, scores)`: `int64 [N]` analysed frame indices and `float64 [N]` scores on 0..255
        (the mean over pixels of the largest absolute YCbCr channel difference); the first score
        is 0 (no previous frame).
    """
    stop = video.num_frames if stop is None else stop
    indices: list[int] = []
    scores: list[float] = []
    previous: np.ndarray | None = None
    total = len(range(start, stop, step))
    with tqdm(total=total, desc=os.path.basename(video.path), unit="frame", disable=not progress, leave=False) as bar:
        for decoded in video.stream(step, start, stop):
            thumb = decoded.thumbnail(thumbnail)
            if blur_sigma > 0:
                thumb = cv2.GaussianBlur(thumb, (0, 0), blur_sigma)
            thumb = thumb.astype(np.int16)  # signed, so differences cannot wrap around
            score = 0.0 if previous is None else float(np.abs(thumb - previous).max(axis=-1).mean())
            indices.append(decoded.index)
            scores.append(score)
            previous = thumb
            bar.update()
    return np.asarray(indices, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def running_median(values: np.ndarray, window: int, chunk: int = 1 << 15) -> np.ndarray:
    """Centred running median with edge padding; `window` is made odd. Memory is bounded by
    `chunk * window` values whatever the length."""
    window = max(1, int(window) | 1)
    half = window // 2
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0 or window == 1:
        return values.copy()
    padded = np.pad(values, half, mode="edge")
    out = np.empty_like(values)
    for begin in range(0, len(values), chunk):
        end = min(begin + chunk, len(values))
        windows = np.lib.stride_tricks.sliding_window_view(padded[begin : end + 2 * half], window)
        out[begin:end] = np.median(windows, axis=1)
    return out


def pick_peaks(values: np.ndarray, *, threshold: float = 0.1, min_height: float = 0.0, min_distance: int = 1) -> np.ndarray:
    """Indices of peaks of a 1-D signal, sorted.

    A peak is a local maximum (higher than the value before it and not lower than the one after;
    a flat top counts once, at its start; the ends count when higher than their neighbour) whose
    value is at least `min + threshold * (max - min)` of the signal and at least `min_height`.
    Of peaks closer than `min_distance` samples, only the highest is kept (the earlier on ties).
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return np.zeros(0, dtype=np.int64)
    before = np.concatenate([[-np.inf], values[:-1]])
    after = np.concatenate([values[1:], [-np.inf]])
    is_max = (values > before) & (values >= after)
    # a flat top: the plateau's first sample is a peak when the plateau ends lower
    plateau_starts = np.flatnonzero((values > before) & (values == after))
    for i in plateau_starts:
        j = i
        while j + 1 < n and values[j + 1] == values[i]:
            j += 1
        is_max[i] = j + 1 == n or values[j + 1] < values[i]
    low, high = float(values.min()), float(values.max())
    level = max(low + threshold * (high - low), min_height)
    candidates = np.flatnonzero(is_max & (values >= level) & (values > low))
    if min_distance <= 1 or len(candidates) < 2:
        return candidates.astype(np.int64)
    kept: list[int] = []
    taken = np.zeros(n, dtype=bool)  # samples within min_distance of a kept peak
    for i in sorted(candidates.tolist(), key=lambda k: (-values[k], k)):
        if not taken[i]:
            kept.append(i)
            taken[max(0, i - min_distance + 1) : i + min_distance] = True
    return np.asarray(sorted(kept), dtype=np.int64)


# -- choosing K frames ------------------------------------------------------------------------


def select_keyframes(candidates: np.ndarray, num_frames: int, k: int, *, first: int = 0) -> np.ndarray:
    """Exactly `k` sorted frame indices in `[first, first + num_frames)` from candidate frames.

    With at least `k` candidates, `k` of them spread uniformly over the sorted candidate list.
    With fewer, each candidate starts a shot that runs to the next one (the last to the end of
    the video), and every keyframe starts an equal part of its shot: the slots left over go to the
    shots in proportion to their length (the largest `length / (slots + 1)` first, the earlier
    shot on ties), and a shot with `m` extra slots is cut into `m + 1` equal parts. So a video
    without changes gives `first + rint(j * num_frames / k)`, `j = 0 .. k - 1`. A video shorter
    than `k` frames repeats frames (as `uniform_indices`).
    """
    candidates = np.unique(np.clip(np.asarray(candidates, dtype=np.int64), first, first + num_frames - 1))
    candidates = np.union1d(candidates, [first])  # the first shot starts with the video
    if num_frames < k:
        return first + uniform_indices(num_frames, k)
    if len(candidates) >= k:
        return candidates[np.rint(np.linspace(0, len(candidates) - 1, k)).astype(np.int64)]
    lengths = np.diff(np.append(candidates, first + num_frames))
    chosen = [candidates]
    for start, length, m in zip(candidates, lengths, _allocate(lengths, k - len(candidates))):
        if m:
            chosen.append(start + np.rint(length * np.arange(1, m + 1) / (m + 1)).astype(np.int64))
    return np.sort(np.concatenate(chosen))


def _allocate(lengths: np.ndarray, count: int) -> list[int]:
    """Share `count` slots between shots in proportion to their length: each slot goes to the
    shot with the largest `length / (slots + 1)` that still has room (a shot of `L` frames takes
    at most `L - 1` more); ties go to the earlier shot."""
    slots = [0] * len(lengths)
    for _ in range(count):
        best, best_value = -1, -1.0
        for i, length in enumerate(lengths):
            if slots[i] < length - 1 and length / (slots[i] + 1) > best_value:
                best, best_value = i, length / (slots[i] + 1)
        slots[best] += 1  # room always exists: the video has at least k frames
    return slots


# -- entry point -----------------------------------------------------------------------------


def extract_keyframes(
    source: str | os.PathLike | VideoReader,
    config: KeyframeConfig = KeyframeConfig(),
    *,
    clip: tuple[float | None, float | None] | None = None,
    progress: bool = False,
) -> Keyframes:
    """Pick `config.num_keyframes` keyframes of a video (see the module docstring).

    Args:
        source: a video file, or an open `VideoReader` (left open).
        config: the method and its options.
        clip: `(start, end)` seconds (either may be None): only frames shown in `[start, end)`.
        progress: show a progress bar.

    Returns:
        `Keyframes`, exactly `config.num_keyframes` of them, sorted by time.

    Raises:
        VideoError: the video cannot be read, or the clip holds no frame.
    """
    video = source if isinstance(source, VideoReader) else VideoReader(source)
    try:
        if config.method == "mixed":
            return _mixed(video, config, clip, progress)
        return _diff(video, config, clip, progress)
    finally:
        if video is not source:
            video.close()


def _diff(video: VideoReader, config: KeyframeConfig, clip, progress: bool) -> Keyframes:
    first, stop = clip_range(video, clip)
    step = config.step or 1
    indices, scores = change_scores(
        video, thumbnail=config.thumbnail, blur_sigma=config.blur_sigma, step=step,
        start=first, stop=stop, progress=progress,
    )
    per_second = video.fps / step  # analysed frames per second
    detrended = scores - running_median(scores, round(config.baseline_sec * per_second))
    detrended[0] = 0.0  # the first frame has no previous one to differ from
    peaks = indices[pick_peaks(
        detrended, threshold=config.threshold, min_height=config.min_change,
        min_distance=max(1, round(config.min_distance_sec * per_second)),
    )]
    chosen = select_keyframes(peaks, stop - first, config.num_keyframes, first=first)
    return Keyframes(
        frames=video.read(chosen, config.frame_size),
        indices=chosen,
        spans=[(int(i), int(i)) for i in chosen],
        times=video.times[chosen].astype(np.float64),
        method="diff",
        info=video.info,
        changes=[int(p) for p in peaks],
    )


def _mixed(video: VideoReader, config: KeyframeConfig, clip, progress: bool) -> Keyframes:
    sample = sample_frames(
        video, config.num_keyframes, "mixed", size=config.frame_size, clip=clip, progress=progress,
        mode=config.mixed_mode, **({} if config.step is None else {"step": config.step}),
    )
    centres = np.asarray([(a + b) // 2 for a, b in sample.spans], dtype=np.int64)
    if config.mixed_frame == "composite":
        frames = sample.frames
    else:
        frames = video.read(centres, config.frame_size)
    return Keyframes(
        frames=frames,
        indices=centres,
        spans=list(sample.spans),
        times=video.times[centres].astype(np.float64),
        method="mixed",
        info=video.info,
        changes=sorted(int(c) for c in sample.changes),
    )
