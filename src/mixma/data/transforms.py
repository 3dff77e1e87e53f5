"""Video transforms in torch (no torchvision): frames `uint8 [T, H, W, 3]` → `float [T, 3, S, S]`.

As MA-LMM preprocesses (LAVIS `blip2_video_train` / `blip2_video_eval`):
- train: one random resized crop for all frames of the clip (scale 0.5–1, aspect 3/4–4/3),
  resized to S x S bicubically, flipped horizontally with probability 0.5;
- eval: resized to S x S bicubically (the aspect ratio is not kept);
- then scaled to [0, 1] and normalised with the CLIP mean and standard deviation.

Randomness comes from a `numpy.random.Generator` passed in, so a dataset can derive it from
(seed, epoch, sample) and stay reproducible across workers and resumed runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TransformConfig:
    """Video preprocessing; every default lives here."""

    size: int = 224  # output side, pixels
    crop_scale: tuple[float, float] = (0.5, 1.0)  # train: area fraction of the random crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # train: aspect ratio range of the crop
    flip: float = 0.5  # train: horizontal flip probability
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD


def to_float(frames: np.ndarray) -> torch.Tensor:
    """`uint8 [T, H, W, 3]` → `float32 [T, 3, H, W]` in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)


def resize(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic resize of `[T, 3, H, W]`, antialiased when shrinking, clamped to [0, 1]."""
    if video.shape[-2:] == (height, width):
        return video
    return F.interpolate(video, size=(height, width), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)


def random_crop_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """A random crop `(top, left, h, w)` covering `scale` of the area with aspect in `ratio`.

    Tries ten random boxes (area and log-aspect uniform); if none fits, falls back to the
    largest centred box within the aspect range.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


class VideoTransform:
    """Frames → normalised model input, for training (random crop and flip) or evaluation."""

    def __init__(self, config: TransformConfig = TransformConfig(), train: bool = False):
        self.config, self.train = config, train
        self.mean = torch.tensor(config.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(config.std).view(1, 3, 1, 1)

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """`uint8 [T, H, W, 3]` → `float32 [T, 3, size, size]`; `rng` is required when training."""
        video = to_float(frames)
        size = self.config.size
        if self.train:
            if rng is None:
                raise ValueError("a training transform needs a random generator")
            top, left, h, w = random_crop_box(video.shape[2], video.shape[3], self.config.crop_scale, self.config.crop_ratio, rng)
            video = resize(video[:, :, top : top + h, left : left + w], size, size)
            if rng.random() < self.config.flip:
                video = video.flip(-1)
        else:
            video = resize(video, size, size)
        return (video - self.mean) / self.std
