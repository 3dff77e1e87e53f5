"""MA-LMM on the synthetic benchmark: uniform vs MixedFrame sampling, memory on vs off.

Every configuration trains the same small from-scratch MA-LMM (configs/malmm_synthetic.yaml) for
the same number of epochs with the same frame budget T, then scores open-ended QA on the test
split (top-1 exact match, per question type). Runs go two at a time, one thread each.

    python experiments/malmm_sampling.py --bench bench --out runs/malmm-sampling [--frames 8 --memory 4 --seeds 42 43]

Writes `<out>/results.md` (the table) and `<out>/results.json`.
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

VARIANTS = {
    # name: (train strategy, eval strategy, memory on)
    "uniform, memory on": ("segment", "uniform", True),
    "mixed, memory on": ("mixed", "mixed", True),
    "uniform, memory off": ("segment", "uniform", False),
    "mixed, memory off": ("mixed", "mixed", False),
}


def run(name: str, seed: int, args, out: Path) -> dict:
    train, evaluate, memory = VARIANTS[name]
    folder = out / f"{name.replace(', ', '-').replace(' ', '_')}-seed{seed}"
    overrides = [
        f"data.root={args.bench}", f"data.num_frames={args.frames}", f"data.train_strategy={train}",
        f"data.eval_strategy={evaluate}", f"model.memory_bank_length={args.memory if memory else 0}",
        "run.threads=1", f"run.seed={seed}",
        # the study as recorded trains the vision encoder too (the config now freezes it)
        "model.train_vision=true",
    ]
    if args.epochs:
        overrides += [f"run.epochs={args.epochs}", f"run.eval_every={args.epochs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    mixma = [sys.executable, "-m", "mixma"]
    if not (folder / "summary.json").exists():
        resume = ["--resume"] if (folder / "checkpoints" / "latest").exists() else []  # an interrupted run goes on
        subprocess.run([*mixma, "train", "malmm", str(ROOT / "configs/malmm_synthetic.yaml"), "-o", str(folder),
                        *resume, *sum((["--set", o] for o in overrides), [])], check=True, env=env,
                       stderr=subprocess.DEVNULL)
    summary = json.loads((folder / "summary.json").read_text())
    test = subprocess.run([*mixma, "eval", str(folder), "--split", "test", "-o", str(folder / "test.json")],
                          check=True, env=env, capture_output=True, text=True)
    metrics = json.loads(test.stdout)
    print(f"{name}, seed {seed}: top1 {metrics['top1']:.1f} ({summary['seconds']:.0f} s)", flush=True)
    return {"name": name, "seed": seed, "train_seconds": round(summary["seconds"]), "steps": summary["steps"], **metrics}


def spread(values: list[float]) -> str:
    """`mean (min-max)`, or the one value."""
    mean = sum(values) / len(values)
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ({min(values):.1f}-{max(values):.1f})"


def majority_baselines(bench: Path) -> tuple[dict[str, float], float]:
    """Test accuracy of always answering a question type's most common training answer."""
    from collections import Counter

    from mixma.data.annotations import read_records

    train, test = read_records(bench / "train.jsonl"), read_records(bench / "test.jsonl")
    best = {t: Counter(q.answer for r in train for q in r.qa if q.type == t).most_common(1)[0][0]
            for t in {q.type for r in train for q in r.qa}}
    hits: dict[str, list[bool]] = {}
    for r in test:
        for q in r.qa:
            hits.setdefault(q.type, []).append(q.answer == best.get(q.type))
    per = {t: 100 * sum(h) / len(h) for t, h in hits.items()}
    everything = [h for hs in hits.values() for h in hs]
    return per, 100 * sum(everything) / len(everything)


def chance_baselines(bench: Path) -> tuple[dict[str, float], float]:
    """Test accuracy of a uniform guess among the type's answers, or among those the question
    names ("which appeared first, the star or the triangle?" leaves two)."""
    from mixma.data.annotations import read_records

    train, test = read_records(bench / "train.jsonl"), read_records(bench / "test.jsonl")
    answers = {}
    for r in train:
        for q in r.qa:
            answers.setdefault(q.type, set()).add(q.answer)
    odds: dict[str, list[float]] = {}
    for r in test:
        for q in r.qa:
            words = set(q.question.rstrip("?").replace(",", " ").split())
            candidates = [a for a in answers.get(q.type, ()) if a in words] or answers.get(q.type, {q.answer})
            odds.setdefault(q.type, []).append(1 / len(candidates))
    per = {t: 100 * sum(o) / len(o) for t, o in odds.items()}
    everything = [o for os_ in odds.values() for o in os_]
    return per, 100 * sum(everything) / len(everything)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, help="benchmark folder (mixma bench make)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--frames", type=int, default=8, help="T, frames per video (the frame budget)")
    parser.add_argument("--memory", type=int, default=4, help="memory bank length when memory is on")
    parser.add_argument("--epochs", type=int, help="default: the config's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(name, seed) for seed in args.seeds for name in VARIANTS]
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: run(*job, args, args.out), jobs))
    majority, overall = majority_baselines(Path(args.bench))
    types = ["what", "which", "how_many", "order"]
    lines = [
        f"T = {args.frames} frames, memory bank length {args.memory} when on, {results[0]['steps']} steps (batch 16), "
        f"seeds {', '.join(map(str, args.seeds))}; test split, top-1 exact match (%), mean (min-max over seeds).",
        "",
        "| sampling, memory | all | " + " | ".join(types) + " | train time |",
        "|---|---|" + "---|" * len(types) + "---|",
    ]
    for name in VARIANTS:
        rows = [r for r in results if r["name"] == name]
        cells = [spread([r["top1"] for r in rows])]
        cells += [spread([r["per_type"][t]["top1"] for r in rows]) if all(t in r.get("per_type", {}) for r in rows) else "-"
                  for t in types]
        seconds = sum(r["train_seconds"] for r in rows) / len(rows)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} s |")
    lines.append(f"| majority answer (from train) | {overall:.1f} | " + " | ".join(f"{majority.get(t, 0):.1f}" for t in types) + " | |")
    chance, overall_chance = chance_baselines(Path(args.bench))
    lines.append(f"| chance (a guess among the possible answers) | {overall_chance:.1f} | "
                 + " | ".join(f"{chance.get(t, 0):.1f}" for t in types) + " | |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
