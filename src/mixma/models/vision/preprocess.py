"""uint8 RGB frames → normalised float batches, the way the ImageNet weights were evaluated.

Crop ("center"): the centre square whose side is `S / (S + 32)` of the frame's shorter side,
resized to `S x S`. This is EfficientNet's evaluation crop (TF's `CROP_PADDING = 32`), and at
224 px it is torchvision's `Resize(256) + CenterCrop(224)` that MobileNetV2 was evaluated with
(0.875 of the shorter side). Cropping before resizing resizes only the pixels that are kept.
"full" resizes the whole frame to `S x S` instead, keeping everything in view at the cost of
squashing its aspect ratio (what BLIP-style video pipelines do).

Resampling: shrinking uses area averaging (`mixma.video.convert.resize_plane`), so a large
frame does not alias, much like the antialiased bicubic of PIL that torchvision's transforms
use; enlarging uses bicubic interpolation, as EfficientNet's TF pipeline does.

Normalisation: `(pixel - mean) / std` per channel on the 0..255 scale; EfficientNet-Lite uses
127 and 128 for every channel, MobileNetV2 the ImageNet mean and standard deviation. The
`[N, S, S, 3]` uint8 batch seen as `[N, 3, S, S]` already *is* channels-last memory, so a
channels-last network gets its input without a transposing copy.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor

from mixma.models.vision.errors import FrameError
from mixma.video.convert import resize_plane

Crop = Literal["center", "full"]
CROPS: tuple[Crop, ...] = ("center", "full")
CROP_PADDING = 32  # the centre crop keeps S / (S + CROP_PADDING) of the shorter side


def check_frame(frame: object, what: str = "frame") -> np.ndarray:
    """`frame` as a `uint8 [H, W, 3]` array (a torch tensor is converted without copying on CPU).

    Raises:
        FrameError: another dtype, rank or channel count, or an empty frame.
    """
    if isinstance(frame, Tensor):
        frame = frame.detach().cpu().numpy()
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"{what} must be a numpy array or tensor, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise FrameError(f"{what} must be uint8 RGB (0..255), got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"{what} must have shape [H, W, 3], got {list(frame.shape)}")
    return frame


def check_frames(frames: object) -> list[np.ndarray] | np.ndarray:
    """Validate a batch: `uint8 [N, H, W, 3]` (array or tensor) or a sequence of `[H, W, 3]` frames.

    Raises:
        FrameError: with the shape or dtype found, and which frame when a sequence is bad.
    """
    if isinstance(frames, (np.ndarray, Tensor)):
        if frames.ndim != 4:
            hint = " (one frame? add a batch dimension: frames[None])" if frames.ndim == 3 else ""
            raise FrameError(f"frames must have shape [N, H, W, 3], got {list(frames.shape)}{hint}")
        array = frames.detach().cpu().numpy() if isinstance(frames, Tensor) else frames
        if len(array):
            check_frame(array[0], "each frame")
        return array
    if isinstance(frames, (list, tuple)):
        return [check_frame(f, f"frame {i}") for i, f in enumerate(frames)]
    raise FrameError(f"frames must be a uint8 [N, H, W, 3] array or a list of [H, W, 3] arrays, "
                     f"got {type(frames).__name__}")


def center_square(height: int, width: int, image_size: int) -> tuple[int, int, int]:
    """`(top, left, side)` of the centre crop for a network input of `image_size` pixels."""
    side = max(1, round(min(height, width) * image_size / (image_size + CROP_PADDING)))
    return (height - side) // 2, (width - side) // 2, side


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize uint8 `[H, W, 3]`: area averaging when shrinking, bicubic when enlarging."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if width <= w and height <= h:
        return resize_plane(image, width, height)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


def prepare_frame(frame: np.ndarray, image_size: int, crop: Crop = "center") -> np.ndarray:
    """One `uint8 [H, W, 3]` frame → `uint8 [S, S, 3]`, cropped (see the module docstring) and resized."""
    if crop == "center":
        top, left, side = center_square(frame.shape[0], frame.shape[1], image_size)
        frame = frame[top : top + side, left : left + side]
    return np.ascontiguousarray(resize(frame, image_size, image_size))


def decode_size(image_size: int, crop: Crop) -> int | tuple[int, int]:
    """The size to decode video frames at so that `prepare_frame` has nothing left to resize.

    A `mixma.video.convert.Size`: the shorter side for "center" (the crop of `S + 32` is `S`), or
    `(S, S)` for "full".
    """
    return image_size + CROP_PADDING if crop == "center" else (image_size, image_size)


def normalize(batch: np.ndarray, mean: Tensor, std: Tensor, *, channels_last: bool,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 `[N, S, S, 3]` → float `[N, 3, S, S]`, `(pixel - mean) / std` per channel.

    Args:
        batch: prepared frames.
        mean: `[1, 3, 1, 1]` float per-channel mean on the 0..255 scale.
        std: `[1, 3, 1, 1]` per-channel standard deviation on the same scale.
        channels_last: return channels-last memory (free: it is the uint8 layout); otherwise
            contiguous NCHW.
        device: where to put the result.
        dtype: its floating-point type (the network's).
    """
    x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2)  # [N, 3, S, S] view, channels-last strides
    x = x.to(dtype)  # keeps the strides
    if not channels_last:
        x = x.contiguous()
    return x.sub_(mean).div_(std)
