"""Frame-exact video reading with PyAV.

How frames are counted and indexed
----------------------------------
Container headers are not trusted: their frame counts are often off by one or two, and the frame
rate of variable-rate files is only an average. On opening, the reader demuxes every packet of the
video stream, which reads the file but decodes nothing (milliseconds for minutes of video), and
builds a table of presentation timestamps. Frame ``i`` is the ``i``-th smallest timestamp:
indices follow presentation order and match what decoding the whole file from the start would
produce. Packets the container marks as discarded (before an edit list starts) are not frames, and
a damaged packet at the very end (a truncated file) is dropped. Decoded frames are identified by
their timestamp, never by counting, so seeking cannot shift indices. Streams without timestamps
are counted by decoding them once and read without seeking.

Random access seeks to the keyframe before a target and decodes forward. When the next target's
keyframe lies behind the decoder's position it decodes forward instead of seeking again, so dense
targets are read in one pass. On the way, frames that nobody asked for and no other frame
references (non-reference B-frames) are not decoded at all: their packets are known by timestamp
before decoding. The same holds for the frames a strided `stream` steps over.

Decoding uses FFmpeg's slice threading by default: frame threading did not speed up full decodes
on a 2-core machine and slows random access (each seek refills its pipeline, and it cannot skip
frames packet by packet). `frame_threads=True` turns it on for many-core machines.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from tqdm.auto import tqdm

from mixma.errors import VideoError
from mixma.video.convert import Size, output_size, to_rgb, to_thumbnail

av.logging.set_level(None)  # FFmpeg's own log lines would flood stderr on damaged files


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, established by scanning its packets (see the module docstring)."""

    path: str
    num_frames: int
    fps: float  # average over the actual frame timestamps
    duration: float  # seconds from the first frame's start to the last frame's end
    width: int
    height: int
    codec: str
    header_frames: int  # the container's own claim; 0 when it makes none
    truncated: bool  # the file ends inside a frame or its packets stop early


@dataclass
class DecodedFrame:
    """One decoded frame, converted on demand; valid until its iterator advances."""

    index: int
    time: float
    frame: av.VideoFrame

    def rgb(self, size: Size = None) -> np.ndarray:
        """`uint8 [H, W, 3]` RGB at `size`, scaled while converting."""
        return to_rgb(self.frame, *output_size(size, self.frame.width, self.frame.height))

    def thumbnail(self, size: Size) -> np.ndarray:
        """`uint8 [H, W, 3]` YCbCr on 0..255 at `size` (for comparing frames)."""
        return to_thumbnail(self.frame, *output_size(size, self.frame.width, self.frame.height))


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.rstrip(".").lower() if text else type(exc).__name__


class VideoReader:
    """Read frames of one video file by exact index, or stream them in order.

    Args:
        path: the video file.
        threads: decoder threads; 0 lets FFmpeg choose (one per core).
        frame_threads: use FFmpeg's frame threading (faster full decodes on many cores; frames
            nobody asked for are then decoded anyway).

    Raises:
        VideoError: the file is missing, not a video, has no video stream, or has no frames.

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
        try:
            self._container = av.open(self.path)
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoError(self.path, f"not a readable video ({_reason(exc)})") from None
        try:
            if not self._container.streams.video:
                raise VideoError(self.path, "no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO" if frame_threads else "SLICE"
            self._stream.thread_count = threads
            self._can_skip = not frame_threads  # frame threads cannot skip packet by packet
            self._scan()
        except BaseException:
            self._container.close()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _scan(self) -> None:
        """Build the presentation-timestamp table from packets (see the module docstring)."""
        stream = self._stream
        pts: list[int] = []
        keyframe_pts: list[int] = []
        truncated = False
        missing_pts = False
        last_corrupt = False
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    missing_pts = True
                    break
                pts.append(packet.pts)
                last_corrupt = packet.is_corrupt
                if packet.is_keyframe:
                    keyframe_pts.append(packet.pts)
        except av.error.FFmpegError:
            truncated = True  # the container breaks off: keep the packets read so far
        if last_corrupt:  # a packet cut short by the end of the file does not decode
            keyframe_pts = [p for p in keyframe_pts if p != pts[-1]]
            pts.pop()
            truncated = True

        self._time_base = stream.time_base or Fraction(1, 90000)
        if missing_pts:
            self._pts = None
            count = self._count_by_decoding()
        else:
            self._pts = np.unique(np.asarray(pts, dtype=np.int64))
            self._keyframes = np.searchsorted(self._pts, np.unique(np.asarray(keyframe_pts, dtype=np.int64)))
            if len(self._keyframes) == 0 or self._keyframes[0] != 0:
                self._keyframes = np.concatenate([[0], self._keyframes]).astype(np.int64)
            if truncated:
                self._drop_undecodable_tail()
            count = len(self._pts)
        if count == 0:
            raise VideoError(self.path, "no decodable frames")

        header_frames = int(stream.frames or 0)
        if self._pts is not None and count > 1:
            span = float((self._pts[-1] - self._pts[0]) * self._time_base)
            fps = (count - 1) / span if span > 0 else float(stream.average_rate or 25)
            self._times = (self._pts - self._pts[0]).astype(np.float64) * float(self._time_base)
        else:
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            self._times = np.arange(count, dtype=np.float64) / fps
        ctx = stream.codec_context
        self.info = VideoInfo(
            path=self.path,
            num_frames=count,
            fps=fps,
            duration=float(self._times[-1] + 1.0 / fps),
            width=ctx.width,
            height=ctx.height,
            codec=ctx.name,
            header_frames=header_frames,
            truncated=truncated,
        )

    def _drop_undecodable_tail(self) -> None:
        """After a cut, frames near the end may lack their references: keep only those that decode.

        Decodes from the last keyframe on (stepping back a GOP if nothing decodes there), so only
        damaged files pay for it.
        """
        while len(self._pts):
            key = int(self._keyframes[-1])
            decoded = {frame.pts for _, frame in self._frames_from(key)}
            tail = self._pts[key:]
            keep = np.isin(tail, np.fromiter(decoded, np.int64, len(decoded)))
            self._pts = np.concatenate([self._pts[:key], tail[keep]])
            if keep.any() or key == 0:
                return
            self._keyframes = self._keyframes[:-1]

    def _count_by_decoding(self) -> int:
        self._container.seek(0)
        return sum(1 for _ in self._decoded())

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

    # -- decoding ------------------------------------------------------------------------------

    def _decoded(self, wanted: set[int] | None = None) -> Iterator[av.VideoFrame]:
        """Frames from the current demuxer position; packets that fail to decode are skipped.

        With `wanted` (presentation timestamps), non-reference frames outside it are not decoded.
        """
        context = self._stream.codec_context
        skip = wanted is not None and self._can_skip
        context.skip_frame = "DEFAULT"
        for packet in self._container.demux(self._stream):
            if skip:
                context.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in wanted else "NONREF"
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            yield from frames

    def _frames_from(self, index: int, wanted: set[int] | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
        """(index, frame) pairs in order, starting at or before `index`'s keyframe."""
        if self._pts is None:  # no timestamps: decode from the start and count
            self._container.seek(0)
            yield from enumerate(self._decoded())
            return
        key = int(self._keyframes[np.searchsorted(self._keyframes, index, side="right") - 1])
        self._container.seek(int(self._pts[key]), stream=self._stream, backward=True, any_frame=False)
        for frame in self._decoded(wanted):
            i = int(np.searchsorted(self._pts, frame.pts)) if frame.pts is not None else -1
            if 0 <= i < len(self._pts) and self._pts[i] == frame.pts:
                yield i, frame

    def _keyframe_of(self, index: int) -> int:
        if self._pts is None:
            return 0
        return int(self._keyframes[np.searchsorted(self._keyframes, index, side="right") - 1])

    def decode_at(self, indices: Iterable[int]) -> Iterator[DecodedFrame]:
        """Decode the frames at `indices` (sorted, unique) and yield them in order."""
        indices = list(indices)
        wanted = None if self._pts is None else {int(self._pts[i]) for i in indices}
        frames: Iterator[tuple[int, av.VideoFrame]] | None = None
        position = -1  # index of the last frame the decoder produced
        for target in indices:
            if frames is None or target <= position or self._keyframe_of(target) > position:
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
            yield DecodedFrame(target, float(self._times[target]), frame)

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
        wanted = None if step == 1 or self._pts is None else set(self._pts[start:stop:step].tolist())

        def frames() -> Iterator[DecodedFrame]:
            for index, frame in self._frames_from(start, wanted):
                if index >= stop:
                    break
                if index >= start and (index - start) % step == 0:
                    yield DecodedFrame(index, float(self._times[index]), frame)

        yield from (_prefetched(frames(), prefetch) if prefetch > 0 else frames())

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


def _prefetched(items: Iterator, depth: int) -> Iterator:
    """`items`, produced by a background thread up to `depth` ahead; errors are re-raised here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stopping = threading.Event()

    def produce() -> None:
        try:
            for item in items:
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
            yield item
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
