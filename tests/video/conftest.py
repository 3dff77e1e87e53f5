"""OpenCV's sample videos (the `opencv-doc` Debian package), where they are installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

OPENCV_SAMPLES = [
    os.environ.get("MIXMA_OPENCV_SAMPLES", ""),
    "/usr/share/doc/opencv-doc/examples/data",  # apt-get install opencv-doc
    "/work/data/opencv-doc/usr/share/doc/opencv-doc/examples/data",  # dpkg-deb -x of the same package
]


def _opencv_sample(name: str) -> Path:
    for folder in OPENCV_SAMPLES:
        if folder and (Path(folder) / name).exists():
            return Path(folder) / name
    pytest.skip(f"{name} not found: install the opencv-doc package (or set MIXMA_OPENCV_SAMPLES to its data folder)")


@pytest.fixture(scope="session")
def vtest() -> Path:
    """A static camera over a street, 768x576, 10 fps, 795 frames (80 s), MS-MPEG4 in AVI."""
    return _opencv_sample("vtest.avi")
