"""Sampled frames for training and evaluation, decoded once and cached on disk.

Decoding is the slow part of reading video on a CPU, and a dataset asks for the same videos
every epoch. `FrameLoader` returns the frames a sample needs, `uint8 [T, H, W, 3]`:

- `uniform` and `mixed` are deterministic, so their result is cached as is;
- `segment` (TSN) draws new frames every epoch, so the cache keeps every frame of the video (or
  of the clip) at the decode size and draws from that; videos longer than `max_dense_frames`
  are decoded on the fly instead.

Cache files are named by a hash of the video's path, size and modification time, of every
option that shapes the frames *as resolved* (MixedFrame's defaults included, so a changed default
is a new key) and of `CACHE_VERSION`, so an edited video, a changed option or a changed sampler
is never served stale. They are written atomically, so parallel workers and ranks can share one
cache folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mixma._atomic import atomic_path
from mixma.video.convert import Size
from mixma.video.mixed import MixedConfig
from mixma.video.reader import VideoReader
from mixma.video.sampling import Strategy, clip_range, sample_frames, segment_indices


# Bump when a sampling strategy's output changes for the same options (a new algorithm, a fix).
CACHE_VERSION = 3  # 3: MixedFrame of issue 14 (per-cell baselines, bursts, the budget rule, alignment)


@dataclass(frozen=True)
class FrameSpec:
    """How to sample frames (a data section's `video_input` fills it; MixedFrame's defaults are
    `MixedConfig`'s)."""

    num_frames: int
    strategy: Strategy
    size: Size  # decode size: shorter side, or (height, width)
    mixed: MixedConfig = field(default_factory=MixedConfig)  # used by `mixed` only

    def options(self) -> dict:
        """The strategy's own options, resolved: what shapes its frames besides count and size."""
        return dataclasses.asdict(self.mixed) if self.strategy == "mixed" else {}


class FrameLoader:
    """Frames for one sample, through an optional on-disk cache (see the module docstring).

    Args:
        cache_dir: where to keep decoded frames; None decodes every time.
        max_dense_frames: longest video (or clip) whose frames `segment` keeps in the cache.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, max_dense_frames: int = 4000):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_dense_frames = max_dense_frames

    def _key(self, path: Path, *parts: Any) -> Path | None:
        if self.cache_dir is None:
            return None
        stat = path.stat()
        blob = json.dumps([CACHE_VERSION, str(path.resolve()), stat.st_size, stat.st_mtime_ns, *parts],
                          sort_keys=True, default=str)
        digest = hashlib.sha1(blob.encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    def _spec_key(self, path: Path, spec: FrameSpec, clip) -> Path | None:
        """Where `load` keeps what it decodes for `spec` (the dense frames, for `segment`)."""
        if spec.strategy == "segment":
            return self._key(path, "dense", spec.size, clip)
        return self._key(path, spec.strategy, spec.num_frames, spec.size, spec.options(), clip)

    def warm(self, sources: Iterable[tuple[str | os.PathLike, tuple | None]], spec: FrameSpec, *,
             progress: bool = True, desc: str = "caching frames") -> int:
        """Decode and cache, with a progress bar, the frames of every `(video, clip)` not cached
        yet, so training's first epoch does not stall on decoding. Returns how many were decoded."""
        if self.cache_dir is None:
            return 0
        todo = [(Path(v), c) for v, c in dict.fromkeys((str(v), c) for v, c in sources)
                if not (key := self._spec_key(Path(v), spec, c)) or not key.exists()]
        for video, clip in tqdm(todo, desc=desc, unit="video", disable=not progress or not todo):
            self.load(video, spec, np.random.default_rng(0), clip)
        return len(todo)

    @staticmethod
    def _load(key: Path | None) -> np.ndarray | None:
        if key is not None and key.exists():
            try:
                return np.load(key, mmap_mode="r")
            except (ValueError, OSError):  # a damaged cache file is recomputed, not trusted
                return None
        return None

    @staticmethod
    def _store(key: Path | None, frames: np.ndarray) -> None:
        if key is not None:
            key.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(key) as tmp:
                np.save(tmp, frames)

    def load(
        self,
        path: str | os.PathLike,
        spec: FrameSpec,
        rng: np.random.Generator | None = None,
        clip: tuple[float | None, float | None] | None = None,
    ) -> np.ndarray:
        """`uint8 [T, H, W, 3]` for the video at `path` (`rng` drives `segment`)."""
        path = Path(path)
        if spec.strategy == "segment":
            return self._segment(path, spec, rng or np.random.default_rng(), clip)
        # one config serves several strategies (train mixed, evaluate uniform): options are mixed's alone
        options = spec.options()
        key = self._spec_key(path, spec, clip)
        cached = self._load(key)
        if cached is not None:
            return np.array(cached)  # a writable copy of the memory-mapped file
        frames = sample_frames(path, spec.num_frames, spec.strategy, size=spec.size, clip=clip, **options).frames
        self._store(key, frames)
        return frames

    def _segment(self, path: Path, spec: FrameSpec, rng: np.random.Generator, clip) -> np.ndarray:
        key = self._spec_key(path, spec, clip)
        dense = self._load(key)
        if dense is None and key is not None:
            with VideoReader(path) as video:
                first, stop = clip_range(video, clip)
                if stop - first <= self.max_dense_frames:
                    dense = video.read(range(first, stop), spec.size)
                    self._store(key, dense)
                else:
                    return sample_frames(video, spec.num_frames, "segment", size=spec.size, seed=rng, clip=clip).frames
        if dense is None:
            return sample_frames(path, spec.num_frames, "segment", size=spec.size, seed=rng, clip=clip).frames
        return np.asarray(dense[segment_indices(len(dense), spec.num_frames, rng)])
