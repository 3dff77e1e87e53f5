"""MA-LMM on the synthetic benchmark: uniform vs MixedFrame sampling, memory on vs off.

Every configuration trains the same small MA-LMM for the same number of epochs with the same
frame budget T, then scores open-ended QA on the test split (top-1 exact match, per question
type, with a 95% bootstrap interval over test questions, paired with the first variant). Runs go
two at a time, one thread each. Two studies:

- `--study from-scratch` (the recorded one): `configs/malmm_synthetic.yaml`, a random ViT trained
  too; uniform trains on TSN `segment` draws, as MA-LMM does.
- `--study pretrained`: `configs/malmm_pretrained.yaml`, the frozen ImageNet EfficientNet-Lite0
  (its tokens cached per video, so every strategy is deterministic: uniform trains on uniform
  frames), and MixedFrame in each of its modes.

    python experiments/malmm_sampling.py --bench bench --out runs/malmm-sampling [--frames 8 --memory 4 --seeds 42 43]
    python experiments/malmm_sampling.py --study pretrained --bench bench-q --out runs/malmm-pretrained --seeds 42 43 44

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

STUDIES = {
    # study: (config, {variant: (train strategy, eval strategy, memory on, MixedFrame mode)}, extra overrides)
    "from-scratch": ("configs/malmm_synthetic.yaml", {
        "uniform, memory on": ("segment", "uniform", True, None),
        "mixed, memory on": ("mixed", "mixed", True, None),
        "uniform, memory off": ("segment", "uniform", False, None),
        "mixed, memory off": ("mixed", "mixed", False, None),
    }, ["model.train_vision=true"]),  # the study as recorded trains the vision encoder too (the config freezes it)
    "pretrained": ("configs/malmm_pretrained.yaml", {
        "uniform, memory on": ("uniform", "uniform", True, None),
        "mixed (mean), memory on": ("mixed", "mixed", True, "mean"),
        "mixed (strobe), memory on": ("mixed", "mixed", True, "strobe"),
        "mixed (ema), memory on": ("mixed", "mixed", True, "ema"),
        "uniform, memory off": ("uniform", "uniform", False, None),
        "mixed (mean), memory off": ("mixed", "mixed", False, "mean"),
    }, []),
}


def run(name: str, seed: int, args, out: Path) -> dict:
    config, variants, extra = STUDIES[args.study]
    train, evaluate, memory, mode = variants[name]
    folder = out / f"{name.replace(', ', '-').replace(' ', '_').translate(str.maketrans('', '', '()'))}-seed{seed}"
    overrides = [
        f"data.root={args.bench}", f"data.num_frames={args.frames}", f"data.train_strategy={train}",
        f"data.eval_strategy={evaluate}", f"model.memory_bank_length={args.memory if memory else 0}",
        "run.threads=1", f"run.seed={seed}", *extra, *([f"data.mixed.mode={mode}"] if mode else []),
    ]
    if args.epochs:
        overrides += [f"run.epochs={args.epochs}", f"run.eval_every={args.epochs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    mixma = [sys.executable, "-m", "mixma"]
    if not (folder / "summary.json").exists():
        resume = ["--resume"] if (folder / "checkpoints" / "latest").exists() else []  # an interrupted run goes on
        subprocess.run([*mixma, "train", "malmm", str(ROOT / config), "-o", str(folder),
                        *resume, *sum((["--set", o] for o in overrides), [])], check=True, env=env,
                       stderr=subprocess.DEVNULL)
    summary = json.loads((folder / "summary.json").read_text())
    predictions = folder / "test_predictions.jsonl"
    test = subprocess.run([*mixma, "eval", str(folder), "--split", "test", "-o", str(folder / "test.json"),
                           "--predictions", str(predictions)], check=True, env=env, capture_output=True, text=True)
    metrics = json.loads(test.stdout)
    print(f"{name}, seed {seed}: top1 {metrics['top1']:.1f} ({summary['seconds']:.0f} s)", flush=True)
    return {"name": name, "seed": seed, "train_seconds": round(summary["seconds"]), "steps": summary["steps"], **metrics,
            "hits": question_hits(predictions)}


def question_hits(predictions: Path) -> dict[str, bool]:
    """Per test question: is the first beam the answer (as the top-1 metric judges it)?"""
    from mixma.eval.metrics import normalize_answer

    hits = {}
    for line in predictions.read_text().splitlines():
        row = json.loads(line)
        hits[row["id"]] = normalize_answer(row["beams"][0]) == normalize_answer(row["references"][0])
    return hits


def bootstrap(results: list[dict], names: list[str], seeds: list[int], samples: int = 2000) -> dict[str, dict]:
    """95% intervals of top-1 over resampled test questions (seeds averaged), and of the paired
    difference to the first variant."""
    import numpy as np

    ids = sorted(results[0]["hits"])
    hits = {(r["name"], r["seed"]): np.array([r["hits"][i] for i in ids]) for r in results}
    draws = np.random.default_rng(0).integers(0, len(ids), size=(samples, len(ids)))
    top1 = {n: np.mean([hits[(n, s)][draws].mean(1) * 100 for s in seeds], axis=0) for n in names}
    out = {}
    for n in names:
        out[n] = dict(zip(("low", "high"), np.percentile(top1[n], [2.5, 97.5]).tolist()))
        if n != names[0]:
            out[n] |= dict(zip(("diff_low", "diff_high"), np.percentile(top1[n] - top1[names[0]], [2.5, 97.5]).tolist()))
    return out


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
    parser.add_argument("--study", choices=list(STUDIES), default="from-scratch")
    parser.add_argument("--variants", nargs="+", help="run only these (default: all of the study's)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--frames", type=int, default=8, help="T, frames per video (the frame budget)")
    parser.add_argument("--memory", type=int, default=4, help="memory bank length when memory is on")
    parser.add_argument("--epochs", type=int, help="default: the config's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.variants or list(STUDIES[args.study][1])
    jobs = [(name, seed) for seed in args.seeds for name in names]
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: run(*job, args, args.out), jobs))
    majority, overall = majority_baselines(Path(args.bench))
    from mixma.data.synthetic import QUESTION_TYPES

    types = [t for t in QUESTION_TYPES if any(t in r.get("per_type", {}) for r in results)]
    intervals = bootstrap(results, names, args.seeds)
    lines = [
        f"T = {args.frames} frames, memory bank length {args.memory} when on, {results[0]['steps']} steps (batch 16), "
        f"seeds {', '.join(map(str, args.seeds))}; test split, top-1 exact match (%), mean (min-max over seeds); the "
        f"95% bootstrap interval over test questions (seeds averaged) and of the paired difference to {names[0]}.",
        "",
        "| sampling, memory | all | 95% interval | difference | " + " | ".join(types) + " | train time |",
        "|---|---|---|---|" + "---|" * len(types) + "---|",
    ]
    for name in names:
        rows = [r for r in results if r["name"] == name]
        ci = intervals[name]
        cells = [spread([r["top1"] for r in rows]), f"[{ci['low']:.1f}, {ci['high']:.1f}]",
                 f"[{ci['diff_low']:+.1f}, {ci['diff_high']:+.1f}]" if "diff_low" in ci else ""]
        cells += [spread([r["per_type"][t]["top1"] for r in rows]) if all(t in r.get("per_type", {}) for r in rows) else "-"
                  for t in types]
        seconds = sum(r["train_seconds"] for r in rows) / len(rows)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} s |")
    lines.append(f"| majority answer (from train) | {overall:.1f} | | | " + " | ".join(f"{majority.get(t, 0):.1f}" for t in types) + " | |")
    chance, overall_chance = chance_baselines(Path(args.bench))
    lines.append(f"| chance (a guess among the possible answers) | {overall_chance:.1f} | | | "
                 + " | ".join(f"{chance.get(t, 0):.1f}" for t in types) + " | |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps({"runs": results, "intervals": intervals}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
