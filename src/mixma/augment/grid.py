"""Tiling keyframes into one image (MAMA's 3x4 mosaic) and padding images to a square."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class GridConfig:
    """Grid layout; every default lives here."""

    rows: int = 3  # MAMA: 3 rows of 4 keyframes
    cols: int = 4
    separator: int = 0  # pixels of `color` between tiles (0: tiles touch, as MAMA)
    color: tuple[int, int, int] = (0, 0, 0)  # RGB of the separators
    tile_size: tuple[int, int] | None = None  # (height, width) of a tile; None: the first frame's size

    def __post_init__(self):
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"a grid needs at least 1 row and 1 column, got {self.rows}x{self.cols}")
        if self.separator < 0:
            raise ValueError(f"separator must be >= 0, got {self.separator}")
        if self.tile_size is not None and min(self.tile_size) < 1:
            raise ValueError(f"tile_size must be positive, got {self.tile_size}")

    @property
    def cells(self) -> int:
        return self.rows * self.cols


def parse_grid(text: str) -> tuple[int, int]:
    """'3x4' -> (3, 4): rows x columns.

    Raises:
        ValueError: not of the form ROWSxCOLS with positive numbers.
    """
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"a grid is ROWSxCOLS, like 3x4; got {text!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"a grid needs at least 1 row and 1 column, got {text!r}")
    return rows, cols


def make_grid(frames: Sequence[np.ndarray] | np.ndarray, config: GridConfig = GridConfig()) -> np.ndarray:
    """Tile `rows * cols` frames left to right, top to bottom, in the order given.

    Args:
        frames: `uint8 [H, W, 3]` RGB images (a `[K, H, W, 3]` array works too), in time order.
        config: layout. Frames of another size than the tile size are resized to it.

    Returns:
        `uint8 [rows * h + (rows - 1) * sep, cols * w + (cols - 1) * sep, 3]` RGB.

    Raises:
        ValueError: the number of frames is not `rows * cols`, or a frame is not RGB.
    """
    if len(frames) != config.cells:
        raise ValueError(f"a {config.rows}x{config.cols} grid needs {config.cells} frames, got {len(frames)}")
    for frame in frames:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be RGB images [H, W, 3], got shape {tuple(frame.shape)}")
    height, width = config.tile_size or frames[0].shape[:2]
    sep = config.separator
    grid = np.empty((config.rows * height + (config.rows - 1) * sep, config.cols * width + (config.cols - 1) * sep, 3), np.uint8)
    grid[:] = np.asarray(config.color, dtype=np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, config.cols)
        if frame.shape[:2] != (height, width):
            shrink = frame.shape[0] > height or frame.shape[1] > width
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        y, x = r * (height + sep), c * (width + sep)
        grid[y : y + height, x : x + width] = frame
    return grid


def pad_to_square(image: np.ndarray, color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Centre `image` on a square canvas of `color` whose side is its longer side.

    LLaVA-1.5 was trained on images padded like this (its "pad" aspect-ratio mode); a wide grid
    fed to a resize-and-centre-crop processor would lose its left and right columns.
    """
    height, width = image.shape[:2]
    side = max(height, width)
    if height == width:
        return image
    out = np.empty((side, side, image.shape[2]), dtype=image.dtype)
    out[:] = np.asarray(color, dtype=image.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    out[top : top + height, left : left + width] = image
    return out
