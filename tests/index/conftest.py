"""Fixtures for the index tests: solid-colour videos and a model that sees colours.

`ColourModel` embeds a moment as the unit mean RGB of its frames and reads "red", "green" or
"blue" in a query, so what a search must return is known exactly, without loading a network.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixma.index.models import MomentModel
from mixma.video.writer import write_video

RGB = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "grey": (120, 120, 120)}


def colour_video(path, colours: list[tuple[str, float]], fps: int = 10, size: int = 64):
    """A video showing each (colour, seconds) in turn, hard cuts between them."""
    frames = []
    for name, seconds in colours:
        frame = np.zeros((size, size, 3), np.uint8)
        frame[:] = RGB[name]
        frames += [frame] * round(seconds * fps)
    write_video(path, frames, fps=fps, gop=fps)
    return path


class ColourModel(MomentModel):
    name, dim = "colour", 3

    def __init__(self, fail_on: str | None = None, interrupt_on: str | None = None):
        self.calls: list[str] = []
        self.fail_on, self.interrupt_on = fail_on, interrupt_on

    def fingerprint(self) -> str:
        return "colour-v1"

    def encode_video_moments(self, path, options):
        self.calls.append(str(path))
        if self.interrupt_on and self.interrupt_on in str(path):
            raise KeyboardInterrupt
        return super().encode_video_moments(path, options)

    def encode_moments(self, chunk) -> np.ndarray:
        means = np.stack([chunk.frames[g].reshape(-1, 3).mean(0) for g in chunk.frames_of()]) - 20.0
        return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)

    def encode_text(self, texts):
        out = []
        for text in texts:
            v = np.array([name in text for name in ("red", "green", "blue")], np.float32) + 1e-3
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


@pytest.fixture()
def colour_videos(tmp_path):
    """red 4 s then blue 4 s; green 6 s; blue 3 s then grey 3 s."""
    folder = tmp_path / "videos"
    folder.mkdir()
    colour_video(folder / "a.mp4", [("red", 4), ("blue", 4)])
    colour_video(folder / "b.mp4", [("green", 6)])
    colour_video(folder / "c.mp4", [("blue", 3), ("grey", 3)])
    return folder
