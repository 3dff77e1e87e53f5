"""Compositors against plain statements of what they compute, on pictures with known content."""

from __future__ import annotations

import numpy as np
import pytest

from mixma.video.align import IDENTITY, translation
from mixma.video.compose import (
    EmaCompositor,
    MeanCompositor,
    Placement,
    StrobeCompositor,
    channel_max,
    median_image,
)
from tests.video.videos import panorama, texture


def run(compositor, frames, placements=None):
    placements = placements or [None] * len(frames)
    state = compositor.start(frames[0], placements[0])
    for frame, placement in zip(frames[1:], placements[1:]):
        compositor.add(state, frame, placement)
    return state


@pytest.mark.parametrize("compositor", [MeanCompositor(), EmaCompositor(0.3), StrobeCompositor(keep=4, align=False)])
def test_merged_states_equal_one_pass(compositor):
    """Regrouping segments must give what one pass over the joined frames gives."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (8, 10, 3), dtype=np.uint8) for _ in range(9)]
    whole = compositor.render(run(compositor, frames)).image
    merged = compositor.merge(compositor.merge(run(compositor, frames[:2]), run(compositor, frames[2:7])), run(compositor, frames[7:]))
    if isinstance(compositor, StrobeCompositor):
        # strobe keeps a thinned set of frames, so compare what it must always hold
        assert compositor.render(merged).image.shape == whole.shape
        assert compositor.merge(run(compositor, frames[:2]), run(compositor, frames[2:])).last[0] is frames[-1]
    else:
        assert np.abs(compositor.render(merged).image.astype(int) - whole.astype(int)).max() <= 1


@pytest.mark.parametrize("count", [1, 2, 3, 8, 9])
def test_median_image_is_numpys_median(count):
    rng = np.random.default_rng(count)
    frames = [rng.integers(0, 256, (7, 9, 3), dtype=np.uint8) for _ in range(count)]
    stack = np.sort(np.stack(frames), axis=0)
    np.testing.assert_array_equal(median_image(frames), stack[(count - 1) // 2])  # the lower middle for even counts
    if count % 2:
        np.testing.assert_array_equal(median_image(frames), np.median(np.stack(frames), axis=0).astype(np.uint8))
    np.testing.assert_array_equal(channel_max(frames[0]), frames[0].max(axis=2))


def pan_frames(length=9, speed=12, width=120, height=80):
    """A pan over a scene with a red square moving in it; the true placements and positions."""
    scene = panorama(3, width + speed * length + 40, height=height)
    frames, placements, world_xs = [], [], []
    for i in range(length):
        x0 = speed * i
        wx = 40 + 8 * i  # the square's x in the scene: it moves 20 px a frame in the picture
        frame = scene[:, x0 : x0 + width].copy()
        frame[30:44, wx - x0 : wx - x0 + 14] = (230, 30, 30)
        frames.append(frame)
        placements.append(Placement(i, 0, translation(x0, 0)))  # this frame's pixels -> the first frame's
        world_xs.append(wx)
    return scene, frames, placements, world_xs


def test_strobe_on_a_pan_pastes_the_object_over_a_clean_aligned_background():
    scene, frames, placements, world_xs = pan_frames()
    out = StrobeCompositor(instances=4, align=True).render(run(StrobeCompositor(instances=4, align=True), frames, placements))
    assert out.mode == "strobe" and out.aligned and out.fallback is None
    reference_x0 = 12 * (len(frames) // 2)  # the middle frame's view
    view = scene[:, reference_x0 : reference_x0 + 120].astype(int)
    image = out.image.astype(int)
    red = np.array([230, 30, 30])
    positions = [wx - reference_x0 for wx in world_xs if 0 <= wx - reference_x0 <= 120 - 14]
    shown = [x for x in positions if np.abs(image[32:42, x + 2 : x + 12] - red).mean() < 30]
    assert len(shown) >= 2  # several instances, sharp
    away = np.ones(image.shape[:2], bool)
    away[26:48] = False  # the square's rows
    assert np.abs(image - view)[away].mean() < 3  # the background is the scene, not a blur

    unaligned = StrobeCompositor(instances=4, align=False).render(run(StrobeCompositor(instances=4, align=False), frames))
    assert np.abs(unaligned.image.astype(int) - view)[away].mean() > 10


def test_strobe_falls_back_to_the_mean_where_the_motion_is_lost():
    _, frames, placements, _ = pan_frames()
    placements[5] = Placement(5, 1, IDENTITY, "lost")
    placements[6:] = [Placement(p.index, 1, p.to_chain) for p in placements[6:]]
    compositor = StrobeCompositor(keep=16)
    out = compositor.render(run(compositor, frames, placements))
    assert out.mode == "mean" and out.fallback == "the camera's motion is lost at frame 5"
    expected = np.rint(np.mean(np.stack(frames).astype(np.float64), axis=0))
    assert np.abs(out.image - expected).max() <= 1


def test_strobe_falls_back_when_most_of_the_picture_moves():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(6)]
    compositor = StrobeCompositor(align=False, max_foreground=0.4)
    out = compositor.render(run(compositor, frames))
    assert out.mode == "mean" and "of the picture moves" in out.fallback and out.pasted > 0.4


def test_where_instances_overlap_the_latest_is_shown_alone():
    """A big object that changes in place (a face talking): pieces of several moments would be a
    patchwork, so that region comes from the latest instance only."""
    background = texture(2, height=80, width=120)
    frames = []
    rng = np.random.default_rng(3)
    for _ in range(9):
        frame = background.copy()
        frame[20:60, 30:90] = rng.integers(0, 256, (40, 60, 3))  # always there, never the same
        frames.append(frame)
    compositor = StrobeCompositor(instances=4, keep=16, align=False, max_foreground=1.0)
    out = compositor.render(run(compositor, frames))
    assert out.mode == "strobe" and out.overlap > 0.5
    latest = frames[8]  # the last frame is always an instance
    np.testing.assert_array_equal(out.image[24:56, 34:86], latest[24:56, 34:86])
