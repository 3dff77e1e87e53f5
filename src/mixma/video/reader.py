"""Frame-exact video reading with PyAV.

The contract
------------
Frame ``i`` is the ``i``-th frame that decoding the whole file from the start shows
(``av.open(path).decode(video=0)``); `read`, `decode_at` and `stream` return exactly those frames,
and `num_frames` is how many there are. Container headers are not trusted for this: their frame
counts are often off by one or two, or count placeholders (an AVI of dropped frames can claim six
times the frames it holds), and the frame rate of variable-rate files is only an average.

How frames are found
--------------------
On opening, the reader demuxes every packet of the video stream, which reads the file but decodes
nothing (milliseconds for minutes of video), and builds a *frame table*: the packets in decoding
order, and for each frame the packet that shows it. While decoding, each packet carries the index
of its frame to the decoder (FFmpeg's `copy_opaque`), so a decoded frame is identified by the
packet it came from, never by counting, and seeking cannot shift indices; a demuxed packet is
recognised by its timestamp and size. Which frame a packet shows depends on what the container
records:

- Containers with presentation timestamps (MP4/MOV, Matroska/WebM, MPEG-TS, FLV...): frame
  ``i`` is the packet with the ``i``-th smallest timestamp. Packets the container marks as
  discarded (before an edit list starts) are decoded but are not frames.
- AVI records only each chunk's slot in decoding order, and FFmpeg's guess of the display order
  is wrong for B-frames. Codecs that never reorder show frames in decoding order. MPEG-4 Part 2
  (DivX, Xvid) is unpacked with FFmpeg's ``mpeg4_unpack_bframes`` filter (DivX "packed" files put
  two pictures in one chunk, then an empty placeholder) and the display order follows from the
  picture types (`mixma.video._mpeg4`; a stream cut before its first I-VOP is counted from it).
  Other reordering codecs in AVI (H.264...), and streams whose timestamps are missing or repeat,
  learn the order by decoding the file once when opened. Packets are recognised by their slot.
- MPEG-PS (.mpg, .vob) stores the times of some pictures only, and FFmpeg's guesses for the others
  change after a seek; like streams without timestamps (raw .h264), it is decoded once on opening
  and read by decoding from the start (correct, but slow for long files).

In a truncated file (the container breaks off, its last packet is cut short, an MPEG-TS file is not
a whole number of TS packets, or a Matroska/MP4 header promises more), frames near the cut that do
not decode are not counted (only damaged files pay for that check). The first frame is decoded on
opening: it tells the display rotation, and frames that cannot be decoded at the start (a
recording that begins mid-GOP) are dropped the same way. Frames come out upright: the container's
display matrix (phone video) is applied, and `info.width`/`height` are the displayed size.

Random access
-------------
Random access seeks to the random access point (keyframe) before a target and decodes forward;
the first packet after a seek is checked against the table, so a seek that lands too late (MPEG-TS
seeks by decoding timestamp and lands after the keyframe) is retried earlier, and one that lands
early skips packets up to the keyframe without decoding them. When the next target's keyframe lies
behind the decoder's position it decodes forward instead of seeking again, so dense targets are
read in one pass. On the way, frames that nobody asked for and no other frame references
(non-reference B-frames) are not decoded at all. The same holds for the frames a strided `stream`
steps over.

Decoding uses FFmpeg's slice threading by default: frame threading did not speed up full decodes
on a 2-core machine and slows random access (each seek refills its pipeline, and it cannot skip
frames packet by packet). `frame_threads=True` turns it on for many-core machines.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.bitstream import BitStreamFilterContext
from tqdm.auto import tqdm

from mixma.errors import VideoError
from mixma.video import _mpeg4
from mixma.video.convert import Size, coded_size, output_size, rotate, to_rgb, to_thumbnail
from mixma.video.info import VideoInfo, format_name, is_variable_rate, keyframe_intervals, rotation_clockwise

__all__ = ["DecodedFrame", "VideoInfo", "VideoReader", "probe"]

av.logging.set_level(None)  # FFmpeg's own log lines would flood stderr on damaged files

_NO_TS = np.iinfo(np.int64).min  # a missing timestamp in the int64 tables
_TS_PACKET_SIZES = (188, 192, 204)  # plain, M2TS (Blu-ray) and FEC-padded MPEG-TS
_HEADER_DURATION_FORMATS = ("matroska", "mov")  # demuxers whose duration comes from the header
# Containers whose packet timestamps are FFmpeg's guesses: AVI stores only each chunk's slot
# (its dts), MPEG-PS only some pictures' times (and the guesses for the others change after a seek).
_NO_PTS_FORMATS = ("avi", "mpeg")
_NO_DTS_FORMATS = ("mpeg",)
_MPEG4_UNPACK = "mpeg4_unpack_bframes"
_MPEG4_HEAD = 512  # bytes of a packet that hold its VOL and VOP headers (else the whole packet is read)


@dataclass
class DecodedFrame:
    """One decoded frame, converted on demand; valid until its iterator advances."""

    index: int
    time: float
    frame: av.VideoFrame
    rotation: int = 0  # clockwise degrees applied on conversion, as `VideoInfo.rotation`

    def _coded_size(self, size: Size) -> tuple[int, int]:
        """The size to convert the decoded picture to, so that it is `size` once turned upright."""
        width, height = output_size(size, *coded_size(self.frame.width, self.frame.height, self.rotation))
        return coded_size(width, height, self.rotation)

    def rgb(self, size: Size = None) -> np.ndarray:
        """`uint8 [H, W, 3]` RGB at `size` (of the displayed picture), scaled while converting."""
        return rotate(to_rgb(self.frame, *self._coded_size(size)), self.rotation)

    def thumbnail(self, size: Size) -> np.ndarray:
        """`uint8 [H, W, 3]` YCbCr on 0..255 at `size` (for comparing frames)."""
        return rotate(to_thumbnail(self.frame, *self._coded_size(size)), self.rotation)


def _is_still_image(demuxer: str) -> bool:
    """FFmpeg's demuxers for single pictures (JPEG, PNG, BMP, TIFF, WebP, ...): one "frame" that
    is a photo, not a video (animated GIF is a video and stays readable)."""
    return demuxer in ("image2", "image2pipe") or demuxer.endswith("_pipe")


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.rstrip(".").lower() if text else type(exc).__name__


def _timestamps(values: list[int | None]) -> np.ndarray:
    return np.array([_NO_TS if v is None else v for v in values], dtype=np.int64)


def _vop_type(data: bytes, increment_bits: int | None) -> str | None:
    """`_mpeg4.vop_type`, or "?" when the header cannot be read."""
    if increment_bits is None:
        return "?"
    try:
        return _mpeg4.vop_type(data, increment_bits)
    except ValueError:
        return "?"


def _usable(stamps: np.ndarray, increasing: bool = False) -> bool:
    """Every packet has a timestamp, each a different one (and in order, if `increasing`)."""
    if len(stamps) == 0 or (stamps == _NO_TS).any():
        return False
    return bool((np.diff(stamps) > 0).all()) if increasing else len(np.unique(stamps)) == len(stamps)


@dataclass
class _Packets:
    """What the scan found: the video packets in decoding order (unpacked, if they needed it)."""

    pts: np.ndarray  # int64 [P], _NO_TS where missing
    dts: np.ndarray  # int64 [P]
    size: np.ndarray  # int64 [P]: checked after seeking, where timestamps alone could mislead
    keyframe: np.ndarray  # bool [P]: the container says decoding can start here
    discard: np.ndarray  # bool [P]: decoded, but not shown (before an edit list starts)
    types: list[str] | None  # MPEG-4 Part 2 in AVI: each packet's picture type (`_mpeg4.vop_type`)
    broken_off: bool  # the container ended with an error (a truncated file)
    corrupt_tail: bool  # the last packet is cut short


class _Table:
    """The frame table: packets in decoding order, and the packet that shows each frame.

    Attributes:
        identity: how a demuxed packet is recognised: by its "pts" or its "dts" (and its size),
            or (for streams without reliable timestamps) by "order", counting packets from the
            start of the file.
        packets: the scan's `_Packets`.
        keyframe: `bool [P]` packets where decoding can start.
        frame_packets: `int64 [N]` the packet (position in decoding order) that shows frame `i`.
        stamps: `int64 [N]` frame `i`'s presentation time in the stream's time base, ascending;
            None when the stream has none.
        learned: the table comes from decoding the file, so it needs no checking by decoding.
    """

    def __init__(self, identity, packets, frame_packets, stamps, *, keyframe=None, learned=False):
        self.identity, self.packets, self.learned = identity, packets, learned
        self.pts, self.dts = packets.pts, packets.dts
        self.keyframe = packets.keyframe if keyframe is None else keyframe
        self.frame_packets = np.asarray(frame_packets, dtype=np.int64)
        self.stamps = None if stamps is None else np.asarray(stamps, dtype=np.int64)
        self._derive()

    def __len__(self) -> int:
        return len(self.frame_packets)

    def _derive(self) -> None:
        self.frame_of = np.full(len(self.pts), -1, dtype=np.int64)  # [P]: frame shown, or -1
        self.frame_of[self.frame_packets] = np.arange(len(self.frame_packets))
        keys = self.dts if self.identity == "dts" else self.pts
        self._order = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[self._order]
        self._derive_seek_points()

    def _derive_seek_points(self) -> None:
        """Seek points: keyframe packets, each with the first frame decoding from it reaches.

        Without timestamps to seek by ("order"), the only seek point is the file's start; the
        keyframes are still described (`key_starts`).
        """
        self.key_packets, self.key_starts = self._keyframe_starts()
        if self.identity == "order":
            self.seek_packets, self.seek_starts = np.zeros(1, np.int64), np.zeros(1, np.int64)
        else:
            self.seek_packets, self.seek_starts = self.key_packets, self.key_starts

    def _keyframe_starts(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.flatnonzero(self.keyframe)
        big = np.iinfo(np.int64).max
        shown = np.where(self.frame_of >= 0, self.frame_of, big)
        starts = np.empty(0, np.int64)
        if len(keys):
            # a keyframe that shows no frame (before an edit list starts) starts at its GOP's first frame
            gop_first = np.minimum.reduceat(shown, keys)
            starts = np.where(self.frame_of[keys] >= 0, self.frame_of[keys], gop_first)
            before = np.concatenate([[-1], np.maximum.accumulate(starts)[:-1]])
            keep = (starts > before) & (starts < big)  # each must add frames after the previous one
            keys, starts = keys[keep], starts[keep]
        if len(starts) == 0 or starts[0] != 0:  # frames before the first keyframe: from the file's start
            keys, starts = np.concatenate([[0], keys]), np.concatenate([[0], starts])
        return keys.astype(np.int64), starts.astype(np.int64)

    def position(self, packet: av.Packet, guess: int = -1) -> int:
        """The packet's position in decoding order, or -1 if it is not in the table.

        `guess` (the position after the previous packet's) is checked first: packets come in order.
        """
        key = packet.dts if self.identity == "dts" else packet.pts
        if key is None:
            return -1
        keys = self.dts if self.identity == "dts" else self.pts
        if 0 <= guess < len(keys) and keys[guess] == key and self.packets.size[guess] == packet.size:
            return guess
        i = int(np.searchsorted(self._sorted_keys, key))
        if i == len(self._sorted_keys) or self._sorted_keys[i] != key:
            return -1
        position = int(self._order[i])
        return position if self.packets.size[position] == packet.size else -1

    def seek_point(self, index: int) -> int:
        """The last seek point whose frames start at or before frame `index`."""
        return int(np.searchsorted(self.seek_starts, index, side="right")) - 1

    def drop(self, frames: Iterable[int]) -> None:
        """Remove frames (that turned out not to decode); later frames move down."""
        keep = np.ones(len(self.frame_packets), bool)
        keep[np.fromiter(frames, np.int64)] = False
        self.frame_packets = self.frame_packets[keep]
        self.stamps = None if self.stamps is None else self.stamps[keep]
        self._derive()


class VideoReader:
    """Read frames of one video file by exact index, or stream them in order.

    Args:
        path: the video file.
        threads: decoder threads; 0 lets FFmpeg choose (one per core).
        frame_threads: use FFmpeg's frame threading (faster full decodes on many cores; frames
            nobody asked for are then decoded anyway).

    Raises:
        VideoError: the file is missing, not a video, has no video stream, or no frame of it
            decodes.

    Example:
        >>> with VideoReader("clip.mp4") as video:  # doctest: +SKIP
        ...     frames = video.read([0, 10, 20], size=224)  # uint8 [3, 224, W, 3]
    """

    def __init__(self, path: str | os.PathLike, *, threads: int = 0, frame_threads: bool = False):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise VideoError(self.path, "no such file")
        if os.path.isdir(self.path):
            raise VideoError(self.path, "is a directory, not a video file")
        if os.path.getsize(self.path) == 0:
            raise VideoError(self.path, "empty file")
        self._threads, self._frame_threads = threads, frame_threads
        self._can_skip = not frame_threads  # frame threads cannot skip packet by packet
        self._container = self._open()
        try:
            self._stream = self._container.streams.video[0]
            ctx = self._stream.codec_context
            self._format = format_name(self._container.format.name, self.path)
            unpack = self._format == "avi" and ctx.name == "mpeg4"
            self._bsf = BitStreamFilterContext(_MPEG4_UNPACK, self._stream) if unpack else None
            self._time_base = self._stream.time_base or Fraction(1, 90000)
            self._build()
        except BaseException:
            self._container.close()
            raise

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(self.path)
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoError(self.path, f"not a readable video ({_reason(exc)})") from None
        if not container.streams.video:
            container.close()
            raise VideoError(self.path, "no video stream")
        if _is_still_image(container.format.name):
            container.close()
            raise VideoError(self.path, "an image, not a video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if self._frame_threads else "SLICE"
        stream.thread_count = self._threads
        stream.codec_context.copy_opaque = True  # frames carry their packet's opaque: the frame index
        return container

    # -- opening -------------------------------------------------------------------------------

    def _build(self) -> None:
        """Scan, build the frame table, check both ends by decoding, and describe the video."""
        scan = self._scan()
        self._table = self._make_table(scan)
        truncated = scan.corrupt_tail or scan.broken_off or self._cut_short_ts() or self._longer_header(self._table)
        if truncated and not self._table.learned:  # packets near the cut may not decode
            self._keep_decodable_tail()
        first = self._first_frame()
        self._describe(first, truncated)

    def _scan(self) -> _Packets:
        """Demux every packet (unpacked when needed); decodes nothing."""
        pts, dts, size, keyframe, discard = [], [], [], [], []
        types: list[str | None] | None = [] if self._bsf is not None else None
        increment_bits = None
        if types is not None and self._stream.codec_context.extradata:
            increment_bits = _mpeg4.time_increment_bits(self._stream.codec_context.extradata)
        self._broken_off = False
        packet = None
        for packet in self._demuxed():
            pts.append(packet.pts)
            dts.append(packet.dts)
            size.append(packet.size)
            keyframe.append(packet.is_keyframe)
            discard.append(packet.is_discard)
            if types is not None:
                head = bytes(memoryview(packet)[:_MPEG4_HEAD])
                if _mpeg4.VOP_START not in head:
                    head = bytes(packet)
                increment_bits = _mpeg4.time_increment_bits(head) or increment_bits
                types.append(_vop_type(head, increment_bits))
        corrupt_tail = packet is not None and packet.is_corrupt
        broken_off = self._broken_off  # the container breaks off: keep the packets read so far
        if types is not None and "?" in types:
            types = None  # a VOP header we do not understand: learn the order by decoding instead
        return _Packets(
            _timestamps(pts), _timestamps(dts), np.array(size, np.int64), np.array(keyframe, bool),
            np.array(discard, bool), types, broken_off, corrupt_tail,
        )

    def _make_table(self, scan: _Packets) -> _Table:
        """Which packet shows which frame (see the module docstring)."""
        pts, dts = scan.pts, scan.dts
        shown = np.flatnonzero(~scan.discard)  # packets that show a frame, if each shows one
        if self._format not in _NO_PTS_FORMATS and _usable(pts):
            frames = shown[np.argsort(pts[shown], kind="stable")]
            return _Table("pts", scan, frames, pts[frames])
        identity = "dts" if self._format not in _NO_DTS_FORMATS and _usable(dts, increasing=True) else "order"
        if self._format == "avi" and identity == "dts":
            if scan.types is not None:  # MPEG-4 Part 2: the order follows from the picture types
                frames = np.array(_mpeg4.display_order(scan.types), dtype=np.int64)
                keyframe = np.array([t == "I" for t in scan.types], bool)  # AVI key flags may lie
                return _Table(identity, scan, frames, np.sort(dts[frames]), keyframe=keyframe)
            if not self._stream.codec_context.has_b_frames:  # shown in decoding order
                return _Table(identity, scan, shown, dts[shown])
        return self._learn(identity, scan)

    def _learn(self, identity: str, scan: _Packets) -> _Table:
        """The frame table from one decode of the whole file: the packets in the order it shows them."""
        shown = [position for position, _ in self._decode(self._from_start(), None, None)]
        frames = np.array(shown, dtype=np.int64)
        stamps = None if identity == "order" else np.sort(scan.dts[frames])
        return _Table(identity, scan, frames, stamps, learned=True)

    def _cut_short_ts(self) -> bool:
        """An MPEG-TS file whose size is not a whole number of TS packets was cut."""
        if self._format != "mpegts":
            return False
        size = os.path.getsize(self.path)
        return all(size % n for n in _TS_PACKET_SIZES)

    def _longer_header(self, table: _Table) -> bool:
        """The header promises clearly more video than the packets hold (Matroska, MP4/MOV)."""
        demuxer = self._container.format.name
        if table.stamps is None or len(table) < 2 or not demuxer.startswith(_HEADER_DURATION_FORMATS):
            return False
        stream, container = self._stream, self._container
        declared = None
        if stream.duration:
            declared = float(((stream.start_time or 0) + stream.duration) * self._time_base)
        elif "DURATION" in stream.metadata:  # FFmpeg's Matroska muxer writes one per track
            hours, minutes, seconds = stream.metadata["DURATION"].split(":")
            declared = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        elif container.duration:
            declared = ((container.start_time or 0) + container.duration) / av.time_base
        if declared is None:
            return False
        last, first = (float(s * self._time_base) for s in table.stamps[[-1, 0]])
        ends = last + (last - first) / (len(table) - 1)
        return declared - ends > max(1.0, 0.05 * declared)

    def _keep_decodable_tail(self) -> None:
        """After a cut, frames near the end may lack their references: keep only those that decode.

        Decodes from the last seek point on (stepping back one if nothing decodes there).
        """
        while len(self._table) and self._keep_decodable(len(self._table.seek_starts) - 1) == 0:
            pass

    def _keep_decodable(self, point: int) -> int:
        """Decode the frames of seek point `point` and drop those that do not come out."""
        table = self._table
        lo = int(table.seek_starts[point])
        hi = int(table.seek_starts[point + 1]) if point + 1 < len(table.seek_starts) else len(table)
        decoded = set()
        for index, _ in self._frames_from(lo):
            if index >= hi:
                break
            decoded.add(index)
        table.drop(i for i in range(lo, hi) if i not in decoded)
        return len(decoded)

    def _first_frame(self) -> av.VideoFrame:
        """Decode frame 0; frames at the start that cannot be decoded are dropped first."""
        for _ in range(len(self._table.seek_starts) + 1):
            if not len(self._table):
                break
            for index, frame in self._frames_from(0, {0}):
                if index == 0:
                    return frame
                break
            self._keep_decodable(0)
        raise VideoError(self.path, "no frame could be decoded")

    def _describe(self, first: av.VideoFrame, truncated: bool) -> None:
        table, stream = self._table, self._stream
        count = len(table)
        if table.stamps is not None and count > 1:
            span = float((table.stamps[-1] - table.stamps[0]) * self._time_base)
            fps = (count - 1) / span if span > 0 else float(stream.average_rate or 25)
            self._times = (table.stamps - table.stamps[0]).astype(np.float64) * float(self._time_base)
        else:
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            self._times = np.arange(count, dtype=np.float64) / fps
        self._rotation = rotation_clockwise(first.rotation)
        width, height = coded_size(first.width, first.height, self._rotation)
        mean_run, max_run = keyframe_intervals(table.key_starts, count)
        self.info = VideoInfo(
            path=self.path,
            num_frames=count,
            fps=fps,
            duration=float(self._times[-1] + 1.0 / fps),
            width=width,
            height=height,
            codec=stream.codec_context.name,
            header_frames=int(stream.frames or 0),
            truncated=truncated,
            rotation=self._rotation,
            variable_frame_rate=is_variable_rate(self._times, float(self._time_base)),
            keyframe_interval=mean_run,
            max_keyframe_interval=max_run,
            format=self._format,
            pixel_format=first.format.name,
        )

    # -- properties ----------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return self.info.num_frames

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def times(self) -> np.ndarray:
        """`float64 [num_frames]`: each frame's presentation time in seconds, the first at 0."""
        return self._times

    def __len__(self) -> int:
        return self.info.num_frames

    # -- packets -------------------------------------------------------------------------------

    def _demuxed(self) -> Iterator[av.Packet]:
        """Packets from the demuxer's position on, unpacked when needed; decodes nothing.

        A container that breaks off (a truncated file) ends the packets and sets `_broken_off`.
        """
        bsf = self._bsf
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    break
                if bsf is None:
                    yield packet
                else:
                    yield from bsf.filter(packet)
        except av.error.FFmpegError:
            self._broken_off = True
        if bsf is not None:
            yield from self._bsf.filter(None)  # a B-frame still held back

    def _reposition(self, timestamp: int | None) -> None:
        """Seek the demuxer (None: reopen the file, the one start every format can return to)."""
        if self._bsf is not None:
            self._bsf.flush()
        if timestamp is None:
            self._container.close()
            self._container = self._open()
            self._stream = self._container.streams.video[0]
        else:
            self._container.seek(int(timestamp), stream=self._stream, backward=True, any_frame=False)

    def _from_start(self) -> Iterator[tuple[int, av.Packet]]:
        """(position, packet) from the first packet of the file, counted (reopens it now)."""
        self._reposition(None)
        return enumerate(self._demuxed())

    def _seek_timestamps(self, point: int) -> Iterator[int | None]:
        """Where to seek for seek point `point`, best first; then earlier points; then the start."""
        table = self._table
        for p in range(point, max(-1, point - 3), -1):
            packet = table.seek_packets[p]
            stamps = [table.dts[packet]] if table.identity == "dts" else [table.pts[packet], table.dts[packet]]
            yield from (int(s) for s in dict.fromkeys(stamps) if s != _NO_TS)
        yield None

    def _packets_from(self, point: int) -> Iterator[tuple[int, av.Packet]]:
        """(position, packet) in decoding order, starting exactly at seek point `point`'s packet.

        Seeks now (not lazily), so the decoder used afterwards is the one of the file's new
        position. Packets are recognised by the table; one it does not hold has position -1.

        Raises:
            VideoError: no seek reaches the packet (the file's timestamps are inconsistent).
        """
        table = self._table
        if table.identity == "order":
            return self._from_start()
        target = int(table.seek_packets[point])
        for timestamp in self._seek_timestamps(point):
            try:
                self._reposition(timestamp)
            except (av.error.FFmpegError, OSError):
                continue
            packets = self._positioned(self._demuxed())
            for position, packet in packets:
                if position < target:
                    continue  # landed early (or on a packet the table lacks): skip without decoding
                if position == target:
                    return itertools.chain([(position, packet)], packets)
                break  # landed after the target: seek earlier
        raise VideoError(self.path, f"cannot seek to frame {table.seek_starts[point]} (its timestamps are inconsistent)")

    def _positioned(self, packets: Iterator[av.Packet]) -> Iterator[tuple[int, av.Packet]]:
        """(position in the table or -1, packet)."""
        table, guess = self._table, -1
        for packet in packets:
            position = table.position(packet, guess)
            guess = position + 1 if position >= 0 else -1
            yield position, packet

    # -- decoding ------------------------------------------------------------------------------

    def _decode(
        self, packets: Iterator[tuple[int, av.Packet]], wanted: set[int] | None, labels: np.ndarray | None
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """(label, frame) in the order the decoder shows frames; damaged packets are skipped.

        Each packet is labelled with `labels[position]` (its frame index, or -1 for a packet that
        shows none), or with its position when `labels` is None (to learn the table); the decoder
        hands the label on to the frame. With `wanted` (labels), non-reference frames outside it
        are not decoded.
        """
        context = self._stream.codec_context
        skip = wanted is not None and self._can_skip
        context.skip_frame = "DEFAULT"
        for position, packet in packets:
            label = position if labels is None else (int(labels[position]) if position >= 0 else -1)
            if skip:
                context.skip_frame = "DEFAULT" if position < 0 or label in wanted else "NONREF"
            packet.opaque = (label,)  # a fresh object: PyAV files opaque values by identity
            try:
                frames = context.decode(packet)
            except av.error.InvalidDataError:
                continue
            yield from _labelled(frames)
        context.skip_frame = "DEFAULT"
        try:
            yield from _labelled(context.decode(None))  # the frames the decoder still holds
        except av.error.EOFError:
            pass

    def _frames_from(self, index: int, wanted: set[int] | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
        """(index, frame) pairs in ascending order, starting at or before `index`'s seek point.

        A frame the decoder shows after a later one (damaged data can garble the order) is left out.
        """
        table = self._table
        packets = self._packets_from(table.seek_point(index))
        last = -1
        for i, frame in self._decode(packets, wanted, table.frame_of):
            if i > last:
                last = i
                yield i, frame

    def decode_at(self, indices: Iterable[int]) -> Iterator[DecodedFrame]:
        """Decode the frames at `indices` (sorted, unique) and yield them in order."""
        indices = list(indices)
        wanted = set(indices)
        table = self._table
        frames: Iterator[tuple[int, av.VideoFrame]] | None = None
        position = -1  # index of the last frame the decoder produced
        for target in indices:
            if frames is None or target <= position or table.seek_starts[table.seek_point(target)] > position:
                frames = self._frames_from(target, wanted)  # a seek skips frames; decoding forward would not
            for index, frame in frames:
                position = index
                if index >= target:
                    break
            else:
                frames, index = None, -1
            if index != target:
                reason = "the file ends early" if index < target else "it is damaged"
                raise VideoError(self.path, f"frame {target} of {self.num_frames} could not be decoded ({reason})")
            yield DecodedFrame(target, float(self._times[target]), frame, self._rotation)

    def read(self, indices: Iterable[int], size: Size = None, *, progress: bool = False) -> np.ndarray:
        """Frames at `indices` (any order, repeats allowed) as `uint8 [K, H, W, 3]` RGB.

        Raises:
            IndexError: an index is outside `[0, num_frames)`.
            VideoError: a frame cannot be decoded.
        """
        wanted = np.asarray(list(indices), dtype=np.int64).reshape(-1)
        width, height = output_size(size, self.info.width, self.info.height)
        out = np.empty((len(wanted), height, width, 3), np.uint8)
        if len(wanted) == 0:
            return out
        bad = wanted[(wanted < 0) | (wanted >= self.num_frames)]
        if len(bad):
            raise IndexError(f"frame index {int(bad[0])} is out of range for {self.num_frames} frames")
        targets = np.unique(wanted)
        bar = tqdm(total=len(targets), desc=os.path.basename(self.path), unit="frame", disable=not progress, leave=False)
        with bar:
            for decoded in self.decode_at(targets.tolist()):
                out[wanted == decoded.index] = decoded.rgb((height, width))
                bar.update()
        return out

    def stream(self, step: int = 1, start: int = 0, stop: int | None = None, *, prefetch: int = 0) -> Iterator[DecodedFrame]:
        """Frames `start, start + step, ...` below `stop`, decoded in one forward pass.

        A damaged or truncated file yields the frames that decode and then ends.

        Args:
            prefetch: decode up to this many frames ahead in a background thread, so decoding
                overlaps whatever the caller does with each frame (FFmpeg and OpenCV release the
                GIL). Do not call other methods of this reader until the stream is exhausted or
                closed.
        """
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        if start >= stop:
            return
        wanted = None if step == 1 else set(range(start, stop, step))

        def frames() -> Iterator[DecodedFrame]:
            for index, frame in self._frames_from(start, wanted):
                if index >= stop:
                    break
                if index >= start and (index - start) % step == 0:
                    yield DecodedFrame(index, float(self._times[index]), frame, self._rotation)

        yield from (prefetched(frames(), prefetch) if prefetch > 0 else frames())

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"VideoReader({i.path!r}, {i.num_frames} frames, {i.width}x{i.height}, {i.fps:.3g} fps)"


def _labelled(frames: Iterable[av.VideoFrame]) -> Iterator[tuple[int, av.VideoFrame]]:
    for frame in frames:
        label = frame.opaque[0] if frame.opaque is not None else -1
        if label >= 0:
            yield label, frame


def prefetched(items: Iterator, depth: int, convert: Callable[[Any], Any] | None = None) -> Iterator:
    """`items`, produced by a background thread up to `depth` ahead; errors are re-raised here.

    With `convert`, yields `convert(item)` for each item, computed by whichever thread has time:
    the background thread converts an item while the consumer is behind (at least half of `depth`
    items wait), and otherwise hands it on as it is, for the consumer to convert, so neither side
    idles while the other has work. Which thread converts an item does not change the result.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stopping = threading.Event()
    half = max(1, depth // 2)

    def produce() -> None:
        try:
            for item in items:
                if convert is not None:
                    item = (True, convert(item)) if buffer.qsize() >= half else (False, item)
                while not stopping.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stopping.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # handed to the consumer
            buffer.put(exc)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            if convert is None:
                yield item
            else:
                converted, value = item
                yield value if converted else convert(value)
    finally:  # the consumer stopped early or failed: let the producer finish before the reader is used again
        stopping.set()
        while worker.is_alive():
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


def probe(path: str | os.PathLike) -> VideoInfo:
    """Scan a video and return its `VideoInfo` (raises `VideoError` on bad input)."""
    with VideoReader(path) as video:
        return video.info
