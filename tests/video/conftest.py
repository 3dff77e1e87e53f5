"""Fixtures for the video tests: every kind of generated footage, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

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
