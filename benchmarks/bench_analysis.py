"""The analysis alone: MixedFrame and cut detection on frames decoded beforehand.

`bench_mixed.py` and `bench_cuts.py` time whole runs, decoding included, which on a shared machine
move by up to 2x between identical runs. This one takes decoding out: every 3rd frame of the
first minute of the benchmark video (600 frames) is decoded once and held in memory, then
`sample_frames(..., "mixed", size=224)` (mean and strobe, 32 outputs) and
`detect_changes(step=3)` run over the held frames, and the CPU time (user + sys, all threads)
per analysed frame is reported, best of N. With `--old-src DIR` (an earlier mixma's `src`, e.g.
`git archive main src | tar -x -C /tmp/main`) that version runs the same in a child process, in
interleaved rounds, so the ratios compare the analysis work of the two versions.

Run: .venv/bin/python benchmarks/bench_analysis.py [--repeats 3] [--rounds 3] [--old-src DIR]...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ("mean", "strobe", "cuts")


def measure(src: str | None, repeats: int) -> dict[str, float]:
    """CPU microseconds per analysed frame for each case, best of `repeats` (in this process)."""
    if src is not None:
        sys.path.insert(0, src)
    sys.path.insert(0, str(HERE))
    from _videos import long_video

    from mixma import VideoReader, sample_frames

    try:
        from mixma.video.changes import detect_changes
    except ImportError:  # a version before cut detection had a module of its own
        detect_changes = None

    path = long_video(10)
    with VideoReader(path) as video:
        held = []
        for decoded in video.stream(step=3, stop=int(60 * video.fps)):
            held.append(decoded)
        info, times = dataclasses.replace(video.info, num_frames=held[-1].index + 1), video.times

    class Held(VideoReader):
        """The first minute of the video as held frames (a reader that decodes nothing)."""

        def __init__(self):  # noqa: D107 - deliberately not VideoReader's
            self.path, self.info, self._times = str(path), info, times

        def stream(self, step=1, start=0, stop=None, *, prefetch=0):
            assert step == 3 and start == 0
            yield from held

        def close(self):
            pass

    runs = {
        "mean": lambda: sample_frames(Held(), 32, "mixed", size=224, step=3),
        "strobe": lambda: sample_frames(Held(), 32, "mixed", size=224, mode="strobe", step=3),
    }
    if detect_changes is not None:
        runs["cuts"] = lambda: detect_changes(Held(), step=3)
    out = {}
    for name, run in runs.items():
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            run()
            best = min(best, time.process_time() - start)
        out[name] = best / len(held) * 1e6
    return out


def child(src: str | None, repeats: int) -> dict[str, float]:
    args = [sys.executable, __file__, "--child", "--repeats", str(repeats)] + ([] if src is None else ["--src", src])
    run = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per case in one process (best counts)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of fresh processes (best counts)")
    parser.add_argument("--old-src", action="append", default=[], help="an earlier mixma's src folder (repeatable)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.src, args.repeats)))
        return

    versions = [None, *args.old_src]  # None: this checkout's mixma (as imported from PYTHONPATH)
    best = {v: {c: float("inf") for c in CASES} for v in versions}
    for _ in range(args.rounds):
        for version in versions:
            for case, value in child(version, args.repeats).items():
                best[version][case] = min(best[version][case], value)
    print(f"CPU time per analysed frame (us), best of {args.rounds} rounds x {args.repeats} runs; 600 frames held in memory")
    print(f"{'version':28s} " + " ".join(f"{c:>16s}" for c in CASES))
    for version in versions:
        label = "ours" if version is None else version
        cells = []
        for case in CASES:
            value = best[version].get(case, float("inf"))
            if value == float("inf"):
                cells.append("-")
                continue
            ratio = "" if version is None else f" ({value / best[None][case]:.2f}x)"
            cells.append(f"{value:7.0f}{ratio:>9s}")
        print(f"{label[-28:]:28s} " + " ".join(f"{c:>16s}" for c in cells))


if __name__ == "__main__":
    main()
