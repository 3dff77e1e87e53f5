"""Writing H.264 video with PyAV (used by the synthetic benchmark and by tests)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np

from mixma._atomic import atomic_path


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float | Fraction = 25,
    *,
    crf: int = 18,
    preset: str = "veryfast",
    gop: int | None = None,
    bframes: int | None = None,
    threads: int = 1,
) -> int:
    """Encode RGB `uint8 [H, W, 3]` frames as H.264 (yuv420p) in an MP4, atomically.

    Args:
        gop: keyframe interval in frames; None keeps x264's default (250, plus scene cuts).
        bframes: number of B-frames; None keeps the preset's default.
        threads: encoder threads. One thread makes the output bytes deterministic.

    Returns:
        The number of frames written.
    """
    rate = Fraction(fps).limit_denominator(1001)
    options = {"crf": str(crf), "preset": preset, "threads": str(threads)}
    if gop is not None:
        options.update(g=str(gop), keyint_min=str(gop), sc_threshold="0")
    if bframes is not None:
        options["bf"] = str(bframes)
    count = 0
    # faststart puts the index first, so a file cut short still opens (and streams) up to the cut
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = None
        for image in frames:
            if stream is None:
                height, width = image.shape[:2]
                if width % 2 or height % 2:
                    raise ValueError(f"H.264 in yuv420p needs even dimensions, got {width}x{height}")
                stream = out.add_stream("libx264", rate=rate, options=options)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
            count += 1
        if stream is None:
            raise ValueError("no frames to write")
        for packet in stream.encode():
            out.mux(packet)
    return count
