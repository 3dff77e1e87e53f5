"""The `sample_frames` contract for every strategy (DESIGN.md, public contract)."""

from __future__ import annotations

import numpy as np
import pytest

from mixma import FrameSample, VideoReader, sample_frames
from mixma.video.sampling import segment_indices, uniform_indices
from tests.conftest import frame_index


def test_uniform_is_rint_linspace(indexed_video):
    sample = sample_frames(indexed_video, 7)
    expected = np.rint(np.linspace(0, 299, 7)).astype(int)
    assert [frame_index(f) for f in sample.frames] == list(expected)
    assert sample.spans == [(i, i) for i in expected]
    np.testing.assert_allclose(sample.times, expected / 25)
    assert sample.strategy == "uniform" and sample.options["num_frames"] == 7


def test_segment_draws_one_frame_per_equal_segment(indexed_video):
    edges = np.linspace(0, 300, 9).astype(int)
    sample = sample_frames(indexed_video, 8, "segment", seed=3)
    shown = [frame_index(f) for f in sample.frames]
    assert shown == [a for a, _ in sample.spans]
    for i, index in enumerate(shown):
        assert edges[i] <= index < edges[i + 1]


def test_segment_is_reproducible_and_varies_with_seed(indexed_video):
    a = sample_frames(indexed_video, 8, "segment", seed=1).spans
    b = sample_frames(indexed_video, 8, "segment", seed=1).spans
    c = sample_frames(indexed_video, 8, "segment", seed=2).spans
    assert a == b and a != c


def test_segment_covers_each_segment_uniformly():
    rng = np.random.default_rng(0)
    draws = np.stack([segment_indices(40, 4, rng) for _ in range(4000)])
    for s in range(4):
        counts = np.bincount(draws[:, s] - 10 * s, minlength=10)
        assert counts.min() > 300 and counts.max() < 500  # ~400 each


@pytest.mark.parametrize("strategy", ["uniform", "segment", "mixed"])
@pytest.mark.parametrize("num_frames", [1, 5, 32, 300])
def test_exactly_num_frames(indexed_video, strategy, num_frames):
    sample = sample_frames(indexed_video, num_frames, strategy, size=32)
    assert isinstance(sample, FrameSample)
    assert sample.frames.shape[0] == len(sample.spans) == len(sample.times) == num_frames
    assert sample.frames.dtype == np.uint8 and sample.frames.shape[-1] == 3
    starts = [a for a, _ in sample.spans]
    assert starts == sorted(starts)
    assert all(0 <= a <= b < 300 for a, b in sample.spans)


@pytest.mark.parametrize("strategy", ["uniform", "segment", "mixed"])
def test_video_shorter_than_num_frames_repeats(indexed_video, strategy):
    with VideoReader(indexed_video) as video:
        sample = sample_frames(video, 400, strategy, size=32)
    assert len(sample) == 400
    assert sorted({a for a, _ in sample.spans}) == list(range(300))  # every frame, some twice


def test_uniform_indices_short_video():
    assert list(uniform_indices(3, 5)) == [0, 0, 1, 2, 2]


def test_reader_passed_in_stays_open(indexed_video):
    with VideoReader(indexed_video) as video:
        sample_frames(video, 4)
        assert frame_index(video.read([123])[0]) == 123


def test_size_option(indexed_video):
    assert sample_frames(indexed_video, 2, size=48).frames.shape == (2, 48, 80, 3)
    assert sample_frames(indexed_video, 2, "mixed", size=(20, 30)).frames.shape == (2, 20, 30, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": "linspace"}, "unknown strategy"),
        ({"num_frames": 0}, "positive integer"),
        ({"mode": "mean"}, "only apply to strategy 'mixed'"),
        ({"strategy": "mixed", "colour": 1}, "unknown option"),
        ({"strategy": "mixed", "mode": "median"}, "mode must be one of"),
        ({"strategy": "mixed", "step": 0}, "step must be"),
        ({"seed": 1}, "seed only applies"),
    ],
)
def test_bad_arguments(indexed_video, kwargs, message):
    args = {"num_frames": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        sample_frames(indexed_video, **args)


def test_to_dict_is_json_ready(indexed_video):
    import json

    sample = sample_frames(indexed_video, 3, "mixed")
    data = json.loads(json.dumps(sample.to_dict()))
    assert data["strategy"] == "mixed" and len(data["frames"]) == 3
    assert data["options"]["mode"] == "mean" and data["video"]["num_frames"] == 300


@pytest.mark.parametrize("strategy", ["uniform", "segment", "mixed"])
def test_clip_restricts_to_frames_shown_in_it(indexed_video, strategy):
    sample = sample_frames(indexed_video, 6, strategy, clip=(2.0, 4.0), size=48)  # frames 50..99 at 25 fps
    assert all(50 <= a <= b <= 99 for a, b in sample.spans)
    if strategy != "mixed":
        assert [frame_index(f) for f in sample.frames] == [a for a, _ in sample.spans]
    assert sample.options["clip"] == [2.0, 4.0]
    assert sample_frames(indexed_video, 3, strategy, clip=(None, 0.2)).spans[-1][1] <= 4


def test_clip_outside_the_video(indexed_video):
    from mixma import VideoError

    with pytest.raises(VideoError, match="holds no frame"):
        sample_frames(indexed_video, 4, clip=(20.0, 30.0))
