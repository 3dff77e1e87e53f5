"""`VideoInfo`: what a video holds, and the pure functions that derive its fields.

Everything here is established while `VideoReader` scans the file's packets (see
`mixma.video.reader`); the only frame it decodes for it is the first one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VFR_TOLERANCE = 0.1  # a frame duration this far (relative) from the median one makes a rate variable


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds (JSON-friendly: `dataclasses.asdict` gives plain numbers and strings)."""

    path: str
    num_frames: int  # frames a sequential decode returns (headers are not trusted)
    fps: float  # average over the actual frame timestamps
    duration: float  # seconds from the first frame's start to the last frame's end
    width: int  # as displayed, i.e. after `rotation`
    height: int
    codec: str
    header_frames: int  # the container's own claim; 0 when it makes none
    truncated: bool  # the file ends inside a frame, its packets stop early, or it is shorter than its header says
    rotation: int = 0  # clockwise degrees (0, 90, 180, 270) the picture is turned for display (display matrix)
    variable_frame_rate: bool = False  # frame durations differ by more than VFR_TOLERANCE
    keyframe_interval: float = 0.0  # mean frames from one keyframe (random access point) to the next
    max_keyframe_interval: int = 0  # the longest such run: what one random access may have to decode
    format: str = ""  # the container, e.g. "mp4", "mov", "matroska", "webm", "avi", "mpegts"
    pixel_format: str = ""  # of the decoded frames, e.g. "yuv420p"


def rotation_clockwise(counterclockwise: float) -> int:
    """FFmpeg's display-matrix angle (counterclockwise, as `VideoFrame.rotation`) as 0/90/180/270 clockwise."""
    return int(round(-float(counterclockwise) / 90.0)) % 4 * 90


def is_variable_rate(times: np.ndarray, tick: float) -> bool:
    """Whether frame durations vary: some differ from the median by more than VFR_TOLERANCE.

    Args:
        times: `float64 [N]` presentation times in seconds, ascending.
        tick: the time base in seconds. Where it is much finer than a frame, differences of a tick
            are rounding (29.97 fps in milliseconds steps by 33 and 34); where it is the frame
            duration itself (AVI), any difference is a dropped or repeated frame.
    """
    if len(times) < 3:
        return False
    durations = np.diff(times)
    median = float(np.median(durations))
    rounding = 1.5 * tick if tick < median / 2 else 0.0
    return bool(np.abs(durations - median).max() > max(VFR_TOLERANCE * median, rounding))


def keyframe_intervals(starts: np.ndarray, num_frames: int) -> tuple[float, int]:
    """Mean and longest run of frames from one random access point to the next.

    Args:
        starts: `int [K]` ascending frame indices where decoding can start (the first is 0).
        num_frames: frames in the video.
    """
    runs = np.diff(np.append(np.asarray(starts, dtype=np.int64), num_frames))
    runs = runs[runs > 0]
    if len(runs) == 0:
        return float(num_frames), num_frames
    return float(runs.mean()), int(runs.max())


def format_name(demuxer: str, path: str) -> str:
    """The container's name: FFmpeg's demuxer names several ("mov,mp4,m4a,...", "matroska,webm");
    the one the file's extension names is picked, else the first."""
    names = demuxer.split(",")
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    return extension if extension in names else names[0]


INFO_COLUMNS = ("video", "frames", "fps", "duration", "size", "codec", "rotation", "vfr", "truncated", "keyframes")


def info_rows(infos: Sequence[VideoInfo]) -> list[tuple[str, ...]]:
    """One row of strings per video for a table whose headers are `INFO_COLUMNS`.

    `keyframes` shows the mean and longest run of frames between keyframes ("25 / 30").
    """
    rows = []
    for info in infos:
        rows.append((
            os.path.basename(info.path),
            str(info.num_frames) + (f" (header {info.header_frames})" if info.header_frames not in (0, info.num_frames) else ""),
            f"{info.fps:.3f}".rstrip("0").rstrip("."),
            f"{info.duration:.2f} s",
            f"{info.width}x{info.height}",
            f"{info.codec} ({info.format}, {info.pixel_format})" if info.format else info.codec,
            f"{info.rotation}°",
            "yes" if info.variable_frame_rate else "no",
            "yes" if info.truncated else "no",
            f"{info.keyframe_interval:.3g} / {info.max_keyframe_interval}",
        ))
    return rows
