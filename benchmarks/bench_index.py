"""Indexing speed of `build_index` (default model: concepts, MixedFrame moments) in x real time on
360p H.264, and its peak memory against the video's length.

Each measurement runs in a fresh subprocess (peak RSS = VmHWM): the video is indexed into a new
folder, after a warm-up on a 2-second clip that loads the networks, so the time is the per-video
cost a collection pays. Baseline measured in the same run on the same file: one decoding pass
that converts nothing (PyAV, slice threads): the least any reader of every frame pays.
Test videos: `benchmarks/_videos.py` (640x360, 30 fps, 250-frame GOPs, B-frames).

    .venv/bin/python benchmarks/bench_index.py --minutes 1 3 --fps 0.5 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _videos import long_video  # noqa: E402

CHILD = r"""
import json, sys, tempfile, time, resource
from pathlib import Path
import torch
torch.set_num_threads({threads})
from mixma.index import IndexOptions, build_index
from mixma.index.models import load_model
from mixma.video.reader import VideoReader
video, what = sys.argv[1], sys.argv[2]
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
if what == "decode":
    start = time.perf_counter()
    with VideoReader(video) as r:
        n = sum(1 for _ in r.stream(prefetch=8))
        duration = r.info.duration
    print(json.dumps({{"seconds": time.perf_counter() - start, "duration": duration, "peak_mb": peak()}}))
else:
    model = load_model("concepts")
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.mp4"
        from mixma.video.writer import write_video
        import numpy as np
        write_video(warm, [np.full((64, 64, 3), i * 4, np.uint8) for i in range(50)], fps=25)
        model.encode_video_moments(warm, IndexOptions(frame_rate={fps}))
        base = peak()
        start = time.perf_counter()
        summary = build_index([video], Path(tmp) / "idx", IndexOptions(frame_rate={fps}), progress=False, model=model)
        seconds = time.perf_counter() - start
    print(json.dumps({{"seconds": seconds, "duration": summary.video_seconds, "moments": summary.moments,
                      "peak_mb": peak(), "peak_before_mb": base}}))
"""


def measure(video: Path, what: str, threads: int, fps: float = 0.5) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(threads=threads, fps=fps), str(video), what],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 3])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fps", type=float, nargs="+", default=[0.5, 1.0], help="frames per second the model sees")
    args = parser.parse_args()
    print("| video | model fps | decode only | index (concepts, mixed) | x real time | vs decode | moments | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for minutes, fps in [(m, f) for m in args.minutes for f in args.fps]:
        video = long_video(minutes)
        decode = measure(video, "decode", args.threads)
        index = measure(video, "index", args.threads, fps)
        print(f"| {minutes:g} min 640x360 | {fps:g} | {decode['seconds']:.1f} s | {index['seconds']:.1f} s | "
              f"**{index['duration'] / index['seconds']:.1f}x** | {index['seconds'] / decode['seconds']:.2f}x | "
              f"{index['moments']} | {index['peak_mb']:.0f} MB (after loading: {index['peak_before_mb']:.0f} MB) |",
              flush=True)


if __name__ == "__main__":
    main()
