"""The pure functions behind `VideoInfo`'s fields, and the table rows for `mixma info`."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mixma import probe
from mixma.video.convert import rotate
from mixma.video.info import (
    INFO_COLUMNS,
    format_name,
    info_rows,
    is_variable_rate,
    keyframe_intervals,
    rotation_clockwise,
)


@pytest.mark.parametrize("counterclockwise", [0, 90, -90, 180, -180, 270, 89.99, -90.02])
def test_rotation_turns_the_picture_as_the_display_matrix_says(counterclockwise):
    """Turning clockwise by the reported angle is the display matrix's counterclockwise turn."""
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    clockwise = rotation_clockwise(counterclockwise)
    assert clockwise in (0, 90, 180, 270)
    np.testing.assert_array_equal(rotate(image, clockwise), np.rot90(image, k=round(counterclockwise / 90)))


def test_variable_rate():
    tick = 1 / 1000
    ntsc = np.round(np.arange(300) * 1001 / 30000, 3)  # 29.97 fps in milliseconds: 33 and 34 ms steps
    assert not is_variable_rate(ntsc, tick)
    assert not is_variable_rate(np.round(np.arange(300) / 120, 3), tick)  # 8 and 9 ms steps
    one_drop = np.delete(np.arange(100) / 25, 50)
    assert is_variable_rate(one_drop, 1 / 25)
    assert is_variable_rate(np.array([0.0, 0.04, 0.08, 0.5, 0.52]), tick)
    assert not is_variable_rate(np.array([0.0, 1.0]), tick)


def runs_by_loop(starts, n):
    """Frames from each keyframe to the next, counted one frame at a time."""
    runs, length = [], 0
    for i in range(n):
        if i in set(starts) and length:
            runs.append(length)
            length = 0
        length += 1
    return runs + [length]


@pytest.mark.parametrize(("starts", "n"), [([0], 48), ([0, 20, 40], 48), ([0, 1, 2, 3], 4), ([0, 12, 30, 31], 90)])
def test_keyframe_intervals(starts, n):
    runs = runs_by_loop(starts, n)
    mean, longest = keyframe_intervals(np.array(starts), n)
    assert mean == pytest.approx(np.mean(runs))
    assert longest == max(runs)


def test_format_name():
    assert format_name("mov,mp4,m4a,3gp,3g2,mj2", "/x/Clip.MOV") == "mov"
    assert format_name("mov,mp4,m4a,3gp,3g2,mj2", "clip.mp4") == "mp4"
    assert format_name("mov,mp4,m4a,3gp,3g2,mj2", "clip.m4v") == "mov"
    assert format_name("matroska,webm", "clip.webm") == "webm"
    assert format_name("matroska,webm", "clip.mkv") == "matroska"
    assert format_name("avi", "clip") == "avi"


def test_info_is_json_friendly_and_rows_fit_the_columns(footage_path):
    infos = [probe(footage_path(kind)) for kind in ("h264_bframes.mp4", "rot90.mp4", "dropped.avi")]
    for info in infos:
        json.dumps(dataclasses.asdict(info))  # plain numbers and strings only
    rows = info_rows(infos)
    assert [len(r) for r in rows] == [len(INFO_COLUMNS)] * 3
    by_column = [dict(zip(INFO_COLUMNS, r)) for r in rows]
    assert by_column[0]["size"] == "144x96" and by_column[1]["size"] == "96x144"
    assert by_column[1]["rotation"] == "270°"
    assert by_column[2]["frames"] == f"{infos[2].num_frames} (header {infos[2].header_frames})"
    assert by_column[2]["vfr"] == "yes" and by_column[0]["vfr"] == "no"
    assert by_column[0]["codec"] == "h264 (mp4, yuv420p)"
