"""Keyframes: peak picking and selection against hand-worked cases, and detection against a
generated video whose shots start at known frames."""

from __future__ import annotations

import numpy as np
import pytest

from mixma.augment.keyframes import (
    KeyframeConfig, extract_keyframes, pick_peaks, running_median, select_keyframes,
)
from mixma.errors import VideoError
from mixma.video.reader import VideoReader

from .conftest import CUTS, NUM_FRAMES, SHOT_COLOURS, shot_of

SHOT_STARTS = [0, *CUTS]


# -- pick_peaks ------------------------------------------------------------------------------


def test_peaks_threshold_and_min_distance():
    values = np.zeros(50)
    values[[5, 20, 22, 40]] = [10, 8, 9, 0.5]  # 0.5 is below 10% of the range
    assert pick_peaks(values, threshold=0.1, min_distance=5).tolist() == [5, 22]  # 22 beats 20 nearby
    assert pick_peaks(values, threshold=0.1, min_distance=1).tolist() == [5, 20, 22]
    assert pick_peaks(values, threshold=0.0, min_distance=1).tolist() == [5, 20, 22, 40]
    assert pick_peaks(values, threshold=0.85, min_distance=1).tolist() == [5, 22]
    assert pick_peaks(values, threshold=0.0, min_height=9.5).tolist() == [5]


def test_peaks_plateaus_ends_ties_and_flat_signals():
    assert pick_peaks(np.array([0, 3, 3, 3, 0.0]), threshold=0).tolist() == [1]  # a flat top counts once
    assert pick_peaks(np.array([0, 2, 2, 5, 0.0]), threshold=0).tolist() == [3]  # a shelf is not a peak
    assert pick_peaks(np.array([0, 1, 2, 2.0]), threshold=0).tolist() == [2]  # a flat top at the end
    assert pick_peaks(np.array([5, 0, 0.0]), threshold=0).tolist() == [0]
    assert pick_peaks(np.array([0, 0, 5.0]), threshold=0).tolist() == [2]
    ties = np.zeros(30)
    ties[[10, 12]] = 4
    assert pick_peaks(ties, threshold=0.1, min_distance=5).tolist() == [10]  # the earlier of equals
    assert pick_peaks(np.full(20, 3.0)).tolist() == []
    assert pick_peaks(np.zeros(1)).tolist() == []


def test_running_median_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    values = rng.normal(size=200)
    padded = np.pad(values, 3, mode="edge")
    direct = np.array([np.median(padded[i : i + 7]) for i in range(200)])
    np.testing.assert_allclose(running_median(values, 7, chunk=16), direct)
    np.testing.assert_allclose(running_median(values, 6), direct)  # even windows are made odd


def test_detrending_removes_a_ramp_but_keeps_spikes():
    values = 0.5 * np.arange(300) + np.sin(np.arange(300) / 7)  # a trend bigger than the spikes
    values[[60, 150, 240]] += 20
    detrended = values - running_median(values, 25)
    assert pick_peaks(detrended, threshold=0.1, min_height=3, min_distance=12).tolist() == [60, 150, 240]


# -- select_keyframes ------------------------------------------------------------------------


@pytest.mark.parametrize("n, k", [(300, 12), (12, 12), (100, 7), (1000, 1), (13, 12)])
def test_no_change_gives_evenly_spaced_frames(n, k):
    expected = [round(j * n / k) for j in range(k)]  # the starts of k equal parts (no .5 ties here)
    assert select_keyframes(np.array([], dtype=int), n, k).tolist() == expected
    assert select_keyframes(np.array([0]), n, k).tolist() == expected


def test_enough_candidates_are_thinned_uniformly():
    candidates = np.arange(0, 100, 10)  # 10 candidates
    assert select_keyframes(candidates, 100, 4).tolist() == [0, 30, 60, 90]
    assert select_keyframes(candidates, 100, 10).tolist() == candidates.tolist()


def test_few_candidates_are_kept_and_shots_cut_into_equal_parts():
    assert select_keyframes(np.array([50]), 100, 4).tolist() == [0, 25, 50, 75]
    assert select_keyframes(np.array([0, 40]), 100, 5).tolist() == [0, 20, 40, 60, 80]  # 40 and 60 frames
    chosen = select_keyframes(np.array([0, 10]), 1000, 12)
    assert chosen[:2].tolist() == [0, 10]  # the short first shot gets no extra frame
    gaps = np.diff(chosen[1:])  # the 10 fillers cut the long shot into equal parts
    assert gaps.max() - gaps.min() <= 1 and chosen[-1] + gaps.mean() == pytest.approx(1000, abs=1)
    # exactly K, distinct and sorted whatever the candidates
    rng = np.random.default_rng(1)
    for _ in range(50):
        n, k = int(rng.integers(12, 400)), int(rng.integers(1, 13))
        candidates = np.unique(rng.integers(0, n, int(rng.integers(0, 15))))
        chosen = select_keyframes(candidates, n, k)
        assert len(chosen) == k and (np.diff(chosen) > 0).all() and 0 <= chosen[0] and chosen[-1] < n
        if len(candidates) < k:
            assert set(candidates.tolist()) | {0} <= set(chosen.tolist())


def test_short_videos_repeat_frames_and_clips_are_offset():
    assert select_keyframes(np.array([0]), 5, 12).tolist() == np.rint(np.linspace(0, 4, 12)).astype(int).tolist()
    assert select_keyframes(np.array([120]), 50, 4, first=100).tolist() == [100, 110, 120, 135]


# -- on video --------------------------------------------------------------------------------


def test_keyframes_are_the_shot_starts(cut_video):
    keyframes = extract_keyframes(cut_video, KeyframeConfig(num_keyframes=6, frame_size=None))
    assert keyframes.indices.tolist() == SHOT_STARTS
    assert keyframes.changes == CUTS
    np.testing.assert_allclose(keyframes.times, np.asarray(SHOT_STARTS) / 25, atol=1e-6)
    with VideoReader(cut_video) as video:
        np.testing.assert_array_equal(keyframes.frames, video.read(SHOT_STARTS))
    for frame, index in zip(keyframes.frames, keyframes.indices):  # each shows its shot's colour
        assert int(np.argmax(frame.reshape(-1, 3).mean(0) - 60)) in np.flatnonzero(np.asarray(SHOT_COLOURS[shot_of(index)]) > 100)


def test_more_keyframes_than_shots_fill_in_and_fewer_thin_out(cut_video):
    many = extract_keyframes(cut_video, KeyframeConfig(num_keyframes=12, frame_size=32))
    assert len(many) == 12 and many.frames.shape[0] == 12 and many.frames.shape[1] == 32
    assert set(SHOT_STARTS) <= set(many.indices.tolist())
    assert (np.diff(many.indices) > 0).all()
    # six shots and six extra keyframes: one each, in the middle of the shot
    ends = [*CUTS, NUM_FRAMES]
    fillers = sorted(set(many.indices.tolist()) - set(SHOT_STARTS))
    assert [abs(f - (a + b) / 2) <= 0.5 for f, a, b in zip(fillers, SHOT_STARTS, ends)] == [True] * 6
    few = extract_keyframes(cut_video, KeyframeConfig(num_keyframes=3, frame_size=32))
    assert few.indices.tolist() == [0, 81, 215]  # rint(linspace(0, 5, 3)) of the six shot starts


def test_a_video_without_changes_gives_uniform_frames(still_video):
    keyframes = extract_keyframes(still_video, KeyframeConfig(frame_size=32))
    assert keyframes.changes == []
    assert keyframes.indices.tolist() == np.rint(np.arange(12) * 100 / 12).astype(int).tolist()


def test_step_and_clip(cut_video):
    stepped = extract_keyframes(cut_video, KeyframeConfig(num_keyframes=6, step=2, frame_size=32))
    assert stepped.changes == [c + c % 2 for c in CUTS]  # a change is seen at the next analysed frame
    clipped = extract_keyframes(cut_video, KeyframeConfig(num_keyframes=4, frame_size=32), clip=(2.0, 7.0))
    assert clipped.indices.tolist() == [50, 81, 130, 162]  # the clip's first frame, then its cuts


def test_the_video_is_streamed_once_and_only_keyframes_decoded(cut_video, monkeypatch):
    streams, reads = [], []
    stream, read = VideoReader.stream, VideoReader.read
    monkeypatch.setattr(VideoReader, "stream", lambda self, *a, **k: streams.append(a) or stream(self, *a, **k))
    monkeypatch.setattr(VideoReader, "read", lambda self, idx, *a, **k: reads.append(list(idx)) or read(self, idx, *a, **k))
    keyframes = extract_keyframes(cut_video, KeyframeConfig(num_keyframes=12, frame_size=32))
    assert len(streams) == 1 and reads == [keyframes.indices.tolist()]


def test_mixed_spans_are_the_shots(cut_video):
    shots = list(zip(SHOT_STARTS, [c - 1 for c in CUTS] + [NUM_FRAMES - 1]))
    # step=1: every frame analysed, so each cut is found at its exact frame
    centre = extract_keyframes(cut_video, KeyframeConfig(method="mixed", num_keyframes=6, step=1, frame_size=None))
    assert centre.spans == shots
    assert centre.indices.tolist() == [(a + b) // 2 for a, b in shots]
    with VideoReader(cut_video) as video:
        np.testing.assert_array_equal(centre.frames, video.read(centre.indices))
    composite = extract_keyframes(cut_video, KeyframeConfig(method="mixed", mixed_frame="composite", num_keyframes=6,
                                                            step=1, frame_size=None))
    assert composite.spans == shots and composite.frames.shape == centre.frames.shape
    assert not np.array_equal(composite.frames, centre.frames)  # a long exposure of the drifting stripes
    clipped = extract_keyframes(cut_video, KeyframeConfig(method="mixed", num_keyframes=4, step=1, frame_size=32),
                                clip=(2.0, 7.0))
    assert clipped.spans == [(50, 80), (81, 129), (130, 161), (162, 174)]  # frames 50-174, split at the cuts


def test_bad_videos_and_options(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoError, match="not a readable video"):
        extract_keyframes(text)
    with pytest.raises(VideoError, match="no such file"):
        extract_keyframes(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="method"):
        KeyframeConfig(method="peaks")
    with pytest.raises(ValueError, match="num_keyframes"):
        KeyframeConfig(num_keyframes=0)


def test_mixed_default_step_finds_each_cut_within_one_analysed_frame(cut_video):
    # 25 fps: MixedConfig analyses every 2nd frame, so a cut is seen at the next analysed frame
    keyframes = extract_keyframes(cut_video, KeyframeConfig(method="mixed", num_keyframes=6, frame_size=32))
    assert keyframes.changes == [c + c % 2 for c in CUTS]
    assert [a for a, _ in keyframes.spans] == [0, *(c + c % 2 for c in CUTS)]
