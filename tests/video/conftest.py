"""Fixtures for the video tests: every kind of generated footage, written once per session, and
OpenCV's sample videos where `make test` extracted them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import opencv_doc_clip
from tests.video import footage


@pytest.fixture(scope="session")
def footage_path(tmp_path_factory):
    """`footage_path(kind)`: the file of that kind (see `tests.video.footage`), written on first use."""
    folder = tmp_path_factory.mktemp("footage")
    written: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in written:
            why = footage.missing_encoder(kind)
            if why:
                pytest.skip(why)
            written[kind] = footage.write(kind, folder / kind)
        return written[kind]

    return get


@pytest.fixture(scope="session")
def vtest() -> Path:
    """A static camera over a street, 768x576, 10 fps, 795 frames (80 s), MS-MPEG4 in AVI."""
    return opencv_doc_clip("vtest.avi")
