"""The `data` section every trainer shares, and how its videos become model input.

`VideoDataSection` names a dataset (a reader from `mixma data list`), its splits, and how frames
are sampled and preprocessed for training and for evaluation; the dataset, its splits and its
reader options are checked when the config is read. Trainers extend it with their `task` (the
choices each can train) and what only they need (MA-LMM's prompts, MAMA's caption pool).
`video_input` turns a section into the callable a dataset uses: the frame cache, sampling with a
strategy, and the transform.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mixma.data.frame_cache import FrameLoader, FrameSpec
from mixma.data.transforms import TransformConfig, VideoTransform
from mixma.video.mixed import MixedConfig
from mixma.video.sampling import Strategy



@dataclass
class VideoDataSection:
    """Which dataset, which splits, and how its videos are sampled; every default lives here."""

    dataset: str = "synthetic"  # a name from `mixma data list`
    root: str = "bench"  # the dataset folder (stored absolute in a run's config)
    train_split: str = "train"
    eval_split: str | None = "val"  # None: no evaluation during training
    options: dict[str, Any] = field(default_factory=dict)  # reader options, e.g. {task: genre} for LVU
    num_frames: int = 8  # T, frames per video
    train_strategy: Strategy = "segment"  # MA-LMM trains on TSN samples
    eval_strategy: Strategy = "uniform"  # ... and evaluates on evenly spaced frames
    mixed: MixedConfig = field(default_factory=MixedConfig)  # MixedFrame options, for the `mixed` strategy
    image_size: int = 224  # model input side
    augment: bool = True  # training: one random crop (scale 0.5-1) and flip per clip, as MA-LMM trains
    cache_features: bool = False  # a frozen vision tower: encode each video once, before training, and
    # keep the features (needs augment: false and a deterministic strategy, uniform or mixed)
    decode_size: int | None = None  # frames are decoded with this shorter side (default: image_size)
    cache_dir: str | None = None  # decoded-frame cache (default: <root>/.frame_cache)
    max_train_samples: int | None = None  # use only the first N training samples (smoke runs)
    max_eval_samples: int | None = None

    def __post_init__(self):
        from mixma.data.readers import DATASETS  # noqa: PLC0415  (the registry imports every reader)

        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        self.check_split(self.train_split, "train_split")
        if self.eval_split:
            self.check_split(self.eval_split, "eval_split")
        known = DATASETS[self.dataset].options
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ValueError(f"options: {self.dataset} has no option(s) {', '.join(unknown)} (its options: {', '.join(known) or 'none'})")
        missing = [k for k, default in known.items() if default is inspect.Parameter.empty and k not in self.options]
        if missing:
            raise ValueError(f"options: {self.dataset} needs {', '.join(missing)} (e.g. options: {{{missing[0]}: ...}})")
        if self.num_frames < 1 or self.image_size < 1:
            raise ValueError("num_frames and image_size must be >= 1")
        if self.cache_features and self.augment:
            raise ValueError("cache_features needs augment: false (augmented frames differ every epoch)")
        if self.cache_features and "segment" in (self.train_strategy, self.eval_strategy):
            raise ValueError("cache_features needs deterministic strategies (uniform or mixed), not segment")

    def check_split(self, split: str, key: str) -> None:
        """Refuse a split the dataset does not have (`key` names the setting)."""
        from mixma.data.readers import DATASETS  # noqa: PLC0415

        splits = DATASETS[self.dataset].splits
        if split not in splits:
            raise ValueError(f"{key}: {self.dataset} has splits {', '.join(splits)}, not {split!r}")

    def absolute(self) -> None:
        """Make the dataset's paths absolute, so a run's saved config works from any folder."""
        self.root = os.path.abspath(self.root)
        if self.cache_dir is not None:
            self.cache_dir = os.path.abspath(self.cache_dir)

    @property
    def frame_cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.root) / ".frame_cache"


@dataclass(frozen=True)
class VideoInput:
    """Frames of one video as model input: `(video, clip, rng) -> float [T, 3, S, S]`.

    The same generator drives the sampling (`segment` draws) and then the training augmentation,
    so what a sample yields depends only on the generator's seed.
    """

    frames: FrameLoader
    spec: FrameSpec
    transform: VideoTransform

    def __call__(self, video: str | Path, clip: tuple | None = None, rng: np.random.Generator | None = None) -> torch.Tensor:
        frames = self.frames.load(video, self.spec, rng, clip)
        return self.transform(frames, rng if self.transform.train else None)


def video_input(data: VideoDataSection, strategy: Strategy, *, augment: bool = False, cached: bool = True,
                normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> VideoInput:
    """How `data`'s videos become model input with `strategy`: training augmentation when
    `augment`, decoded frames kept in the dataset's frame cache when `cached`, and pixels
    normalised with the model's `(mean, std)` (default: CLIP's, as CLIP and InstructBLIP expect)."""
    spec = FrameSpec(data.num_frames, strategy, data.decode_size or data.image_size, data.mixed)
    loader = FrameLoader(data.frame_cache if cached else None)
    mean, std = normalization or (TransformConfig.mean, TransformConfig.std)
    transform = TransformConfig(size=data.image_size, mean=tuple(mean), std=tuple(std))
    return VideoInput(loader, spec, VideoTransform(transform, train=augment))
