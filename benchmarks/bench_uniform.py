"""`uniform` sampling of 32 frames from a 10-minute 640x360 H.264 video (250-frame GOPs).

Baselines, on the same indices in the same run:
- decord `VideoReader.get_batch` (eva-decord, a benchmark-only dependency);
- naive per-frame seeking with PyAV (seek to each target's time, decode up to it);
- "decode everything, convert only the wanted frames" (the idiom of HF/vLLM `read_video_pyav`).

Run: .venv/bin/python benchmarks/bench_uniform.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import av
import numpy as np

from _videos import long_video
from mixma import VideoReader
from mixma.video.sampling import uniform_indices


def ours(path, indices):
    with VideoReader(path) as video:
        return video.read(indices)


def decord_batch(path, indices):
    import decord

    return decord.VideoReader(str(path), ctx=decord.cpu(0)).get_batch(list(indices)).asnumpy()


def naive_seek(path, indices):
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        for i in indices:
            target = int(round(i / fps / stream.time_base))
            container.seek(target, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts >= target:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    break
    return np.stack(frames)


def decode_all(path, indices):
    wanted, frames = set(int(i) for i in indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= max(wanted):
                break
    return np.stack([frames[int(i)] for i in indices])


def best_of(fn, repeats, *args):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = long_video(10)
    with VideoReader(path) as video:
        indices = uniform_indices(video.num_frames, 32)
        print(f"video: {path.name}, {video.num_frames} frames; 32 indices rint(linspace(0, n-1, 32))")
    t_ours, ref = best_of(ours, args.repeats, path, indices)
    rows = [("mixma VideoReader.read (ours)", t_ours, ref)]
    for name, fn in [
        ("decord get_batch", decord_batch),
        ("naive per-frame seek (PyAV)", naive_seek),
        ("decode all, convert wanted (PyAV)", decode_all),
    ]:
        t, frames = best_of(fn, args.repeats, path, indices)
        rows.append((name, t, frames))
    print(f"{'method':36s} {'best of ' + str(args.repeats):>10s}  {'vs ours':>8s}  frames match")
    for name, t, frames in rows:
        diff = np.abs(frames.astype(int) - ref.astype(int)).mean()  # colour conversion differs by rounding only
        print(f"{name:36s} {t:9.3f}s  {t / t_ours:7.2f}x  mean |diff| {diff:.2f}")


if __name__ == "__main__":
    main()
