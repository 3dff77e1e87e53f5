"""Writing a `FrameSample` out: frame JPEGs, a labelled contact sheet and `frames.json`."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mixma._atomic import write_bytes, write_json
from mixma.video.sampling import FrameSample

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(tile_width: int, lines: list[str], height: int) -> np.ndarray:
    bar = np.full((height, tile_width, 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(bar, text, (6, 16 + 18 * i), _FONT, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return bar


def _describe(sample: FrameSample, i: int) -> list[str]:
    first, last = sample.spans[i]
    fps = sample.info.fps
    head = f"#{i}  t={sample.times[i]:.2f}s"
    if first == last:
        return [head, f"frame {first}"]
    return [head, f"frames {first}-{last} ({(last - first + 1) / fps:.2f}s)"]


MAX_SHEET_WIDTH = 4096  # tiles shrink (to MIN_TILE_WIDTH) so that many frames do not make a giant sheet
MIN_TILE_WIDTH = 96


def contact_sheet(sample: FrameSample, tile_width: int = 256, columns: int | None = None) -> np.ndarray:
    """One RGB image with every frame of `sample`, labelled with its time and span."""
    count = len(sample.frames)
    columns = columns or min(count, max(1, math.ceil(math.sqrt(count * 1.5))))
    tile_width = max(MIN_TILE_WIDTH, min(tile_width, MAX_SHEET_WIDTH // columns - 4))
    rows = math.ceil(count / columns)
    h, w = sample.frames.shape[1:3]
    tile_height = max(2, round(h * tile_width / w))
    label_height = 44
    title_height = 30
    gap = 4
    sheet = np.full(
        (title_height + rows * (tile_height + label_height + gap), columns * (tile_width + gap) + gap, 3), 235, np.uint8
    )
    title = f"{os.path.basename(sample.info.path)}  |  {sample.strategy}, {count} frames"
    if sample.strategy == "mixed":
        title += f", mode {sample.options['mode']}"
    cv2.putText(sheet, title, (gap + 2, 20), _FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for i, frame in enumerate(sample.frames):
        r, c = divmod(i, columns)
        y = title_height + r * (tile_height + label_height + gap)
        x = gap + c * (tile_width + gap)
        sheet[y : y + tile_height, x : x + tile_width] = cv2.resize(frame, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
        sheet[y + tile_height : y + tile_height + label_height, x : x + tile_width] = _label(
            tile_width, _describe(sample, i), label_height
        )
    return sheet


def write_jpeg(path: str | os.PathLike, rgb: np.ndarray, quality: int = 92) -> None:
    """Write an RGB image as JPEG, atomically."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"could not encode {path} as JPEG")
    write_bytes(path, data.tobytes())


_OUR_FRAME = re.compile(r"frame_\d{3,}\.jpg")


def save_sample(sample: FrameSample, directory: str | os.PathLike, quality: int = 92) -> dict[str, Any]:
    """Write `frame_000.jpg ...`, `sheet.jpg` and `frames.json` into `directory`.

    Frame files left by an earlier, longer run in the same directory are removed, so the folder
    always matches its `frames.json`. Returns the JSON written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"frame_{i:03d}.jpg" for i in range(len(sample.frames))]
    for name, frame in zip(names, sample.frames):
        write_jpeg(directory / name, frame, quality)
    for stale in directory.iterdir():
        if _OUR_FRAME.fullmatch(stale.name) and stale.name not in names:
            stale.unlink()
    write_jpeg(directory / "sheet.jpg", contact_sheet(sample), quality)
    description = sample.to_dict()
    for entry, name in zip(description["frames"], names):
        entry["file"] = name
    write_json(directory / "frames.json", description)
    return description
