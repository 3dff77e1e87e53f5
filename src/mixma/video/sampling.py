"""`sample_frames`: T frames from a video by one of three strategies.

- `uniform`: frames `rint(linspace(0, n - 1, T))`, deterministic (how MA-LMM evaluates).
- `segment`: TSN sampling: the video is cut into T equal segments and one frame is drawn at random
  from each, reproducibly from `seed` (how MA-LMM trains).
- `mixed`: MixedFrame, see `mixma.video.mixed`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from mixma.errors import VideoError
from mixma.video.convert import Size
from mixma.video.mixed import MixedConfig, OutputInfo, mixed_sample
from mixma.video.reader import VideoInfo, VideoReader

Strategy = Literal["uniform", "segment", "mixed"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
MIXED_OPTIONS = tuple(f.name for f in dataclasses.fields(MixedConfig))


@dataclass(frozen=True)
class FrameSample:
    """T frames sampled from a video, with what each one stands for.

    Attributes:
        frames: `uint8 [T, H, W, 3]` RGB.
        spans: per output, the `(first, last)` source frame indices (inclusive) it summarises;
            for `uniform` and `segment`, `first == last` is the frame shown.
        times: `float64 [T]`, each output's centre time in seconds (first frame at 0).
        strategy: the strategy used.
        options: every option that shaped the result, resolved (defaults filled in).
        info: the source video.
        changes: `mixed` only: source frames where a sudden change was detected.
        outputs: `mixed` only: per output, what it did (`OutputInfo`: the mode it was composed
            with, what begins its span, whether its frames were aligned, why a strobe fell back).
    """

    frames: np.ndarray
    spans: list[tuple[int, int]]
    times: np.ndarray
    strategy: str
    options: dict[str, Any]
    info: VideoInfo
    changes: list[int] = field(default_factory=list)
    outputs: list[OutputInfo] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (everything but the pixels)."""
        frames = [{"span": [int(a), int(b)], "time": round(float(t), 4)} for (a, b), t in zip(self.spans, self.times)]
        for entry, output in zip(frames, self.outputs):
            entry.update(dataclasses.asdict(output))
        return {
            "video": dataclasses.asdict(self.info),
            "strategy": self.strategy,
            "options": self.options,
            "frames": frames,
            "changes": [int(c) for c in self.changes],
        }


def uniform_indices(num_source: int, num_frames: int) -> np.ndarray:
    """`rint(linspace(0, num_source - 1, num_frames))`: repeats when the video is shorter."""
    return np.rint(np.linspace(0, num_source - 1, num_frames)).astype(np.int64)


def segment_indices(num_source: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """TSN: one random frame from each of `num_frames` equal segments (as MA-LMM trains)."""
    edges = np.linspace(0, num_source, num_frames + 1).astype(np.int64)
    starts, ends = edges[:-1], edges[1:]
    # an empty segment (video shorter than num_frames) takes its start frame
    return np.where(ends > starts, starts + (rng.random(num_frames) * (ends - starts)).astype(np.int64), starts)


def sample_frames(
    source: str | os.PathLike | VideoReader,
    num_frames: int,
    strategy: str = "uniform",
    *,
    size: Size = None,
    seed: int | np.random.Generator | None = None,
    clip: tuple[float | None, float | None] | None = None,
    progress: bool = False,
    **options: Any,
) -> FrameSample:
    """Sample `num_frames` frames from a video.

    Args:
        source: a video file, or an open `VideoReader` (left open).
        num_frames: T, the number of frames returned. Exactly T whenever the video has at least
            T frames; a shorter video repeats frames, as `linspace` indices do.
        strategy: "uniform", "segment" or "mixed".
        size: output size: None (source size), the shorter side in pixels, or `(height, width)`.
        seed: `segment` only: the random seed (or a numpy Generator). None draws fresh entropy.
        clip: `(start, end)` in seconds (either may be None): sample only frames shown in
            `[start, end)`. Spans still index the whole video; times count from its start.
        progress: show a progress bar.
        **options: `mixed` only: the fields of `MixedConfig` (mode, change_threshold,
            change_ratio, cut_fraction, max_action_sec, burst_sec, step, size_cap, alpha,
            instances, fg_threshold, align, max_foreground, grid). With `size=None`, `mixed`
            composes and returns frames at the source size with the shorter side capped at
            `size_cap` (720).

    Returns:
        A `FrameSample`.

    Raises:
        ValueError: bad `num_frames`, strategy or option.
        VideoError: the video cannot be read.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    unknown = set(options) - set(MIXED_OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; mixed options are {', '.join(MIXED_OPTIONS)}")
    if options and strategy != "mixed":
        raise ValueError(f"option(s) {', '.join(sorted(options))} only apply to strategy 'mixed'")
    if seed is not None and strategy != "segment":
        raise ValueError("seed only applies to strategy 'segment'")
    config = MixedConfig(**options) if strategy == "mixed" else None  # validate before opening

    video = source if isinstance(source, VideoReader) else VideoReader(source)
    try:
        first, stop = clip_range(video, clip)
        return _sample(video, int(num_frames), strategy, size, seed, progress, config, first, stop, clip)
    finally:
        if video is not source:
            video.close()


def clip_range(video: VideoReader, clip: tuple[float | None, float | None] | None) -> tuple[int, int]:
    """Frame indices `[first, stop)` shown within `clip` seconds (the whole video for None).

    Raises:
        VideoError: the clip holds no frame of the video.
    """
    if clip is None:
        return 0, video.num_frames
    start, end = clip
    first = 0 if start is None else int(np.searchsorted(video.times, start - 1e-9))
    stop = video.num_frames if end is None else int(np.searchsorted(video.times, end - 1e-9))
    if stop <= first:
        raise VideoError(video.path, f"the clip {start}-{end} s holds no frame (the video lasts {video.info.duration:.2f} s)")
    return first, stop


def _sample(video, num_frames, strategy, size, seed, progress, config, first, stop, clip) -> FrameSample:
    resolved: dict[str, Any] = {"num_frames": num_frames, "size": size}
    if clip is not None:
        resolved["clip"] = list(clip)
    changes: list[int] = []
    outputs: list[OutputInfo] = []
    if strategy == "mixed":
        result = mixed_sample(video, num_frames, config, size, progress, first, stop)
        frames, spans, times, changes, outputs = result.frames, result.spans, result.times, result.changes, result.outputs
        resolved.update(dataclasses.asdict(config), step=result.step)
    else:
        if strategy == "uniform":
            indices = first + uniform_indices(stop - first, num_frames)
        else:
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            indices = first + segment_indices(stop - first, num_frames, rng)
            resolved["seed"] = seed if not isinstance(seed, np.random.Generator) else "generator"
        frames = video.read(indices, size, progress=progress)
        spans = [(int(i), int(i)) for i in indices]
        times = video.times[indices]
    return FrameSample(frames, spans, np.asarray(times, dtype=np.float64), strategy, resolved, video.info, changes, outputs)
