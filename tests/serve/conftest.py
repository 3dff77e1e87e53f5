"""Two small videos in a stand-in index (tests/serve/fake_index.py), shared by the service's tests."""

from __future__ import annotations

import numpy as np
import pytest

from mixma.video.writer import write_video
from tests.serve.fake_index import FakeIndex


def write_clip(path, frames: int = 50, colour: int = 0):
    """`frames` frames of 64x48 at 25 fps, each frame's brightness its index (so clips differ)."""
    write_video(path, (np.full((48, 64, 3), (colour + 3 * i) % 256, np.uint8) for i in range(frames)), fps=25)
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return write_clip(folder / "red bikes.mp4", 75, 10), write_clip(folder / "dog.mp4", 50, 90)


@pytest.fixture
def index(tmp_path, clips):
    idx = FakeIndex(tmp_path)
    idx.put(clips[0], ["red bike rides", "bike stops", "crowd cheers"])
    idx.put(clips[1], ["dog runs"])
    return idx
