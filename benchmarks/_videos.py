"""Test videos for the benchmarks, generated once and cached in benchmarks/.cache/."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

CACHE = Path(__file__).parent / ".cache"


def long_video(minutes: float = 10, width: int = 640, height: int = 360, fps: int = 30, gop: int = 250) -> Path:
    """H.264 (libx264 veryfast, B-frames on) with `gop`-frame GOPs: a drifting texture, a bright
    block moving across it, and a cut to a new texture every 20 seconds."""
    path = CACHE / f"long_{width}x{height}_{minutes:g}min_{fps}fps_gop{gop}.mp4"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    textures = []
    for _ in range(4):
        noise = rng.integers(0, 256, (height // 8 + 1, (width + 2 * height) // 8 + 1, 3), dtype=np.uint8)
        textures.append(np.kron(noise, np.ones((8, 8, 1), np.uint8))[:height, : width + 2 * height])
    total = int(minutes * 60 * fps)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        for i in range(total):
            texture = textures[(i // (20 * fps)) % len(textures)]
            offset = (i * 2) % (2 * height)
            frame = texture[:, offset : offset + width].copy()
            x = (i * 5) % (width - 60)
            frame[150:210, x : x + 60] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)
    return path


if __name__ == "__main__":
    import time

    for minutes in (1, 10):
        start = time.perf_counter()
        print(long_video(minutes), f"{time.perf_counter() - start:.1f} s")
