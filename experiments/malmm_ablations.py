"""MA-LMM's ablations (the paper's Table 6, Table 8 and Fig. 3) on the synthetic benchmark.

Every row trains the same small MA-LMM on the frozen, pretrained EfficientNet-Lite0
(`configs/malmm_pretrained.yaml`: its tokens cached per video) with MixedFrame sampling at
T = 16 frames, and changes one thing:

- memory components (Table 6): `model.memory_banks` none / visual / query / both (M = 4);
- compression (Table 8): `model.compression` mbc / fifo / mean / concat, at an equal bank length
  (M = 4; concat keeps every frame, so its memory grows to T);
- bank length (Fig. 3): `model.memory_bank_length` M = 1, 2, 4, 8 with MBC.

The both / MBC / M = 4 row is one configuration and is trained once. Scores are test top-1 per
question type, mean (min-max) over seeds, with a 95% bootstrap interval over test questions
paired with that row.

    python experiments/malmm_ablations.py --bench bench-q --out runs/malmm-ablations --seeds 42 43 44
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from malmm_sampling import bootstrap, chance_baselines, majority_baselines, question_hits, spread  # noqa: E402

REFERENCE = "both banks, MBC, M = 4"
ROWS = {  # name: (group, overrides)
    REFERENCE: ("all", []),
    "no memory": ("components", ["model.memory_banks=none"]),
    "visual bank only": ("components", ["model.memory_banks=visual"]),
    "query banks only": ("components", ["model.memory_banks=query"]),
    "FIFO": ("compression", ["model.compression=fifo"]),
    "average pooling": ("compression", ["model.compression=mean"]),
    "concat (no compression)": ("compression", ["model.compression=concat"]),
    "M = 1": ("bank length", ["model.memory_bank_length=1"]),
    "M = 2": ("bank length", ["model.memory_bank_length=2"]),
    "M = 8": ("bank length", ["model.memory_bank_length=8"]),
}


def run(name: str, seed: int, args) -> dict:
    folder = args.out / f"{name.translate(str.maketrans(' ,=()', '_____'))}-seed{seed}"
    overrides = [f"data.root={args.bench}", f"data.num_frames={args.frames}", "model.memory_bank_length=4",
                 "run.threads=1", f"run.seed={seed}", *ROWS[name][1]]
    if args.epochs:
        overrides += [f"run.epochs={args.epochs}", f"run.eval_every={args.epochs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    mixma = [sys.executable, "-m", "mixma"]
    if not (folder / "summary.json").exists():
        resume = ["--resume"] if (folder / "checkpoints" / "latest").exists() else []
        subprocess.run([*mixma, "train", "malmm", str(ROOT / "configs/malmm_pretrained.yaml"), "-o", str(folder), *resume,
                        *sum((["--set", o] for o in overrides), [])], check=True, env=env, stderr=subprocess.DEVNULL)
    summary = json.loads((folder / "summary.json").read_text())
    predictions = folder / "test_predictions.jsonl"
    test = subprocess.run([*mixma, "eval", str(folder), "--split", "test", "-o", str(folder / "test.json"),
                           "--predictions", str(predictions)], check=True, env=env, capture_output=True, text=True)
    metrics = json.loads(test.stdout)
    print(f"{name}, seed {seed}: top1 {metrics['top1']:.1f} ({summary['seconds']:.0f} s)", flush=True)
    return {"name": name, "seed": seed, "train_seconds": round(summary["seconds"]), "steps": summary["steps"],
            **metrics, "hits": question_hits(predictions)}


def table(results: list[dict], names: list[str], seeds: list[int], bench: Path, frames: int) -> list[str]:
    from mixma.data.synthetic import QUESTION_TYPES

    types = [t for t in QUESTION_TYPES if any(t in r.get("per_type", {}) for r in results)]
    intervals = bootstrap(results, names, seeds)
    lines = [f"T = {frames} frames, MixedFrame (mean), frozen pretrained EfficientNet-Lite0, {results[0]['steps']} steps "
             f"(batch 16), seeds {', '.join(map(str, seeds))}; test top-1 (%), mean (min-max over seeds), the 95% "
             f"bootstrap interval over test questions and of the paired difference to '{REFERENCE}'.", "",
             "| ablation | row | all | 95% interval | difference | " + " | ".join(types) + " | train time |",
             "|---|---|---|---|---|" + "---|" * len(types) + "---|"]
    for name in names:
        rows = [r for r in results if r["name"] == name]
        ci = intervals[name]
        cells = [spread([r["top1"] for r in rows]), f"[{ci['low']:.1f}, {ci['high']:.1f}]",
                 f"[{ci['diff_low']:+.1f}, {ci['diff_high']:+.1f}]" if "diff_low" in ci else ""]
        cells += [spread([r["per_type"][t]["top1"] for r in rows]) for t in types]
        seconds = sum(r["train_seconds"] for r in rows) / len(rows)
        lines.append(f"| {ROWS[name][0]} | {name} | " + " | ".join(cells) + f" | {seconds:.0f} s |")
    majority, overall = majority_baselines(bench)
    chance, overall_chance = chance_baselines(bench)
    lines.append(f"| | majority answer | {overall:.1f} | | | " + " | ".join(f"{majority.get(t, 0):.1f}" for t in types) + " | |")
    lines.append(f"| | chance | {overall_chance:.1f} | | | " + " | ".join(f"{chance.get(t, 0):.1f}" for t in types) + " | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--epochs", type=int, help="default: the config's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), metavar="ROW", help="default: all")
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.rows or list(ROWS)
    if REFERENCE not in names:
        names = [REFERENCE, *names]
    jobs = [(name, seed) for seed in args.seeds for name in names]
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: run(*job, args), jobs))
    lines = table(results, names, args.seeds, args.bench, args.frames)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
