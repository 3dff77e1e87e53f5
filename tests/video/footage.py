"""Tiny test videos of every kind PyAV can write, each frame showing its own index.

`write(kind, path)` writes one; `KINDS` lists them. Each kind is what users have: MP4/MOV with
B-frames, an edit list, open GOPs or a rotation, HEVC, VP8/VP9 WebM, AV1 Matroska, MPEG-TS,
MPEG-PS, AVI with MPEG-4 Part 2 (B-frames, and DivX-style packed B-frames built by hand, also
unindexed with zero frame counts), MS-MPEG4, MJPEG, cinepak, H.264 with B-frames (AVI has no
presentation times), an AVI with dropped frames whose header counts more frames than it holds,
variable frame rate, and a raw H.264 stream without timestamps.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.conftest import indexed_frame

NUM_FRAMES = 48
WIDTH, HEIGHT = 144, 96  # 144 = 12 index bits x 12 px, so `frame_index` reads every bit
RATE = 25
EDIT_START = 5  # the edit list of "h264_editlist.mp4" starts at this frame
VFR_TIMES = [0.0, 0.04, 0.08, 0.5, 0.52, 0.56, 1.4, 1.44, 1.48, 1.52] + [1.6 + 0.1 * k for k in range(38)]
GAP_SLOTS = [0, 1, 2, 5, 6, 9, 10, 11, 15, 16, 17, 18, 25, 26, 27, 28, 29, 35, 36, 37]  # "dropped.avi"

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner to stdout unless told not to


def _first_encoder(*names: str) -> str | None:
    for name in names:
        try:
            av.Codec(name, "w")
            return name
        except (av.error.FFmpegError, ValueError):
            continue
    return None


def _encode(path, codec, *, fmt=None, options=None, pix_fmt="yuv420p", bframes=None, rotation=None,
            times=None, count=NUM_FRAMES, width=WIDTH, height=HEIGHT, container_options=None) -> None:
    """Encode frames `0..count-1` (or shown at `times` seconds); `rotation` sets the display matrix."""
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as out:
        # one thread: fast on a busy machine (threads fight over 2 cores) and deterministic
        stream = out.add_stream(codec, rate=RATE if times is None else 1000, options={"threads": "1", **(options or {})})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if bframes is not None:
            stream.codec_context.max_b_frames = bframes
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if times is not None:
            stream.time_base = Fraction(1, 1000)
        for i in range(len(times) if times is not None else count):
            frame = av.VideoFrame.from_ndarray(indexed_frame(i, height, width), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _editlist(path: Path) -> None:
    """H.264 MP4 whose edit list starts at frame EDIT_START, mid-GOP (the frames before are
    decoded as references but not shown), as a trimmed stream copy writes it."""
    plain = path.with_name("plain_" + path.name)
    _encode(plain, "libx264", options={"bf": "3", "g": "20"})
    shift = None
    with av.open(str(plain)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            shift = shift if shift is not None else round(EDIT_START / RATE / packet.time_base)
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = stream
            out.mux(packet)
    plain.unlink()


def _vop_kind(data: bytes) -> int:
    """vop_coding_type of the first VOP: 0 I, 1 P, 2 B."""
    return data[data.find(b"\x00\x00\x01\xb6") + 4] >> 6


def _nvop(increment_bits: int, like: bytes | None = None) -> bytes:
    """A not-coded VOP (a dropped-frame placeholder), byte-aligned: a P-VOP at time 0, or with the
    times of the VOP `like` (which it then replaces)."""
    if like is None:
        header = "01" + "0" + "1" + "0" * increment_bits + "1"  # type, modulo_time_base, marker, increment, marker
    else:
        start = like.find(b"\x00\x00\x01\xb6") + 4
        bits = "".join(f"{b:08b}" for b in like[start : start + 8])
        seconds = bits.index("0", 2) - 2  # modulo_time_base: a 1 per elapsed second, then a 0
        header = bits[: 2 + seconds + 1 + 1 + increment_bits + 1]
    bits = header + "0"  # vop_coded = 0
    bits += "0" + "1" * (-(len(bits) + 1) % 8)  # stuffing up to the next byte
    return b"\x00\x00\x01\xb6" + int(bits, 2).to_bytes(len(bits) // 8, "big")


def _packed_avi(path: Path) -> None:
    """MPEG-4 Part 2 with DivX-style packed B-frames, as DivX 5 and old Xvid wrote AVI.

    Video for Windows wants one frame out per chunk in, so each anchor (P) is stored in one chunk
    together with the first B-frame shown before it, the other B-frames follow one per chunk, and
    an N-VOP placeholder takes the anchor's own slot. The VOL's DivX user data ends in "p".
    """
    encoder = av.CodecContext.create("mpeg4", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, RATE), Fraction(RATE)
    encoder.max_b_frames, encoder.gop_size = 2, 12
    encoder.options = {"qscale": "2", "threads": "1"}
    coded = []
    for i in range(NUM_FRAMES + 1):
        frame = None if i == NUM_FRAMES else av.VideoFrame.from_ndarray(indexed_frame(i, HEIGHT, WIDTH), format="rgb24")
        if frame is not None:
            frame.pts = i
        coded += [bytes(p) for p in encoder.encode(frame)]
    vop = coded[0].find(b"\x00\x00\x01\xb6")
    coded[0] = coded[0][:vop] + b"\x00\x00\x01\xb2DivX503b1393p" + coded[0][vop:]
    chunks: list[tuple[bytes, bool]] = []
    k = 0
    while k < len(coded):
        anchor, k = coded[k], k + 1
        bframes = []
        while k < len(coded) and _vop_kind(coded[k]) == 2:
            bframes.append(coded[k])
            k += 1
        if not bframes:
            chunks.append((anchor, _vop_kind(anchor) == 0))
            continue
        chunks.append((anchor + bframes[0], _vop_kind(anchor) == 0))
        chunks += [(b, False) for b in bframes[1:]]
        chunks.append((_nvop((RATE - 1).bit_length()), False))
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for slot, (data, key) in enumerate(chunks):
            packet = av.Packet(data)
            packet.pts = packet.dts = slot
            packet.time_base, packet.stream, packet.is_keyframe = Fraction(1, RATE), stream, key
            out.mux(packet)


def _unindexed_avi(path: Path) -> None:
    """The packed AVI as a recording that was never finalised: no idx1 index, and headers that
    claim zero frames (FFmpeg then finds the chunks by scanning)."""
    _packed_avi(path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.find(b"avih") + 8 + 16, 0)  # dwTotalFrames
    struct.pack_into("<I", data, data.find(b"strh") + 8 + 32, 0)  # the stream's dwLength
    index = data.find(b"idx1")
    del data[index : index + 8 + struct.unpack_from("<I", data, index + 4)[0]]
    struct.pack_into("<I", data, 4, len(data) - 8)  # the RIFF size
    path.write_bytes(bytes(data))


def _dropped_avi(path: Path) -> None:
    """MJPEG AVI with dropped frames: AVI has no timestamps, so the muxer writes an empty chunk per
    missing slot and the header counts them (like opencv-doc's tree.avi: header 444, frames 68)."""
    times = [s / RATE for s in GAP_SLOTS]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=RATE, options={"threads": "1"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(indexed_frame(i, HEIGHT, WIDTH), format="rgb24")
            frame.pts, frame.time_base = round(t * RATE), Fraction(1, RATE)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


_AV1 = _first_encoder("libsvtav1", "libaom-av1", "librav1e")
_HEVC = _first_encoder("libx265")
_MPEG2 = {"g": "12", "qscale": "2"}

# kind -> (writer, encoder it needs or None)
KINDS: dict[str, tuple[Callable[[Path], None], str | None]] = {
    "h264_bframes.mp4": (lambda p: _encode(p, "libx264", options={"bf": "3", "g": "20"}), "libx264"),
    "h264_editlist.mp4": (_editlist, "libx264"),
    "h264_opengop.mp4": (lambda p: _encode(p, "libx264", options={"bf": "3", "g": "20", "x264-params": "open-gop=1"}), "libx264"),
    "hevc.mp4": (lambda p: _encode(p, _HEVC, options={"x265-params": "log-level=none:bframes=3:keyint=20"}), _HEVC),
    "h264.mov": (lambda p: _encode(p, "libx264", options={"bf": "2", "g": "16"}), "libx264"),
    "rot90.mp4": (lambda p: _encode(p, "libx264", options={"bf": "2"}, rotation=90), "libx264"),
    "rot180.mp4": (lambda p: _encode(p, "libx264", options={"bf": "2"}, rotation=180), "libx264"),
    "rot270.mp4": (lambda p: _encode(p, "libx264", options={"bf": "2"}, rotation=270), "libx264"),
    "vfr.mp4": (lambda p: _encode(p, "libx264", times=VFR_TIMES, options={"bf": "2"}), "libx264"),
    "vfr.mkv": (lambda p: _encode(p, "libx264", times=VFR_TIMES, fmt="matroska", options={"bf": "2"}), "libx264"),
    "vp8.webm": (lambda p: _encode(p, "libvpx", options={"g": "20", "deadline": "realtime", "cpu-used": "16"}), "libvpx"),
    "vp9.webm": (lambda p: _encode(p, "libvpx-vp9", options={"g": "20", "deadline": "realtime", "cpu-used": "8"}), "libvpx-vp9"),
    "av1.mkv": (lambda p: _encode(p, _AV1, options={"g": "20", "preset": "12"} if _AV1 == "libsvtav1" else {"g": "20"}), _AV1),
    "mpeg2.ts": (lambda p: _encode(p, "mpeg2video", options=_MPEG2, bframes=2), "mpeg2video"),
    "h264.ts": (lambda p: _encode(p, "libx264", fmt="mpegts", options={"bf": "3", "g": "20"}), "libx264"),
    "mpeg2.mpg": (lambda p: _encode(p, "mpeg2video", fmt="vob", options=_MPEG2, bframes=2), "mpeg2video"),
    "mpeg4_bframes.avi": (lambda p: _encode(p, "mpeg4", options={"g": "12", "qscale": "2"}, bframes=2), "mpeg4"),
    "mpeg4_packed.avi": (_packed_avi, "mpeg4"),
    "mpeg4_unindexed.avi": (_unindexed_avi, "mpeg4"),
    "msmpeg4v2.avi": (lambda p: _encode(p, "msmpeg4v2", options={"g": "12", "qscale": "2"}), "msmpeg4v2"),
    "msmpeg4v3.avi": (lambda p: _encode(p, "msmpeg4", options={"g": "12", "qscale": "2"}), "msmpeg4"),
    "mjpeg.avi": (lambda p: _encode(p, "mjpeg", pix_fmt="yuvj420p", options={"qscale": "3"}), "mjpeg"),
    "cinepak.avi": (lambda p: _encode(p, "cinepak", pix_fmt="rgb24", count=20, width=96, height=48), "cinepak"),
    "dropped.avi": (_dropped_avi, "mjpeg"),
    "h264_bframes.avi": (lambda p: _encode(p, "libx264", options={"bf": "3", "g": "20"}), "libx264"),
    "h264_raw.h264": (lambda p: _encode(p, "libx264", fmt="h264", options={"bf": "3", "g": "20"}), "libx264"),
}

ROTATIONS = {"rot90.mp4": 270, "rot180.mp4": 180, "rot270.mp4": 90}  # clockwise, as VideoInfo.rotation


def shown_indices(kind: str) -> list[int]:
    """The frame indices a sequential decode of `kind` shows, in order."""
    if kind == "h264_editlist.mp4":
        return list(range(EDIT_START, NUM_FRAMES))
    if kind == "cinepak.avi":
        return list(range(20))
    if kind == "dropped.avi":
        return list(range(len(GAP_SLOTS)))
    return list(range(NUM_FRAMES))


def missing_encoder(kind: str) -> str | None:
    """Why `kind` cannot be written here (None when it can)."""
    encoder = KINDS[kind][1]
    if encoder is None:
        return f"{kind}: no encoder for it in PyAV's FFmpeg"
    return None if _first_encoder(encoder) else f"{kind}: PyAV's FFmpeg lacks the {encoder} encoder"


def write(kind: str, path: Path) -> Path:
    """Write `kind` to `path` and return it."""
    KINDS[kind][0](path)
    return path


def unrotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Undo a clockwise `rotation` (to read a rotated frame's index)."""
    return np.rot90(image, k=rotation // 90)
