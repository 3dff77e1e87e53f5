"""FrameLoader: cached frames equal decoded ones, nothing stale, segment draws from the cache."""

from __future__ import annotations

import os
import shutil

import numpy as np

from mixma.data.frame_cache import FrameLoader, FrameSpec
from mixma.video.mixed import MixedConfig
from mixma.video.sampling import sample_frames, segment_indices
from tests.conftest import frame_index


def test_cached_frames_equal_decoded_frames(tmp_path, indexed_video):
    spec = FrameSpec(6, "uniform", 48)
    loader = FrameLoader(tmp_path / "cache")
    first = loader.load(indexed_video, spec)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    second = loader.load(indexed_video, spec)  # served from the cache
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, sample_frames(indexed_video, 6, "uniform", size=48).frames)
    second[0] = 0  # callers get a writable copy, never the cache file itself
    np.testing.assert_array_equal(loader.load(indexed_video, spec), first)


def test_mixed_options_do_not_reach_other_strategies(tmp_path, indexed_video):
    """A config trains with `mixed` and its options, and evaluates with `uniform`."""
    loader = FrameLoader(tmp_path / "cache")
    uniform = loader.load(indexed_video, FrameSpec(6, "uniform", 48, MixedConfig(step=1)))
    np.testing.assert_array_equal(uniform, loader.load(indexed_video, FrameSpec(6, "uniform", 48)))
    draws = loader.load(indexed_video, FrameSpec(6, "segment", 48, MixedConfig(step=1)), np.random.default_rng(0))
    assert draws.shape[0] == 6
    stepped = loader.load(indexed_video, FrameSpec(6, "mixed", 48, MixedConfig(step=1)))
    default = loader.load(indexed_video, FrameSpec(6, "mixed", 48))
    assert stepped.shape == default.shape and len(list((tmp_path / "cache").rglob("*.npy"))) == 4  # own entries


def test_an_edited_video_is_not_served_stale(tmp_path, indexed_video, bikes):
    video = tmp_path / "clip.mp4"
    shutil.copy(indexed_video, video)
    loader, spec = FrameLoader(tmp_path / "cache"), FrameSpec(4, "uniform", 48)
    before = loader.load(video, spec)
    shutil.copy(bikes, video)
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    after = loader.load(video, spec)
    np.testing.assert_array_equal(after, sample_frames(video, 4, "uniform", size=48).frames)
    assert after.shape != before.shape  # the new content, not the old


def test_segment_draws_follow_the_rng_from_cached_dense_frames(tmp_path, indexed_video):
    loader, spec = FrameLoader(tmp_path / "cache"), FrameSpec(8, "segment", 96)
    frames = loader.load(indexed_video, spec, np.random.default_rng(5))
    expected = segment_indices(300, 8, np.random.default_rng(5))
    assert [frame_index(f) for f in frames] == list(expected)
    again = loader.load(indexed_video, spec, np.random.default_rng(5))  # from the dense cache now
    np.testing.assert_array_equal(frames, again)
    other = loader.load(indexed_video, spec, np.random.default_rng(6))
    assert [frame_index(f) for f in other] == list(segment_indices(300, 8, np.random.default_rng(6)))


def test_a_damaged_cache_file_is_recomputed(tmp_path, indexed_video):
    loader, spec = FrameLoader(tmp_path / "cache"), FrameSpec(4, "uniform", 48)
    frames = loader.load(indexed_video, spec)
    (cached,) = (tmp_path / "cache").rglob("*.npy")
    cached.write_bytes(b"not an array")
    np.testing.assert_array_equal(loader.load(indexed_video, spec), frames)


def test_warm_decodes_each_missing_video_once(tmp_path, indexed_video, monkeypatch):
    from mixma.data import frame_cache

    loader, spec = FrameLoader(tmp_path / "cache"), FrameSpec(4, "mixed", 48, MixedConfig(step=1))
    sources = [(indexed_video, None), (indexed_video, None), (indexed_video, (1.0, 5.0))]
    assert loader.warm(sources, spec, progress=False) == 2  # two distinct (video, clip) pairs
    assert loader.warm(sources, spec, progress=False) == 0

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(frame_cache, "sample_frames", no_decoding)
    assert loader.load(indexed_video, spec, clip=(1.0, 5.0)).shape[0] == 4
    dense = FrameSpec(4, "segment", 48)
    monkeypatch.undo()
    assert loader.warm([(indexed_video, None)], dense, progress=False) == 1
    assert FrameLoader(None).warm(sources, spec, progress=False) == 0  # no cache, nothing to warm
