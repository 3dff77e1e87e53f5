"""Moments: windows, frames per moment, pooling, and MixedFrame's segments read in one pass."""

from __future__ import annotations

import numpy as np
import pytest

from mixma.index.moments import assign_frames, chunk_bounds, pool, read_chunks, window_spans
from mixma.index.options import IndexOptions
from mixma.video.reader import VideoReader
from tests.index.conftest import colour_video


@pytest.mark.parametrize("end,window", [(10.0, 3.0), (9.0, 3.0), (10.4, 5.0), (2.0, 5.0), (7.6, 2.5)])
def test_windows_tile_the_range_and_no_piece_is_under_half_a_window(end, window):
    spans = window_spans(0.0, end, window)
    assert spans[0, 0] == 0.0 and spans[-1, 1] == end
    np.testing.assert_array_equal(spans[1:, 0], spans[:-1, 1])
    lengths = spans[:, 1] - spans[:, 0]
    assert np.all(lengths[:-1] == pytest.approx(window))
    assert len(spans) == 1 or window / 2 <= lengths[-1] < 1.5 * window


def test_each_span_gets_its_frames_or_the_nearest_one():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    groups = assign_frames(times, np.array([[0.0, 1.5], [1.5, 1.8], [1.8, 4.0]]))
    assert [g.tolist() for g in groups] == [[0, 1], [2], [2, 3]]  # the empty one: its centre 1.65 s is nearest 2.0


def test_pooling_matches_a_loop():
    rng = np.random.default_rng(0)
    values = rng.random((7, 5))
    groups = [np.array([0, 1, 2]), np.array([3]), np.array([4, 5, 6])]
    for how, f in (("max", np.max), ("mean", np.mean)):
        expected = np.array([[f(values[g, j]) for j in range(5)] for g in groups])
        np.testing.assert_allclose(pool(values, groups, how), expected)


def test_chunks_are_equal_and_cover_the_video():
    edges = chunk_bounds(1000.0, 300.0)
    assert len(edges) == 4 and edges[0] == 0 and edges[-1] == 1000.0
    assert np.allclose(np.diff(edges), 1000 / 3)
    assert len(chunk_bounds(10.0, 300.0)) == 2


def _read(path, **options):
    with VideoReader(path) as reader:
        return list(read_chunks(reader, IndexOptions(**options))), float(reader.info.duration)


def test_mixed_moments_split_at_the_cut_and_tile_the_video(tmp_path):
    path = colour_video(tmp_path / "v.mp4", [("red", 4), ("blue", 4)])
    chunks, duration = _read(path, moment_sec=4.0, frame_rate=2.0)
    spans = np.concatenate([c.spans for c in chunks])
    assert spans[0, 0] == 0.0 and spans[-1, 1] == pytest.approx(duration)
    np.testing.assert_allclose(spans[1:, 0], spans[:-1, 1])
    assert np.min(np.abs(spans[1:, 0] - 4.0)) <= 0.1 + 1e-9  # a boundary at the cut (one frame at 10 fps)
    times = np.concatenate([c.times for c in chunks])
    np.testing.assert_allclose(np.diff(times), 0.5, atol=0.1 + 1e-9)  # 2 frames a second


def test_long_videos_are_read_in_chunks_whose_moments_still_tile(tmp_path):
    path = colour_video(tmp_path / "v.mp4", [("red", 5), ("green", 5), ("blue", 6)])
    for unit in ("mixed", "window"):
        chunks, duration = _read(path, unit=unit, moment_sec=1.0, chunk_sec=4.0, frame_rate=1.0)
        assert len(chunks) == 4
        spans = np.concatenate([c.spans for c in chunks])
        assert spans[0, 0] == 0 and spans[-1, 1] == pytest.approx(duration)
        np.testing.assert_allclose(spans[1:, 0], spans[:-1, 1])
        for c in chunks:  # every frame of a chunk falls inside the chunk's moments
            assert c.spans[0, 0] <= c.times.min() and c.times.max() < c.spans[-1, 1]


def test_video_unit_is_one_moment_per_chunk(tmp_path):
    path = colour_video(tmp_path / "v.mp4", [("red", 3)])
    chunks, duration = _read(path, unit="video")
    assert len(chunks) == 1 and chunks[0].spans.tolist() == [[0.0, pytest.approx(duration)]]
