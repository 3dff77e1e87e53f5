"""`mixed` sampling (MixedFrame, 32 outputs at 224 px) on a 10-minute 640x360 H.264 video.

Baselines measured in the same run:
- a bare PyAV decode of every frame without colour conversion (the floor for anything that looks
  at every frame), with FFmpeg's slice threading and with frame threading; the faster counts;
- the MixMA-LMM fork's procedure, restated: every third frame converted to full-size RGB, its
  uint8 wrap-around change test, a running 0.5/0.5 `cv2.addWeighted` blend (streamed here; the
  fork itself loaded all sampled frames at once with decord, which needs ~4 GB for this video).
Alignment: `mode="strobe"` with `align=True` (the default: camera motion estimated and undone)
against `align=False`, both ours, same run; and, with `--old-src DIR` (a checkout of an earlier
mixma's `src`, e.g. `git archive e511282 src | tar -x -C /tmp/old`), that version's `mixed` in the
same modes, timed in a child process after its imports.
Peak memory: the same `mixed` run on the 10-minute video and on a 1-minute one, each in a fresh
process (peak RSS, and tracemalloc's peak of Python-side allocations).

Wall-clock times are best of N interleaved rounds; CPU times (user + sys over all threads, best of N)
are printed too, as the share of the machine's work that a busy machine does not inflate.

Run: .venv/bin/python benchmarks/bench_mixed.py [--repeats 3] [--step N] [--old-src DIR]... [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import av
import cv2
import numpy as np

from _videos import long_video
from mixma import sample_frames


def bare_decode(path, thread_type):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = thread_type
        return sum(1 for _ in container.decode(stream))


def fork_procedure(path, step=3, threshold=255 / 2, limit=24 * 5):
    """The fork's mixer (see research notes §6.1), streamed instead of batch-loaded."""
    outputs, mixed, n = [], None, 0
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step:
                continue
            f = frame.to_ndarray(format="rgb24")
            if mixed is None:
                mixed, n = f, 1
                continue
            if n >= limit:
                outputs.append(mixed)
                mixed, n = f, 1
                continue
            n += 1
            if np.mean(f - mixed) > threshold:  # uint8 arithmetic wraps: the fork's defect, kept
                outputs.append(mixed)
                mixed, n = f, 1
                continue
            mixed = cv2.addWeighted(mixed, 0.5, f, 0.5, 0)
    outputs.append(mixed)
    return len(outputs)


def ours(path, step, **options):
    options.update({} if step is None else {"step": step})
    return sample_frames(path, 32, "mixed", size=224, **options)


def old_version(src, path, step, repeats):
    """Best-of-`repeats` times of an earlier mixma's `mixed` (mean, strobe), in a child process."""
    code = (
        "import json, sys, time\n"
        f"sys.path.insert(0, {str(src)!r})\n"
        "from mixma import sample_frames\n"
        f"options = {{}} if {step!r} is None else {{'step': {step!r}}}\n"
        "out = {}\n"
        "for mode in ('mean', 'strobe'):\n"
        "    times, cpu = [], []\n"
        f"    for _ in range({repeats}):\n"
        "        start, start_cpu = time.perf_counter(), time.process_time()\n"
        f"        sample_frames({str(path)!r}, 32, 'mixed', size=224, mode=mode, **options)\n"
        "        times.append(time.perf_counter() - start)\n"
        "        cpu.append(time.process_time() - start_cpu)\n"
        "    out[mode] = min(times)\n"
        "    out[mode + ' cpu'] = min(cpu)\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def child(minutes, step, trace):
    """Run once in this (fresh) process and print its peak memory as JSON."""
    path = long_video(minutes)
    if trace:
        tracemalloc.start()
    ours(path, step)
    peak_traced = tracemalloc.get_traced_memory()[1] if trace else None
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "traced_mb": peak_traced / 2**20 if trace else None}))


def measure_memory(minutes, step, trace):
    step_args = [] if step is None else ["--step", str(step)]
    out = subprocess.run([sys.executable, __file__, "--child", str(minutes), *step_args] + (["--trace"] if trace else []),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", type=int, default=None, help="analyse every STEP-th frame (default: mixma's, ~10 per second)")
    parser.add_argument("--old-src", action="append", default=[],
                        help="an earlier mixma's src folder, timed in the same run (repeatable)")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.step, args.trace)

    path = long_video(10)
    long_video(1)
    step = sample_frames(path, 32, "mixed", size=32).options["step"] if args.step is None else args.step
    print(f"video: {path.name}; mixed: 32 outputs, size 224, step {step}{' (default)' if args.step is None else ''}, mode mean (defaults otherwise)")
    # interleaved rounds, best of each: the machine's load drifts during a run, and measuring one
    # method after the other would hand the quiet minutes to whichever came last
    methods = {
        "slice": lambda: bare_decode(path, "SLICE"),
        "frame": lambda: bare_decode(path, "AUTO"),
        "ours": lambda: ours(path, args.step),
        "fork": lambda: fork_procedure(path),
        "strobe": lambda: ours(path, args.step, mode="strobe"),
        "still": lambda: ours(path, args.step, mode="strobe", align=False),
    }
    olds = {f"{src}:{mode}" for src in args.old_src for mode in ("mean", "strobe")}
    best = {name: float("inf") for name in [*methods, *olds]}
    cpu = dict(best)  # CPU time (user + sys, all threads): what waiting for a busy machine does not inflate
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
        for src in args.old_src:
            old = old_version(src, path, args.step, 1)
            for mode in ("mean", "strobe"):
                best[f"{src}:{mode}"] = min(best[f"{src}:{mode}"], old[mode])
                cpu[f"{src}:{mode}"] = min(cpu[f"{src}:{mode}"], old[f"{mode} cpu"])
    t_slice, t_frame, t_ours, t_fork, t_strobe, t_still = (best[k] for k in methods)
    t_bare = min(t_slice, t_frame)
    print(f"bare decode, slice threads     {t_slice:8.2f} s")
    print(f"bare decode, frame threads     {t_frame:8.2f} s")
    print(f"mixed (ours)                   {t_ours:8.2f} s   {t_ours / t_bare:5.2f}x the faster bare decode (goal <= 1.5x)")
    print(f"fork's procedure               {t_fork:8.2f} s   ours is {t_fork / t_ours:5.2f}x faster (goal >= 2x)")
    print(f"strobe, align (default)        {t_strobe:8.2f} s   {t_strobe / t_still:5.2f}x strobe without alignment (goal <= 1.3x)")
    print(f"strobe, no align               {t_still:8.2f} s   {t_still / t_bare:5.2f}x the faster bare decode")
    for src in args.old_src:
        t_mean, t_old_strobe = best[f"{src}:mean"], best[f"{src}:strobe"]
        print(f"{src}: mixed (mean)  {t_mean:8.2f} s   ours is {t_ours / t_mean:5.2f}x its time")
        print(f"{src}: mixed (strobe) {t_old_strobe:8.2f} s   ours with alignment is {t_strobe / t_old_strobe:5.2f}x its time")
    c_bare = min(cpu["slice"], cpu["frame"])
    print(f"CPU time: bare decode {cpu['slice']:.2f} s (slice) / {cpu['frame']:.2f} s (frame threads); mixed {cpu['ours']:.2f} s "
          f"({cpu['ours'] / c_bare:.2f}x the bare decode's); fork {cpu['fork']:.2f} s ({cpu['fork'] / cpu['ours']:.2f}x ours); "
          f"strobe {cpu['strobe']:.2f} s, no align {cpu['still']:.2f} s ({cpu['strobe'] / cpu['still']:.2f}x)")
    for src in args.old_src:
        c_mean, c_strobe = cpu[f"{src}:mean"], cpu[f"{src}:strobe"]
        print(f"CPU time: {src}: mixed (mean) {c_mean:.2f} s (ours {cpu['ours'] / c_mean:.2f}x), "
              f"strobe {c_strobe:.2f} s (ours with alignment {cpu['strobe'] / c_strobe:.2f}x)")
    for trace in () if args.no_memory else (False, True):
        one, ten = measure_memory(1, args.step, trace), measure_memory(10, args.step, trace)
        key = "traced_mb" if trace else "rss_mb"
        label = "tracemalloc peak" if trace else "peak RSS"
        print(f"{label:17s} 1 min {one[key]:8.1f} MB   10 min {ten[key]:8.1f} MB   ratio {ten[key] / one[key]:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
