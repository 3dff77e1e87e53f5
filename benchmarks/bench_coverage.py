"""Event coverage at an equal frame budget on the synthetic benchmark (`mixma bench make`).

Each video is 12 s (300 frames at 25 fps) of one to three shots over which coloured shapes flash
for 3-6 frames (the brief events its questions ask about); the annotation's `meta` records every
event (shape, colour, first frame, length, centre, radius) and every shot (first frame,
background). Every method gets T = 8 output frames per video:

- `uniform`: `rint(linspace(0, n - 1, 8))` (how MA-LMM evaluates);
- `mixed` (mean, the default) and `mixed` strobe: MixedFrame;
- PySceneDetect scene middles: ContentDetector's scenes, the 8 frames shared among them in
  proportion to their lengths (at least one each; the 8 longest scenes when there are more), each
  frame in the middle of an equal part of its scene;
- Katna's keyframes (`Video().extract_video_keyframes(no_of_frames=8)`), run in a virtual
  environment of its own (`benchmarks/.cache/katna-venv`, set up on the first run: Katna pins
  opencv-contrib-python, which would shadow our opencv-python-headless); its keyframes are
  images, matched back to the nearest decoded frame.

What is measured, on the output images themselves (a composite that washes an event out does
not show it):
- an event is *shown* by an output when the mean colour of the inner half of its shape there is
  closer to the shape's colour than to the shot's background colour;
- an event has an output *of its own* when some output shows it and no other event;
- a *persistent fact*: each background a video shows (its shots'); it is still visible when
  some output's median colour is nearest to that background's colour (among the six, within
  45 levels).

With `--old-src DIR` (an earlier mixma's `src`), that version's MixedFrame is scored too.

Run: .venv/bin/python benchmarks/bench_coverage.py [--videos 200] [--katna-videos 60] [--old-src DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from _videos import CACHE
from mixma import VideoReader, sample_frames
from mixma.data.annotations import SPLITS, read_records
from mixma.data.synthetic import BACKGROUNDS, COLOURS, SyntheticConfig, make_benchmark

T = 8
KATNA = "katna==0.9.2"
KATNA_VENV = CACHE / "katna-venv"

KATNA_SCRIPT = textwrap.dedent('''
    """Katna keyframes for each video on stdin (one path a line): JSON {path: [frame indices]}."""
    import json, sys
    import cv2, numpy as np
    from Katna.video import Video
    from Katna.writer import Writer

    class Keep(Writer):  # keeps the keyframes instead of writing JPEGs
        def __init__(self):
            self.frames = []
        def write(self, filepath, data):
            self.frames = list(data)

    def frames_of(path):
        capture, frames = cv2.VideoCapture(path), []
        while True:
            ok, frame = capture.read()
            if not ok:
                return np.stack(frames).astype(np.int16)
            frames.append(frame)

    if __name__ == "__main__":
        video, out = Video(), {}
        for path in sys.stdin.read().split():
            keep = Keep()
            video.extract_video_keyframes(no_of_frames=%d, file_path=path, writer=keep)
            decoded = frames_of(path)
            picks = []
            for frame in keep.frames:
                frame = np.asarray(frame, np.int16)
                if frame.shape != decoded.shape[1:]:
                    frame = cv2.resize(frame.astype(np.uint8), decoded.shape[2:0:-1]).astype(np.int16)
                picks.append(int(np.abs(decoded - frame).mean(axis=(1, 2, 3)).argmin()))
            out[path] = sorted(picks)
        print(json.dumps(out))
''' % T)


def ensure_benchmark(videos: int) -> Path:
    folder = CACHE / f"synthetic_{videos}_seed0"
    if not (folder / "benchmark.json").exists():
        print(f"writing the benchmark to {folder} (mixma bench make -o {folder} --videos {videos} --seed 0)")
        make_benchmark(folder, SyntheticConfig(videos=videos, seed=0), progress=True)
    return folder


def ensure_katna() -> tuple[Path | None, str]:
    """The Katna interpreter, set up on first use; or None and why not."""
    python = KATNA_VENV / "bin" / "python"
    if not python.exists():
        venv.create(KATNA_VENV, with_pip=True)
    probe = subprocess.run([str(python), "-c", "import Katna"], capture_output=True, text=True)
    if probe.returncode:
        install = subprocess.run([str(python), "-m", "pip", "install", "-q", KATNA], capture_output=True, text=True)
        if install.returncode:
            return None, f"pip install {KATNA} failed: " + install.stderr.strip().splitlines()[-1]
        probe = subprocess.run([str(python), "-c", "import Katna"], capture_output=True, text=True)
        if probe.returncode:
            return None, "import Katna failed: " + probe.stderr.strip().splitlines()[-1]
    return python, ""


def katna_indices(python: Path, paths: list[Path]) -> dict[str, list[int]]:
    """Katna's keyframe indices per video (cached: the videos and Katna are deterministic)."""
    cached = CACHE / f"katna_{paths[0].parent.parent.name}_{len(paths)}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    script = CACHE / "katna_keyframes.py"
    script.write_text(KATNA_SCRIPT)
    run = subprocess.run([str(python), str(script)], input="\n".join(map(str, paths)), capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(run.stderr.strip().splitlines()[-1])
    cached.write_text(run.stdout.strip().splitlines()[-1])
    return json.loads(cached.read_text())


def scene_middles(path: Path, num_frames: int, total: int) -> list[int]:
    from scenedetect import ContentDetector, detect

    scenes = [(s.frame_num, e.frame_num) for s, e in detect(str(path), ContentDetector())] or [(0, total)]
    if len(scenes) > num_frames:
        scenes = sorted(sorted(scenes, key=lambda se: se[1] - se[0])[-num_frames:])
    counts = [1] * len(scenes)
    for _ in range(num_frames - len(scenes)):  # one more to the scene whose parts are longest
        k = max(range(len(scenes)), key=lambda i: (scenes[i][1] - scenes[i][0]) / (counts[i] + 1))
        counts[k] += 1
    picks = []
    for (start, end), count in zip(scenes, counts):
        edges = np.linspace(start, end, count + 1)
        picks += [int((a + b) / 2) for a, b in zip(edges, edges[1:])]
    return picks


def shown(image: np.ndarray, event: dict, background: str) -> bool:
    h, w = image.shape[:2]
    r = max(1, event["radius"] // 2)
    yy, xx = np.mgrid[0:h, 0:w]
    disk = (xx - event["x"]) ** 2 + (yy - event["y"]) ** 2 <= r * r
    mean = image[disk].astype(float).mean(axis=0)
    return bool(np.linalg.norm(mean - COLOURS[event["colour"]]) < np.linalg.norm(mean - BACKGROUNDS[background]))


def background_of(image: np.ndarray) -> str | None:
    median = np.median(image.reshape(-1, 3), axis=0)
    name, distance = min(((n, np.linalg.norm(median - c)) for n, c in BACKGROUNDS.items()), key=lambda x: x[1])
    return name if distance <= 45 else None


def score(images: list[np.ndarray], meta: dict) -> dict[str, int]:
    shots = meta["shots"]

    def background(frame: int) -> str:
        return [s["background"] for s in shots if s["start"] <= frame][-1]

    events = meta["events"]
    seen = [[shown(im, e, background(e["start"])) for e in events] for im in images]  # [T][E]
    own = sum(any(row[k] and sum(row) == 1 for row in seen) for k in range(len(events)))
    any_shown = sum(any(row[k] for row in seen) for k in range(len(events)))
    facts = {s["background"] for s in shots}
    visible = {background_of(im) for im in images}
    return {"events": len(events), "own": own, "shown": any_shown, "facts": len(facts), "facts_seen": len(facts & visible)}


def outputs(method: str, path: Path, total: int, katna: dict | None) -> list[np.ndarray]:
    if method == "uniform":
        return list(sample_frames(path, T).frames)
    if method == "mixed (mean)":
        return list(sample_frames(path, T, "mixed").frames)
    if method == "mixed (strobe)":
        return list(sample_frames(path, T, "mixed", mode="strobe").frames)
    indices = scene_middles(path, T, total) if method == "PySceneDetect scene middles" else katna[str(path)]
    with VideoReader(path) as video:
        return list(video.read(indices))


def earlier(src: str, videos: int) -> dict[str, dict[str, int]]:
    """An earlier mixma's `mixed` (mean, strobe) on all videos, scored here, in a child process."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {src!r}); sys.path.insert(1, {str(Path(__file__).parent)!r})\n"
        "import bench_coverage as b\n"
        f"folder = b.ensure_benchmark({videos})\n"
        "records = sorted([r for s in b.SPLITS for r in b.read_records(folder / f'{s}.jsonl')], key=lambda r: r.id)\n"
        "out = {}\n"
        "for mode in ('mean', 'strobe'):\n"
        "    total = {}\n"
        "    for r in records:\n"
        "        frames = b.sample_frames(folder / r.video, b.T, 'mixed', mode=mode).frames\n"
        "        for k, v in b.score(list(frames), r.meta).items():\n"
        "            total[k] = total.get(k, 0) + v\n"
        "    out[mode] = total\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--katna-videos", type=int, default=60, help="Katna is slow: run it on the first N videos")
    parser.add_argument("--old-src", help="also score an earlier mixma's MixedFrame (its src folder)")
    args = parser.parse_args()
    folder = ensure_benchmark(args.videos)
    records = [r for split in SPLITS for r in read_records(folder / f"{split}.jsonl")]
    records.sort(key=lambda r: r.id)
    paths = [folder / r.video for r in records]

    methods = ["uniform", "mixed (mean)", "mixed (strobe)", "PySceneDetect scene middles", "Katna keyframes"]
    python, why = ensure_katna()
    katna = None
    if python is None:
        print(f"Katna not run: {why}")
        methods.remove("Katna keyframes")
    else:
        katna = katna_indices(python, paths[: args.katna_videos])
    totals = {m: {"all": {}, "subset": {}} for m in methods}
    for i, (record, path) in enumerate(tqdm(list(zip(records, paths)), desc="videos", unit="video")):
        for method in methods:
            if method == "Katna keyframes" and str(path) not in katna:
                continue
            counts = score(outputs(method, path, record.meta["num_frames"], katna), record.meta)
            for part in ("all", "subset") if i < args.katna_videos else ("all",):
                bucket = totals[method][part]
                for key, value in counts.items():
                    bucket[key] = bucket.get(key, 0) + value

    if args.old_src:
        for mode, counts in earlier(args.old_src, args.videos).items():
            methods.append(f"earlier mixed ({mode})")
            totals[methods[-1]] = {"all": counts, "subset": {}}
    for part, label in (("all", f"all {len(records)} videos"), ("subset", f"the first {args.katna_videos} videos (Katna's)")):
        print(f"\n{label}, {T} outputs each")
        print(f"{'method':30s} {'event, own output':>18s} {'event shown':>12s} {'backgrounds seen':>17s}")
        for method in methods:
            c = totals[method][part]
            if not c:
                continue
            print(f"{method:30s} {c['own'] / c['events']:17.1%} {c['shown'] / c['events']:12.1%} {c['facts_seen'] / c['facts']:16.1%}"
                  f"   ({c['events']} events, {c['facts']} backgrounds)")


if __name__ == "__main__":
    main()
