"""Sudden changes: the streaming detector against its whole-sequence statement, generated videos
with known cuts, PySceneDetect, and a real clip."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixma.video.changes import (
    BurstFilter,
    ChangeDetector,
    Decision,
    cell_scores,
    classify_bursts,
    detect_changes,
    detect_cuts,
    reference_decisions,
)
from mixma.video.mixed_config import MixedConfig
from tests.video import videos

HAS_SCENEDETECT = importlib.util.find_spec("scenedetect") is not None


def scenedetect_cuts(path) -> list[int]:
    from scenedetect import ContentDetector, detect

    return [scene[0].frame_num for scene in detect(str(path), ContentDetector())[1:]]


def thumb_stream(seed: int, n: int) -> list[np.ndarray]:
    """Random 32x32 thumbnails: shots that cut, flash, hold still, and a cell that is always busy."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (32, 32, 3)).astype(np.int16)
    thumbs = []
    for _ in range(n):
        event = rng.random()
        if event < 0.06:  # a cut to a new picture
            base = rng.integers(0, 256, (32, 32, 3)).astype(np.int16)
        frame = base + rng.integers(-3, 4, base.shape)
        if event > 0.96:  # a flash
            frame = frame + 70
        if rng.random() < 0.1:  # a brief local event in a random cell
            y, x = rng.integers(0, 4, 2) * 8
            frame[y : y + 8, x : x + 8] = rng.integers(0, 256, 3)
        frame[:8, :8] = rng.integers(0, 256, (8, 8, 3))  # a busy cell, like a clock
        thumbs.append(np.clip(frame, 0, 255).astype(np.uint8))
    return thumbs


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), ratio=st.sampled_from([2.0, 3.0]))
def test_streaming_decisions_equal_the_whole_sequence_rule(seed, n, ratio):
    config = MixedConfig(change_ratio=ratio)
    thumbs = thumb_stream(seed, n)
    scores = [None] + [cell_scores(a, b, config.grid) for a, b in zip(thumbs, thumbs[1:])]
    expected = reference_decisions(thumbs, scores, config)
    detector = ChangeDetector(config)
    released: list[Decision] = []
    for i, (thumb, score) in enumerate(zip(thumbs, scores)):
        released += detector.push(i, thumb, score)
        assert all(d.index <= i - detector.window for d in released[1:]) or i < detector.window  # released late
    released += detector.finish()
    assert [d.index for d in released] == list(range(n))
    assert [d.kind for d in released] == expected


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(st.sampled_from([None, None, None, "event", "cut"]), max_size=80),
       gaps=st.lists(st.sampled_from([0.04, 0.1, 0.3]), min_size=80, max_size=80))
def test_streaming_bursts_equal_the_whole_sequence_rule(kinds, gaps):
    times = np.cumsum([0.0] + gaps[: max(0, len(kinds) - 1)])
    expected = classify_bursts(times, kinds, burst_sec=0.25)
    stream = BurstFilter(times, burst_sec=0.25)
    out = []
    for i, kind in enumerate(kinds):
        out += stream.push(Decision(i, kind))
    out += stream.finish()
    assert out == list(enumerate(expected))
    for i, kind in enumerate(expected):  # the statement itself: an event inside changes on both sides
        if kind == "burst":
            changes = [j for j, k in enumerate(kinds) if k is not None]
            k = changes.index(i)
            assert 0 < k < len(changes) - 1 and kinds[i] == "event"
            assert times[i] - times[changes[k - 1]] <= 0.25 and times[changes[k + 1]] - times[i] <= 0.25


def test_a_pan_is_not_a_change_but_a_cut_during_it_is(tmp_path):
    path = tmp_path / "pans.mp4"
    cuts = videos.pan_cuts_video(path)
    for step in (1, 2):
        changes = detect_changes(path, step=step)
        assert changes.events == [] and changes.bursts == []
        assert len(changes.cuts) == len(cuts)
        assert all(0 <= found - cut < step for found, cut in zip(changes.cuts, cuts))  # the first analysed frame after


def test_a_busy_overlay_neither_hides_cuts_nor_makes_every_frame_a_change(tmp_path):
    """A clock that changes every frame and a scrolling ticker touch 8 of the 16 cells."""
    path = tmp_path / "overlay.mp4"
    cuts = videos.overlay_video(path)
    changes = detect_changes(path, step=1)
    assert changes.cuts == cuts
    assert len(changes.events) + len(changes.bursts) < 0.1 * 160

    # the old rule (the largest cell score against 3x the median of the last 8 frame scores) misses them
    with_old_rule = []
    from mixma import VideoReader

    with VideoReader(path) as video:
        thumbs = [cv2.resize(d.thumbnail((64, 64)), (32, 32), interpolation=cv2.INTER_AREA) for d in video.stream()]
    recent: list[float] = []
    for i in range(1, len(thumbs)):
        score = float(cell_scores(thumbs[i - 1], thumbs[i], 4).max())
        baseline = float(np.median(recent[-8:])) if len(recent) >= 3 else 12.0
        if score >= 12 and score >= 3 * baseline:
            with_old_rule.append(i)
        recent.append(score)
    assert not set(cuts) <= set(with_old_rule)


def test_the_first_frames_of_a_busy_video_are_judged_like_the_rest(tmp_path):
    """The camera pans from the first frame on: nothing before the first cut is a change."""
    path = tmp_path / "pans.mp4"
    cuts = videos.pan_cuts_video(path, speed=6)
    for step in (1, 2, 3):
        changes = detect_changes(path, step=step)
        assert min(changes.cuts + changes.events + changes.bursts) >= cuts[0]


def test_cuts_that_brighten_darken_or_only_change_colour(tmp_path):
    path = tmp_path / "levels.mp4"
    starts = videos.shots_video(path, [(1, 0, 40), (1, 60, 40), (1, 0, 40)])  # 60 levels brighter, then darker
    assert detect_cuts(path, step=1) == starts[1:]
    path = tmp_path / "hue.mp4"
    cuts = videos.hue_cut_video(path)
    assert detect_cuts(path, step=1) == cuts
    # the colour-only cut is invisible to luma alone: the thumbnails' luma barely differs
    from mixma import VideoReader

    with VideoReader(path) as video:
        before, after = video.read([cuts[0] - 1, cuts[0]])
    luma = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(int) for f in (before, after)]
    assert np.abs(luma[0] - luma[1]).mean() < 6


def test_a_flash_and_flicker_are_events_not_cuts(tmp_path):
    path = tmp_path / "flash.mp4"
    flash = videos.flash_video(path)
    changes = detect_changes(path, step=1)
    assert changes.cuts == [] and changes.events == [flash, flash + 1]
    path = tmp_path / "flicker.mp4"
    start, stop = videos.flicker_video(path)
    changes = detect_changes(path, step=1)
    assert changes.cuts == []
    assert all(start <= i <= stop for i in changes.events + changes.bursts)
    assert changes.events == [start, stop - 1]  # only the burst's edges stay events


@pytest.mark.skipif(not HAS_SCENEDETECT, reason="scenedetect is not installed (pip install --no-deps scenedetect)")
def test_recall_of_generated_cuts_is_at_least_pyscenedetects(tmp_path):
    found_ours = found_theirs = total = 0
    for name, make in [("overlay", videos.overlay_video), ("hue", videos.hue_cut_video), ("pans", videos.pan_cuts_video)]:
        path = tmp_path / f"{name}.mp4"
        cuts = make(path)
        ours, theirs = detect_cuts(path, step=1), scenedetect_cuts(path)
        total += len(cuts)
        found_ours += sum(any(abs(c - f) <= 2 for f in ours) for c in cuts)
        found_theirs += sum(any(abs(c - f) <= 2 for f in theirs) for c in cuts)
        assert len(ours) == len(cuts), name  # and no false cut
    assert found_ours == total >= found_theirs


def test_real_clip_cuts(bikes):
    """bikes.mp4 has shot cuts at frames 30, 76, 137, 187 and 242 (checked by eye, and what
    PySceneDetect's ContentDetector finds)."""
    assert detect_cuts(bikes, step=1) == [30, 76, 137, 187, 242]
    # every 2nd frame: each at the first analysed frame after it; and at frame 102 a white van
    # leaving the picture uncovers the street behind it in 10 of the 16 cells at once
    assert detect_cuts(bikes) == [30, 76, 102, 138, 188, 242]
