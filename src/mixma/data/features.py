"""Outputs of a frozen vision tower, computed once per video and kept on disk.

With the vision tower frozen (MA-LMM's ViT, a pretrained ImageNet CNN) and the frames fixed
(a deterministic strategy, `uniform` or `mixed`, and no augmentation), everything a model computes
from a video's pixels is the same every epoch, and it is most of the work on a CPU. A
`FeatureStore` runs the tower over each distinct video (or clip) once, before training, and the
dataset then yields `vision_features` instead of `pixel_values`; the models take either.

Files are named by a hash of the video (path, size, modification time), the clip, and a
fingerprint of everything else that shapes the features: the tower's weights, the sampling (with
the frame cache's `CACHE_VERSION`, bumped when a strategy's output changes) and the transform. A
changed model, option, sampler or video is never served stale.

`model_inputs` is how a model's videos become its input, for any model that says how its pixels
are normalised (`input_normalization`) and what its frozen tower computes (`vision_backbone`,
`vision_backbone_digest`): MA-LMM, MAMA's dual encoder and QA models.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mixma._atomic import atomic_path
from mixma.data.frame_cache import CACHE_VERSION
from mixma.data.section import VideoDataSection, VideoInput, video_input
from mixma.video.sampling import Strategy

FORMAT = 1


class FeatureStore:
    """Per-video features of a frozen tower (see the module docstring).

    Args:
        folder: where the feature files go (the run's frame cache, `features/` under it).
        video: how a video becomes the tower's input (sampling and transform; no augmentation).
        encode: the tower, `float [T, 3, S, S] -> float [T, ...]`.
        fingerprint: identifies `encode` (e.g. `mixma.models.folder.weights_digest` of the tower
            and what it returns).
    """

    def __init__(self, folder: str | os.PathLike, video: VideoInput, encode: Callable[[torch.Tensor], torch.Tensor],
                 fingerprint: str):
        if video.transform.train:
            raise ValueError("features can be cached only without training augmentation (data.augment: false)")
        if video.spec.strategy == "segment":
            raise ValueError("features can be cached only for a deterministic strategy (uniform or mixed), not segment")
        self.folder, self.video, self.encode = Path(folder), video, encode
        blob = json.dumps([FORMAT, CACHE_VERSION, fingerprint, video.spec.num_frames, video.spec.strategy, video.spec.size,
                           video.spec.options(), vars(video.transform.config)], sort_keys=True, default=str)
        self.fingerprint = hashlib.sha1(blob.encode()).hexdigest()[:16]

    def path(self, video: str | os.PathLike, clip: tuple | None) -> Path:
        stat = Path(video).stat()
        blob = json.dumps([self.fingerprint, str(Path(video).resolve()), stat.st_size, stat.st_mtime_ns, clip], default=str)
        digest = hashlib.sha1(blob.encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"

    @torch.no_grad()
    def compute(self, sources: Iterable[tuple[str | os.PathLike, tuple | None]], *, progress: bool = True,
                desc: str = "encoding frames with the frozen tower") -> int:
        """Encode every `(video, clip)` whose features are not on disk yet; returns how many."""
        todo = [(v, c) for v, c in dict.fromkeys((str(v), c) for v, c in sources) if not self.path(v, c).exists()]
        for video, clip in tqdm(todo, desc=desc, unit="video", disable=not progress or not todo):
            features = self.encode(self.video(video, clip)).float().cpu().numpy()
            target = self.path(video, clip)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                np.save(tmp, features.astype(np.float16))  # half the disk; the towers' outputs need no more
        return len(todo)

    def load(self, video: str | os.PathLike, clip: tuple | None) -> torch.Tensor:
        """The features `compute` stored, `float32 [T, ...]`."""
        path = self.path(video, clip)
        if not path.exists():
            raise FileNotFoundError(f"no cached features for {video} (run FeatureStore.compute first)")
        return torch.from_numpy(np.load(path).astype(np.float32))


def model_inputs(data: VideoDataSection, model, strategy: Strategy, *,
                 augment: bool = False) -> tuple[VideoInput, FeatureStore | None]:
    """How `model`'s videos become its input: frames sampled with `strategy` (augmented when
    `augment`), normalised as its vision tower expects, and, with `data.cache_features`, the store
    of its frozen tower's outputs (the run configs refuse `cache_features` with a tower that trains)."""
    video = video_input(data, strategy, augment=augment, normalization=model.input_normalization)
    if not data.cache_features:
        return video, None
    return video, FeatureStore(data.frame_cache / "features", video, model.vision_backbone, model.vision_backbone_digest())
