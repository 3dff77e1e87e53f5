"""MixedFrame properties, each against an independent statement of what it should do."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mixma import VideoReader, sample_frames
from mixma.video.compose import EmaCompositor, MeanCompositor, StrobeCompositor
from mixma.video.mixed import THUMBNAIL, MixedConfig, _Segmenter
from mixma.video.writer import write_video

H, W = 96, 160


def texture(seed: int, brightness: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blurred = cv2.GaussianBlur(rng.uniform(0, 1, (H, W, 3)).astype(np.float32), (0, 0), 4)
    base = 40 + 160 * (blurred - blurred.min()) / (blurred.max() - blurred.min())  # blobs over 40..200
    return np.clip(base + brightness, 0, 255).astype(np.uint8)


def drifting(image: np.ndarray, i: int) -> np.ndarray:
    """Slow horizontal drift: one pixel every four frames."""
    return np.roll(image, i // 4, axis=1)


def shots_video(path, shots: list[tuple[int, float, int]], fps: float = 25) -> list[int]:
    """Shots of (texture seed, brightness offset, length); returns the first frame of each shot."""
    frames, starts = [], []
    for seed, brightness, length in shots:
        starts.append(len(frames))
        image = texture(seed, brightness)
        frames += [drifting(image, i) for i in range(length)]
    write_video(path, frames, fps=fps, crf=12)
    return starts


def moving_square_video(path, length: int = 60, colour=(230, 20, 20)) -> list[int]:
    """A 16x16 square crossing a static background; returns its x position in each frame."""
    background = texture(7)
    xs = [int(8 + i * (W - 32) / (length - 1)) for i in range(length)]
    frames = []
    for x in xs:
        frame = background.copy()
        frame[40:56, x : x + 16] = colour
        frames.append(frame)
    write_video(path, frames, fps=25, crf=10)
    return xs


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


@pytest.mark.parametrize("compositor", [MeanCompositor(), EmaCompositor(0.3), StrobeCompositor(keep=4)])
def test_merged_states_equal_one_pass(compositor):
    """Regrouping segments must give what one pass over the joined frames gives."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (8, 10, 3), dtype=np.uint8) for _ in range(9)]

    def run(chunk):
        state = compositor.start(chunk[0])
        for f in chunk[1:]:
            compositor.add(state, f)
        return state

    whole = compositor.render(run(frames))
    merged = compositor.render(compositor.merge(compositor.merge(run(frames[:2]), run(frames[2:7])), run(frames[7:])))
    if isinstance(compositor, StrobeCompositor):
        # strobe keeps a thinned set of frames, so compare what it must always hold
        assert merged.shape == whole.shape and np.array_equal(compositor.merge(run(frames[:2]), run(frames[2:])).last, frames[-1])
    else:
        assert np.abs(merged.astype(int) - whole.astype(int)).max() <= 1


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


def test_a_merge_past_max_action_loses_to_any_merge_within_it():
    """Atoms of 0.28, 0.28, 0.08 and 0.08 s; the first two are the most alike, but together they
    would last 0.56 s > 0.5 s, so the merge that stays within the limit wins."""
    config = MixedConfig(max_action_sec=0.5)
    times = np.arange(18) / 25
    segmenter = _Segmenter(config, num_outputs=3, times=times, frame_duration=0.04)
    image = np.zeros((2, 2, 3), np.uint8)
    # atoms: frames 0-6, 7-13, 14-15, 16-17; steps of 1 or 5 levels: none is a sudden change
    levels = [100] * 7 + [101] * 7 + [106] * 2 + [111] * 2
    for i, level in enumerate(levels):
        thumb = np.full((THUMBNAIL, THUMBNAIL, 3), level, np.uint8)
        segmenter.add(i, thumb, image, atom_len=7)
    spans = [(s.first, s.last) for s in segmenter.finish()]
    assert (0, 13) not in spans
    assert len(spans) == 3 and max(b - a + 1 for a, b in spans) * 0.04 <= 0.5


def test_when_forced_outputs_exceed_max_action_and_still_tile(tmp_path):
    path = tmp_path / "static.mp4"
    shots_video(path, [(5, 0, 200)])  # 8 s at 25 fps, no cuts
    sample = sample_frames(path, 4, "mixed", max_action_sec=0.5)  # 4 x 0.5 s < 8 s: forced
    assert len(sample) == 4 and sample.spans[0][0] == 0 and sample.spans[-1][1] == 199
    assert all(sample.spans[i][1] + 1 == sample.spans[i + 1][0] for i in range(3))


def test_buffer_never_grows_with_video_length():
    """Streaming: at most 2T segments are held, however many frames go by."""
    config = MixedConfig()
    rng = np.random.default_rng(0)
    times = np.arange(20000) / 25
    segmenter = _Segmenter(config, num_outputs=8, times=times, frame_duration=0.04)
    image = np.zeros((4, 4, 3), np.uint8)
    largest = 0
    for i in range(20000):
        thumb = rng.integers(0, 256, (THUMBNAIL, THUMBNAIL, 3), dtype=np.uint8) if i % 97 == 0 else np.zeros((THUMBNAIL, THUMBNAIL, 3), np.uint8)
        segmenter.add(i, thumb, image, atom_len=50)
        largest = max(largest, len(segmenter.segments))
    assert largest <= 16
    assert len(segmenter.finish()) == 8


def test_real_clip_cuts_become_boundaries(bikes):
    """bikes.mp4 has shot cuts at frames 30, 76, 137, 187 and 242 (checked by eye)."""
    cuts = [30, 76, 137, 187, 242]
    every = sample_frames(bikes, 8, "mixed", size=64, step=1)
    assert set(cuts) <= {first for first, _ in every.spans}
    default = sample_frames(bikes, 12, "mixed", size=64)  # about 10 analysed frames per second
    step = default.options["step"]
    assert step == 2 and len(default) == 12 and len(default.changes) < 12  # so no change is merged across
    starts = [first for first, _ in default.spans]
    assert all(any(0 <= s - cut < step for s in starts) for cut in cuts)  # at the first analysed frame after each cut


def test_times_are_span_centres(tmp_path):
    path = tmp_path / "shots.mp4"
    shots_video(path, [(1, 0, 50), (2, 0, 50)])
    sample = sample_frames(path, 2, "mixed")
    assert sample.spans == [(0, 49), (50, 99)]
    np.testing.assert_allclose(sample.times, [49 / 2 / 25, (50 + 99) / 2 / 25])
