"""MAMA on noisy LVLM-style captions: InfoNCE vs angular margin vs angular margin + meta-weighting.

The synthetic benchmark is made with 40% of its augmented captions wrong (`--wrong-fraction 0.4`);
training pairs each video with one of its augmented captions (`data.captions=augmented`), so 40%
of training pairs are wrong, while the `meta` split is clean. Each method trains the same dual
encoder (a small CLIP vision tower from scratch, the pretrained MiniLM text tower) for the same
number of steps (configs/mama_synthetic.yaml), for several seeds, and is scored on the test split against the clean reference
captions: R@1 and R@5 in both directions, mean ± standard deviation over seeds.

    python experiments/mama_noisy_captions.py --bench bench-noisy --out runs/mama-noisy [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

METHODS = {
    "InfoNCE": ["loss.margin=0.0", "loss.weighting=none"],
    "angular margin": ["loss.margin=0.1", "loss.weighting=none"],
    "angular margin + meta-weighting": ["loss.margin=0.1", "loss.weighting=meta"],
}
KEYS = ["t2v/R@1", "t2v/R@5", "v2t/R@1", "v2t/R@5"]


def run(method: str, seed: int, args) -> dict:
    folder = args.out / f"{method.replace(' ', '_').replace('+', 'plus')}-seed{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    mixma = [sys.executable, "-m", "mixma"]
    epochs = [f"run.epochs={args.epochs}", f"run.eval_every={args.epochs}"] if args.epochs else []
    overrides = [f"data.root={args.bench}", *epochs, f"run.seed={seed}", "run.threads=1", *METHODS[method]]
    if not (folder / "summary.json").exists():
        resume = ["--resume"] if (folder / "checkpoints" / "latest").exists() else []  # an interrupted run goes on
        subprocess.run([*mixma, "train", "mama", str(ROOT / "configs/mama_synthetic.yaml"), "-o", str(folder), *resume,
                        *sum((["--set", o] for o in overrides), [])], check=True, env=env, stderr=subprocess.DEVNULL)
    out = subprocess.run([*mixma, "eval", str(folder), "--split", "test"], check=True, env=env, capture_output=True, text=True)
    metrics = json.loads(out.stdout)
    summary = json.loads((folder / "summary.json").read_text())
    seconds = summary["seconds"]
    print(f"{method} seed {seed}: " + ", ".join(f"{k} {metrics[k]:.1f}" for k in KEYS) + f" ({seconds:.0f} s)", flush=True)
    return {"method": method, "seed": seed, "seconds": seconds, "steps": summary["steps"], **{k: metrics[k] for k in KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: the config's")
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(m, s) for s in args.seeds for m in METHODS]
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: run(*job, args), jobs))
    lines = [
        f"Test split, {len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}), {results[0]['steps']} steps each; "
        "40% of training captions wrong; mean ± std (%).",
        "",
        "| method | " + " | ".join(KEYS) + " | train time |",
        "|---|" + "---|" * len(KEYS) + "---|",
    ]
    for method in METHODS:
        rows = [r for r in results if r["method"] == method]
        cells = []
        for key in KEYS:
            values = [r[key] for r in rows]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}")
        seconds = statistics.mean(r["seconds"] for r in rows)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {seconds:.0f} s |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
