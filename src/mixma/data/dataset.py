"""One torch dataset for every task: a video (or clip) plus the texts that go with it.

A `VideoItem` is a video with named text *pools* (one text of each pool is drawn per epoch: a
retrieval caption from the video's captions, say) and fixed *fields* passed through unchanged (a
question's answer options). Every random choice (which frames, which crop, which text) comes from
a generator seeded by (seed, epoch, index), so what an item yields depends on nothing else: not
the number of workers, not the order of the batches, not a resumed run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from mixma.data.section import VideoInput


@dataclass(frozen=True)
class VideoItem:
    """A video (or a clip of it) and its texts."""

    video: Path
    clip: tuple[float | None, float | None] | None = None
    pools: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # one drawn per epoch; empty -> ""
    fields: Mapping[str, Any] = field(default_factory=dict)  # passed through as they are


class VideoDataset(Dataset):
    """`VideoItem`s as `{"pixel_values": float [T, 3, S, S], "index": int, **texts, **fields}`.

    Args:
        items: the items.
        video: how a video becomes model input (`mixma.data.section.video_input`).
        seed: with the epoch and the index, seeds every random choice.
        features: a frozen tower's stored outputs (`mixma.data.features.FeatureStore`): items
            then hold `vision_features` instead of `pixel_values`.
    """

    def __init__(self, items: list[VideoItem], video: VideoInput, seed: int = 0, features=None):
        self.items, self.video, self.seed, self.features = items, video, seed, features
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.features is not None:  # deterministic frames, no augmentation: nothing is drawn for them
            out: dict[str, Any] = {"vision_features": self.features.load(item.video, item.clip), "index": index}
        else:
            out = {"pixel_values": self.video(item.video, item.clip, rng), "index": index}
        for name, pool in item.pools.items():
            # a pool of one draws nothing from the generator (numpy's integers(1) uses no bits)
            out[name] = pool[int(rng.integers(len(pool)))] if pool else ""
        out.update(item.fields)
        return out


def prepare(items: list[VideoItem], video: VideoInput, features=None, *, rank: int = 0, world: int = 1,
            progress: bool = True, what: str = "training") -> None:
    """Before training or evaluating on `items`: decode and cache their frames and, with a feature
    store, run the frozen tower over them (this process's share under torchrun: wait at a barrier
    before another process reads them)."""
    warm_frames(items, video, rank=rank, world=world, progress=progress, desc=f"caching {what} frames (first run only)")
    if features is not None:
        features.compute(sources(items)[rank::world], progress=progress, desc=f"encoding {what} frames with the frozen tower")


def evaluation_dataset(items: list[VideoItem], video: VideoInput, features=None, progress: bool = True) -> VideoDataset:
    """The items as model input for evaluation (the frozen tower's outputs computed if missing)."""
    if features is not None:
        features.compute(sources(items), progress=progress, desc="encoding evaluation frames with the frozen tower")
    return VideoDataset(items, video, features=features)


def warm_frames(items: list[VideoItem], video: VideoInput, *, rank: int = 0, world: int = 1, progress: bool = True,
                desc: str = "caching frames") -> int:
    """Decode and cache the frames of every distinct video of `items` before training starts (this
    process's share of them, under torchrun), with a progress bar instead of a silent first epoch.
    Returns how many videos were decoded (0 when all were cached, or there is no cache)."""
    return video.frames.warm(sources(items)[rank::world], video.spec, progress=progress, desc=desc)


def sources(items: list[VideoItem]) -> list[tuple[str, tuple | None]]:
    """The distinct `(video, clip)` pairs of `items`, in order."""
    return list(dict.fromkeys((str(item.video), item.clip) for item in items))
