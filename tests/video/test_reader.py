"""VideoReader: indices checked by content, real clips, odd containers, bad files."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest

from mixma import VideoError, VideoReader, probe
from mixma.video.convert import output_size, to_rgb
from mixma.video.writer import write_video
from tests.conftest import frame_index, indexed_frame, write_vfr_video


def test_info_of_generated_video(indexed_video):
    info = probe(indexed_video)
    assert (info.num_frames, info.width, info.height, info.codec) == (300, 160, 96, "h264")
    assert info.fps == pytest.approx(25)
    assert info.duration == pytest.approx(12.0)
    assert not info.truncated


@pytest.mark.parametrize("order", ["random", "descending", "dense", "repeats"])
def test_read_returns_the_requested_frames(indexed_video, order):
    rng = np.random.default_rng(0)
    indices = {
        "random": rng.choice(300, size=40, replace=False),
        "descending": np.arange(299, -1, -37),
        "dense": np.arange(100, 160),
        "repeats": np.array([5, 5, 290, 0, 5, 299, 0]),
    }[order]
    with VideoReader(indexed_video) as video:
        frames = video.read(indices)
    assert frames.shape == (len(indices), 96, 160, 3)
    assert [frame_index(f) for f in frames] == list(indices)


def test_every_frame_once_in_order_matches_stream(indexed_video):
    with VideoReader(indexed_video) as video:
        read = video.read(range(300))
        streamed = np.stack([f.rgb() for f in video.stream()])
    assert [frame_index(f) for f in read] == list(range(300))
    np.testing.assert_array_equal(read, streamed)


def test_stream_with_step_and_start(indexed_video):
    with VideoReader(indexed_video) as video:
        got = [(f.index, frame_index(f.rgb()), f.time) for f in video.stream(step=7, start=13, stop=200)]
    expected = list(range(13, 200, 7))
    assert [g[0] for g in got] == expected
    assert [g[1] for g in got] == expected
    assert [g[2] for g in got] == pytest.approx([i / 25 for i in expected])


def test_read_after_stream_and_reuse(indexed_video):
    """Interleaving calls must not disturb the decoder's position bookkeeping."""
    with VideoReader(indexed_video) as video:
        first = next(iter(video.stream(start=250)))
        assert frame_index(first.rgb()) == 250
        assert [frame_index(f) for f in video.read([3, 280, 31])] == [3, 280, 31]
        assert [frame_index(f) for f in video.read([31, 3])] == [31, 3]


def test_output_size_is_applied(indexed_video):
    with VideoReader(indexed_video) as video:
        short = video.read([10, 20], size=48)
        exact = video.read([10], size=(30, 50))
    assert short.shape == (2, 48, 80, 3)
    assert exact.shape == (1, 30, 50, 3)
    assert [frame_index(f) for f in short] == [10, 20]


def test_output_size_rules():
    assert output_size(None, 640, 360) == (640, 360)
    assert output_size(224, 640, 360) == (398, 224)  # shorter side 224, even width
    assert output_size(224, 360, 640) == (224, 398)
    assert output_size((100, 50), 640, 360) == (50, 100)
    with pytest.raises(ValueError):
        output_size(0, 640, 360)


def test_fast_conversion_matches_pyav(bikes):
    """Our plane-wise conversion agrees with swscale at full size and when scaling."""
    with av.open(str(bikes)) as container:
        frame = next(container.decode(video=0))
        ours = to_rgb(frame, frame.width, frame.height).astype(int)
        theirs = frame.to_ndarray(format="rgb24").astype(int)
        assert np.abs(ours - theirs).mean() < 1.5  # rounding differences only
        small_ours = to_rgb(frame, 320, 136).astype(int)
        small_theirs = frame.to_ndarray(format="rgb24", width=320, height=136, interpolation="AREA").astype(int)
        assert np.abs(small_ours - small_theirs).mean() < 4


@pytest.mark.parametrize("clip", ["bikes", "bunny"])
def test_real_clip_random_access_equals_sequential_decode(clip, request):
    """On real H.264 (B-frames, several GOPs) every index gives exactly the sequential frame."""
    path = request.getfixturevalue(clip)
    with av.open(str(path)) as container:
        reference = [to_rgb(f, 160, 90) for f in container.decode(video=0)]
    with VideoReader(path) as video:
        assert video.num_frames == len(reference)
        rng = np.random.default_rng(1)
        indices = np.concatenate([rng.choice(len(reference), 25, replace=False), [len(reference) - 1, 0]])
        frames = video.read(indices, size=(90, 160))
    for i, f in zip(indices, frames):
        np.testing.assert_array_equal(f, reference[i], err_msg=f"frame {i}")


def test_variable_frame_rate(tmp_path):
    """Indices follow presentation order and times are the real timestamps, not index / fps."""
    times = [0.0, 0.04, 0.08, 0.5, 0.52, 1.4, 1.44, 1.48, 3.0, 3.1]
    path = tmp_path / "vfr.mp4"
    write_vfr_video(path, times)
    with VideoReader(path) as video:
        assert video.num_frames == len(times)
        np.testing.assert_allclose(video.times, times, atol=1e-3)
        assert [frame_index(f) for f in video.read([9, 3, 5, 0])] == [9, 3, 5, 0]
        assert video.fps == pytest.approx((len(times) - 1) / 3.1, rel=1e-3)


def test_matroska_without_frame_count_in_header(tmp_path):
    path = tmp_path / "clip.mkv"
    write_vfr_video(path, [i / 25 for i in range(60)], container="matroska")
    info = probe(path)
    assert info.header_frames == 0  # Matroska does not store a frame count
    assert info.num_frames == 60
    with VideoReader(path) as video:
        assert [frame_index(f) for f in video.read([59, 7, 30])] == [59, 7, 30]


def test_mpeg4_avi(tmp_path):
    path = tmp_path / "clip.avi"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"qscale": "2", "g": "12"}
        for i in range(50):
            for packet in stream.encode(av.VideoFrame.from_ndarray(indexed_frame(i), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with VideoReader(path) as video:
        assert video.num_frames == 50
        assert [frame_index(f) for f in video.read([49, 13, 14, 2])] == [49, 13, 14, 2]


# -- bad input ---------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        VideoReader(tmp_path / "nope.mp4")


def test_directory(tmp_path):
    with pytest.raises(VideoError, match="directory"):
        VideoReader(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty file"):
        VideoReader(tmp_path / "empty.mp4")


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(VideoError, match="not a readable video") as info:
        VideoReader(path)
    assert info.value.path == str(path)


def test_audio_only_file(tmp_path):
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for k in range(20):
            samples = np.sin(np.arange(1024) / 10 + k).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(VideoError, match="no video stream"):
        VideoReader(path)


def test_truncated_file_yields_frames_that_decode(tmp_path, indexed_video):
    data = indexed_video.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])  # the writer puts the index first (faststart)
    with VideoReader(path) as video:
        assert video.info.truncated
        n = video.num_frames
        assert 50 < n < 300
        streamed = [(f.index, frame_index(f.rgb())) for f in video.stream()]
        assert [s[0] for s in streamed] == list(range(n))  # indices count the frames that decode
        shown = [s[1] for s in streamed]
        assert shown == sorted(set(shown))  # in order, none twice
        # frames near the cut whose references were lost do not decode and are not counted, so
        # the last few indices may show later source frames
        assert shown[:-3] == list(range(n - 3))
        assert video.fps == pytest.approx(25, rel=0.02)
        assert [frame_index(f) for f in video.read([0, n - 1])] == [0, shown[-1]]  # read agrees with stream


def test_truncated_file_without_index(tmp_path):
    """MP4 written without faststart keeps its index at the end: cutting it loses everything."""
    path = tmp_path / "plain.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(40):
            for packet in stream.encode(av.VideoFrame.from_ndarray(indexed_frame(i), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(VideoError, match="not a readable video"):
        VideoReader(cut)


def test_corrupt_payload_still_decodes(tmp_path, indexed_video):
    data = bytearray(indexed_video.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(data) // 3, len(data), 300):
        data[pos] = rng.integers(256)
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    try:
        video = VideoReader(path)
    except VideoError:
        return  # the damage hit the container structure: a clean error is the right outcome
    with video:
        frames = list(video.stream())
        assert len(frames) > 0
        try:
            video.read([0, video.num_frames - 1])
        except VideoError as exc:
            assert str(path) in str(exc)


def test_copy_of_real_clip_has_same_count(tmp_path, bikes):
    copy = tmp_path / "copy of bikes.mp4"  # spaces in the name must not matter
    shutil.copy(bikes, copy)
    assert probe(copy).num_frames == 250


def test_write_video_rejects_odd_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", [np.zeros((15, 16, 3), np.uint8)])
    assert not (tmp_path / "odd.mp4").exists()


def test_skipping_unwanted_frames_changes_nothing(indexed_video):
    """Sparse reads and strided streams skip non-reference frames nobody asked for: the frames
    returned must equal those of a full decode."""
    with VideoReader(indexed_video) as video:
        every = video.read(range(300))
        sparse = video.read([7, 150, 151, 299])
        strided = [f.rgb() for f in video.stream(step=5)]
    np.testing.assert_array_equal(sparse, every[[7, 150, 151, 299]])
    np.testing.assert_array_equal(np.stack(strided), every[::5])
    with VideoReader(indexed_video, frame_threads=True) as threaded:
        np.testing.assert_array_equal(threaded.read([7, 150, 151, 299]), sparse)


# -- truncated and undecodable files of other containers -------------------------------------------


def decoded_indices(path) -> list[int]:
    """What a sequential decode of `path` shows, as the frames' own indices."""
    with av.open(str(path)) as container:
        return [frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


@pytest.mark.parametrize("kind", ["vp9.webm", "av1.mkv", "vfr.mkv", "mpeg2.ts", "h264.ts", "mpeg4_packed.avi"])
def test_truncated_file_of_other_containers(kind, footage_path, tmp_path):
    """Cut in the middle: `truncated` is set and the frames are those a sequential decode shows."""
    data = footage_path(kind).read_bytes()
    path = tmp_path / f"cut_{kind}"
    path.write_bytes(data[: len(data) // 2 + 101])  # not on a TS packet boundary
    expected = decoded_indices(path)
    with VideoReader(path) as video:
        assert video.info.truncated
        assert video.num_frames == len(expected) > 5
        assert [frame_index(f) for f in video.read(range(video.num_frames))] == expected
        assert [frame_index(f.rgb()) for f in video.stream(step=2)] == expected[::2]
    assert not probe(footage_path(kind)).truncated


def test_ts_recording_that_starts_mid_gop(footage_path, tmp_path):
    """A transport stream joined late starts with pictures whose references are missing; the
    frames are what a sequential decode shows from its first keyframe on."""
    data = footage_path("h264.ts").read_bytes()
    path = tmp_path / "late.ts"
    path.write_bytes(data[188 * (len(data) // 188 // 3) :])
    expected = decoded_indices(path)
    assert expected[0] > 0
    with VideoReader(path) as video:
        assert not video.info.truncated
        assert [frame_index(f) for f in video.read(range(video.num_frames))] == expected
        assert frame_index(video.read([0])[0]) == expected[0]


def test_no_frame_decodes(footage_path, tmp_path):
    """Every packet replaced by noise: a clear error on opening, not a failure on the first read."""
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.avi"
    with av.open(str(footage_path("mjpeg.avi"))) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.size == 0:
                continue
            noise = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
            noise.pts, noise.dts, noise.time_base, noise.stream = packet.pts, packet.dts, packet.time_base, stream
            noise.is_keyframe = True
            out.mux(noise)
    with pytest.raises(VideoError, match="no frame could be decoded") as error:
        VideoReader(path)
    assert error.value.path == str(path)


def test_frames_kept_alive_do_not_confuse_later_reads(indexed_video):
    """Decoded frames carry their index from packet to frame; holding on to earlier frames while
    the same frames are decoded again must not mix them up."""
    with VideoReader(indexed_video) as video:
        kept = list(video.stream(step=10))  # av.VideoFrames stay alive (and with them their labels)
        again = video.read([f.index for f in kept][::-1])
        assert [frame_index(f) for f in again] == [f.index for f in kept][::-1]
        assert [frame_index(f.rgb()) for f in kept] == [f.index for f in kept]


def test_prefetched_converts_in_either_thread_and_keeps_order():
    """`prefetched(..., convert)` yields `convert(item)` in order, whichever thread converted it:
    the background thread when the consumer is slow, the consumer when it waits for items."""
    import threading
    import time

    from mixma.video.reader import prefetched

    def convert(x):
        return x * x, threading.get_ident()

    for consumer_delay in (0.0, 0.005):  # a consumer that keeps up (it converts), and a slow one
        def items():
            for i in range(60):
                if not consumer_delay:
                    time.sleep(0.001)  # slow items: the consumer waits and converts them itself
                yield i

        got = []
        for value, thread in prefetched(items(), 8, convert):
            got.append((value, thread))
            time.sleep(consumer_delay)
        assert [v for v, _ in got] == [i * i for i in range(60)]
        here = sum(t == threading.get_ident() for _, t in got)
        assert (here > 30) if not consumer_delay else (here < 30)


def test_prefetched_reraises_conversion_errors():
    from mixma.video.reader import prefetched

    def convert(x):
        if x == 5:
            raise ValueError("bad item")
        return x

    seen = []
    with pytest.raises(ValueError, match="bad item"):
        for x in prefetched(iter(range(10)), 4, convert):
            seen.append(x)
    assert seen == list(range(5))
