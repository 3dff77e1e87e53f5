"""MixedFrame end to end: properties of the outputs, each against an independent statement."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mixma import VideoReader, sample_frames
from mixma.video.export import save_sample
from mixma.video.writer import write_video
from tests.video.videos import (
    H,
    W,
    flicker_video,
    moving_square_video,
    pan_object_video,
    shots_video,
    texture,
)


def fork_darkening_score(frame: np.ndarray, mixed: np.ndarray) -> float:
    """The MixMA-LMM fork's change measure: uint8 subtraction wraps around (its defect)."""
    return float(np.mean(frame - mixed))  # numpy uint8 arithmetic is modulo 256


def test_brightening_and_darkening_cuts_are_both_detected(tmp_path):
    path = tmp_path / "cuts.mp4"
    starts = shots_video(path, [(1, 0, 40), (1, 60, 40), (1, 0, 40)])  # 60 levels brighter, then darker
    sample = sample_frames(path, 6, "mixed")
    assert starts[1] in sample.changes and starts[2] in sample.changes
    assert len(sample.changes) == 2

    # the fork's measure at the same two cuts: it only reacts to the darkening one
    with VideoReader(path) as video:
        before_up, after_up, before_down, after_down = video.read([39, 40, 79, 80])
    assert fork_darkening_score(after_up, before_up) < 127.5  # brightening: missed
    assert fork_darkening_score(after_down, before_down) > 127.5  # darkening: caught


def test_never_blends_across_a_cut_when_there_are_fewer_cuts_than_outputs(tmp_path):
    path = tmp_path / "shots.mp4"
    starts = shots_video(path, [(1, 0, 50), (2, 0, 30), (3, 30, 70), (4, -20, 50)])
    bounds = starts + [200]
    for mode in ("mean", "ema", "strobe"):
        sample = sample_frames(path, 6, "mixed", mode=mode)
        assert sorted(sample.changes) == starts[1:]
        for first, last in sample.spans:
            shot = np.searchsorted(bounds, first, side="right") - 1
            assert last < bounds[shot + 1], f"{mode}: span {first}-{last} crosses a cut"


def test_more_cuts_than_outputs_still_gives_exactly_num_frames(tmp_path):
    path = tmp_path / "many.mp4"
    shots_video(path, [(s, (-1) ** s * 40, 12) for s in range(12)])
    sample = sample_frames(path, 4, "mixed")
    assert len(sample) == 4 and len(sample.changes) == 11
    assert sample.spans[0][0] == 0 and sample.spans[-1][1] == 143
    assert all(sample.spans[i][1] + 1 == sample.spans[i + 1][0] for i in range(3))  # spans tile the video


@pytest.mark.parametrize("step", [1, 3])
def test_mean_composite_is_the_arithmetic_mean_of_its_frames(tmp_path, step):
    path = tmp_path / "square.mp4"
    moving_square_video(path)
    sample = sample_frames(path, 3, "mixed", mode="mean", step=step, size=48)
    with VideoReader(path) as video:
        for (first, last), composite in zip(sample.spans, sample.frames):
            frames = video.read(range(first, last + 1, step), size=48).astype(np.float64)
            expected = np.rint(frames.mean(axis=0))
            assert np.abs(composite - expected).max() <= 1  # float32 accumulation vs float64


def test_ema_with_alpha_one_half_is_the_forks_repeated_add_weighted(tmp_path):
    path = tmp_path / "square.mp4"
    moving_square_video(path)
    sample = sample_frames(path, 2, "mixed", mode="ema", alpha=0.5, step=1)
    with VideoReader(path) as video:
        for (first, last), composite in zip(sample.spans, sample.frames):
            frames = video.read(range(first, last + 1))
            blend = frames[0].astype(np.float32)
            for f in frames[1:]:  # the fork's loop, kept in float to avoid its per-step rounding
                blend = cv2.addWeighted(blend, 0.5, f.astype(np.float32), 0.5, 0)
            assert np.abs(composite.astype(int) - np.rint(blend)).max() <= 1


def test_strobe_keeps_a_moving_object_sharp(tmp_path):
    path = tmp_path / "square.mp4"
    xs = moving_square_video(path, colour=(230, 20, 20))
    strobe = sample_frames(path, 1, "mixed", mode="strobe", instances=4, max_action_sec=10).frames[0].astype(int)
    mean = sample_frames(path, 1, "mixed", mode="mean", max_action_sec=10).frames[0].astype(int)
    red = np.array([230, 20, 20])

    def colour_error(image, x):  # at the square's centre, away from its edges
        return np.abs(image[44:52, x + 4 : x + 12] - red).mean()

    assert colour_error(strobe, xs[0]) < 25  # the earliest instance, as crisp as its frame
    assert colour_error(strobe, xs[-1]) < 25  # the latest, on top
    # several separate, square-wide copies along the path
    red_columns = (np.abs(strobe[44:52] - red).mean(axis=(0, 2)) < 40).astype(int)
    runs = np.diff(np.concatenate([[0], red_columns, [0]]))
    widths = np.flatnonzero(runs == -1) - np.flatnonzero(runs == 1)
    assert len(widths) >= 3 and all(10 <= w <= 20 for w in widths), widths
    assert colour_error(mean, xs[-1]) > 60  # the long exposure washes it out
    # away from the square's path the background is the clean median, not a ghost
    assert np.abs(strobe[70:90] - texture(7)[70:90].astype(int)).mean() < 6


@pytest.mark.parametrize("fps, step", [(10, 1), (50, 1), (50, 2)])
def test_max_action_is_in_seconds_whatever_the_frame_rate_and_step(tmp_path, fps, step):
    """With room for it (T x max_action >= duration, with slack), no output exceeds max_action."""
    path = tmp_path / f"static_{fps}.mp4"
    shots_video(path, [(5, 0, int(8 * fps))], fps=fps)  # 8 s, no cuts
    sample = sample_frames(path, 32, "mixed", max_action_sec=0.5, step=step)
    durations = [(last - first + 1) / fps for first, last in sample.spans]
    assert max(durations) <= 0.5 + 1e-9, durations


def test_when_forced_outputs_exceed_max_action_and_still_tile(tmp_path):
    path = tmp_path / "static.mp4"
    shots_video(path, [(5, 0, 200)])  # 8 s at 25 fps, no cuts
    sample = sample_frames(path, 4, "mixed", max_action_sec=0.5)  # 4 x 0.5 s < 8 s: forced
    assert len(sample) == 4 and sample.spans[0][0] == 0 and sample.spans[-1][1] == 199
    assert all(sample.spans[i][1] + 1 == sample.spans[i + 1][0] for i in range(3))


def test_real_clip_cuts_become_boundaries(bikes):
    """bikes.mp4 has shot cuts at frames 30, 76, 137, 187 and 242 (checked by eye)."""
    cuts = [30, 76, 137, 187, 242]
    every = sample_frames(bikes, 8, "mixed", size=64, step=1)
    assert set(cuts) <= {first for first, _ in every.spans}
    default = sample_frames(bikes, 12, "mixed", size=64)  # about 10 analysed frames per second
    step = default.options["step"]
    assert step == 2 and len(default) == 12
    starts = {first: output.starts_at for (first, _), output in zip(default.spans, default.outputs)}
    for cut in cuts:  # at the first analysed frame after each cut, and known as a cut
        (start,) = [s for s in starts if 0 <= s - cut < step]
        assert starts[start] == "cut"


def test_times_are_span_centres(tmp_path):
    path = tmp_path / "shots.mp4"
    shots_video(path, [(1, 0, 50), (2, 0, 50)])
    sample = sample_frames(path, 2, "mixed")
    assert sample.spans == [(0, 49), (50, 99)]
    np.testing.assert_allclose(sample.times, [49 / 2 / 25, (50 + 99) / 2 / 25])


def test_strobe_on_a_pan_aligns_and_pastes_the_moving_object(tmp_path):
    """The camera pans over a scene while a red square crosses the picture: with alignment the
    action shot's background is the scene itself and the square appears several times, sharp."""
    path = tmp_path / "pan.mp4"
    scene, offsets, xs = pan_object_video(path)
    sample = sample_frames(path, 1, "mixed", mode="strobe", max_action_sec=10)
    (output,) = sample.outputs
    assert output.mode == "strobe" and output.aligned and output.fallback is None
    image = sample.frames[0].astype(int)
    # which view is it? the scene offset that matches the picture best, away from the square's rows
    rows = np.r_[0:36, 58:H]
    errors = [np.abs(image[rows] - scene[rows, x0 : x0 + W].astype(int)).mean() for x0 in range(scene.shape[1] - W)]
    x0 = int(np.argmin(errors))
    assert errors[x0] < 4  # the background is the scene, sharp: no smear, no patchwork
    red = np.array([230, 30, 30])
    world = [x + o - x0 for x, o in zip(xs, offsets)]  # the square's true positions, seen from that view
    shown = [x for x in world if 0 <= x <= W - 14 and np.abs(image[42:52, x + 2 : x + 12] - red).mean() < 40]
    assert len({round(x / 14) for x in shown}) >= 2  # at two or more separate true positions

    without = sample_frames(path, 1, "mixed", mode="strobe", align=False, max_action_sec=10)
    assert without.outputs[0].mode == "mean"  # every pixel moves: no action shot without alignment
    assert not without.outputs[0].aligned


def test_outputs_say_what_they_did_and_frames_json_records_it(tmp_path):
    path = tmp_path / "shots.mp4"
    starts = shots_video(path, [(1, 0, 50), (2, 0, 50)])
    sample = sample_frames(path, 3, "mixed", mode="strobe")
    assert len(sample.outputs) == 3
    assert [o.starts_at for o in sample.outputs][0] == "start"
    assert {"cut"} <= {o.starts_at for o in sample.outputs} and sample.spans[1][0] == starts[1] or sample.spans[2][0] == starts[1]
    assert all(o.mode in ("strobe", "mean") and o.analysed >= 1 for o in sample.outputs)
    written = save_sample(sample, tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "frames.json").read_text())
    assert on_disk == written
    for entry, output in zip(on_disk["frames"], sample.outputs):
        assert entry["mode"] == output.mode and entry["aligned"] == output.aligned
        assert entry["starts_at"] == output.starts_at and entry["fallback"] == output.fallback
    uniform = save_sample(sample_frames(path, 3), tmp_path / "uniform")
    assert set(uniform["frames"][0]) == {"span", "time", "file"}  # other strategies: as before


def test_a_large_video_is_composed_at_the_working_size(tmp_path):
    """1080p in, no size asked: the segment states (and outputs) are at 720p, not 1080p."""
    path = tmp_path / "big.mp4"
    big = cv2.resize(texture(4), (1920, 1080))
    write_video(path, [np.roll(big, 8 * i, axis=1) for i in range(12)], fps=25, preset="ultrafast")
    sample = sample_frames(path, 2, "mixed", mode="strobe")
    assert sample.frames.shape[1:3] == (720, 1280)
    full = sample_frames(path, 2, "mixed", size_cap=None)
    assert full.frames.shape[1:3] == (1080, 1920)
    asked = sample_frames(path, 2, "mixed", size=(540, 960))
    assert asked.frames.shape[1:3] == (540, 960)


def test_a_flicker_burst_gets_one_output_not_several(tmp_path):
    path = tmp_path / "flicker.mp4"
    start, stop = flicker_video(path)  # 6 s, flicker over 0.5 s in the middle
    sample = sample_frames(path, 6, "mixed", step=1)
    inside = [a for a, _ in sample.spans if start < a < stop - 1]
    assert inside == []  # no output begins inside the burst
    lengths = [(b - a + 1) / 25 for a, b in sample.spans]
    assert max(lengths) <= 2.5  # and the rest of the budget covers the calm parts


def test_the_calm_stretch_of_a_street_scene_is_covered(vtest):
    """vtest.avi (80 s, static camera): before, 8 outputs left its last 32 s to one of them."""
    sample = sample_frames(vtest, 8, "mixed", size=96)
    lengths = [(b - a + 1) / sample.info.fps for a, b in sample.spans]
    bound = max(5.0, sample.info.duration / 8)
    assert max(lengths) <= 2 * bound, lengths


def test_options_are_validated_before_the_video_is_opened():
    from mixma.video.mixed_config import MixedConfig

    for bad in ({"mode": "auto"}, {"align": "yes"}, {"cut_fraction": 0}, {"burst_sec": -1}, {"size_cap": 1},
                {"max_foreground": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MixedConfig(**bad)
        with pytest.raises(ValueError):
            sample_frames("no-such-file.mp4", 4, "mixed", **bad)
