"""MAMA on noisy LVLM-style captions: InfoNCE vs angular margin vs angular margin + meta-weighting.

Plus four ablations of the full method and two reference rows (see METHODS).

The synthetic benchmark is made with 40% of its augmented captions wrong (`--wrong-fraction 0.4`);
training pairs each video with one of its augmented captions (`data.captions=augmented`), so 40%
of training pairs are wrong, while the `meta` split is clean. Each method trains the same dual
encoder (a small CLIP vision tower from scratch, the pretrained MiniLM text tower) for the same
number of steps (configs/mama_synthetic.yaml), for several seeds, and is scored on the test split against the clean reference
captions: R@1 and R@5 in both directions, mean ± standard deviation over seeds. For the
meta-weighted runs it also reports the mean weight the final weighting net gives to the training
pairs whose caption is wrong and to those whose caption is right (the benchmark records which).

    python experiments/mama_noisy_captions.py --bench bench-noisy --out runs/mama-noisy [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

METHODS = {
    "InfoNCE": ["loss.contrastive.margin=0.0", "loss.weighting=none"],
    "angular margin": ["loss.contrastive.margin=0.1", "loss.weighting=none"],
    "angular margin + meta-weighting": ["loss.contrastive.margin=0.1", "loss.weighting=meta"],
    # ablations of the full method: the weighting without the margin, a weighting net that learns 10x
    # faster, and weighting that starts after 90 of the 270 steps (experiments/mama_meta_alignment.py
    # shows why: early on, alignment with the clean meta gradient rises with a pair's loss, and
    # wrong and correct pairs have the same loss)
    "InfoNCE + meta-weighting": ["loss.contrastive.margin=0.0", "loss.weighting=meta"],
    "angular margin + meta-weighting, weighting net lr 1e-2": ["loss.contrastive.margin=0.1", "loss.weighting=meta", "loss.meta.lr=0.01"],
    "angular margin + meta-weighting from step 90": ["loss.contrastive.margin=0.1", "loss.weighting=meta", "loss.meta.start=90"],
    "InfoNCE + meta-weighting from step 90": ["loss.contrastive.margin=0.0", "loss.weighting=meta", "loss.meta.start=90"],
    # beyond the paper: per-pair weights straight from the meta gradient, no loss → weight net
    # (`loss.meta.method=direct`, learning to reweight), since a net that sees only the loss cannot
    # separate wrong captions from hard correct ones here (experiments/mama_meta_alignment.py)
    "angular margin + direct meta-weighting": ["loss.contrastive.margin=0.1", "loss.weighting=meta", "loss.meta.method=direct"],
    "InfoNCE + direct meta-weighting": ["loss.contrastive.margin=0.0", "loss.weighting=meta", "loss.meta.method=direct"],
    # references, not contenders: what do the wrong captions cost, and what the change of caption style?
    "InfoNCE, wrong captions removed (oracle)": ["loss.contrastive.margin=0.0", "loss.weighting=none", "data.root={oracle}",
                                                 "data.cache_dir={bench}/.frame_cache"],
    "InfoNCE on the clean reference captions": ["loss.contrastive.margin=0.0", "loss.weighting=none", "data.captions=original"],
}
KEYS = ["t2v/R@1", "t2v/R@5", "v2t/R@1", "v2t/R@5"]


def caption_weights(folder: Path, seed: int = 0) -> dict[str, float]:
    """What the learned weighting does to the training captions the benchmark knows are wrong.

    The final model embeds every training video once (eval sampling) and every augmented caption;
    random training-size batches of (video, one of its augmented captions) pairs, one per video, give each
    pair its loss among that batch's negatives (the trained margin and scale), and the final
    weighting net its weight (normalised per batch as in training). Returns the mean weight and
    loss of the wrong and of the correct pairs.
    """
    import numpy as np
    import torch

    from mixma.data.annotations import read_records
    from mixma.losses.weighting import MetaWeighting
    from mixma.runs.folder import latest_checkpoint
    from mixma.data.features import model_inputs
    from mixma.runs.mama import load_mama_run, load_trained_loss
    from mixma.train.state import load_state

    latest = latest_checkpoint(folder)
    trained = load_mama_run(latest)
    model, tokenizer, config = trained.model, trained.tokenizer, trained.config
    data, batch_size = config.data, config.run.batch_size
    meta = MetaWeighting(config.loss.meta)
    meta.load_state_dict(load_state(latest)["stateful"]["meta_weighting"])
    criterion = load_trained_loss(latest)
    records = [r for r in read_records(Path(data.root) / f"{data.train_split}.jsonl") if r.augmented]
    video, store = model_inputs(data, model, data.eval_strategy)  # the frozen tower's cached outputs, if any
    if store is not None:
        store.compute([(r.video_path(data.root), r.clip) for r in records], progress=False)

    def frames(chunk):
        if store is not None:
            return {"vision_features": torch.stack([store.load(r.video_path(data.root), r.clip) for r in chunk])}
        return {"pixel_values": torch.stack([video(r.video_path(data.root)) for r in chunk])}

    with torch.no_grad():
        videos = torch.cat([model.embed_videos(**frames(records[i : i + batch_size])) for i in range(0, len(records), batch_size)])
        tokens = [tokenizer(list(r.augmented), padding=True, truncation=True, max_length=data.max_text_len, return_tensors="pt")
                  for r in records]
        texts = [model.embed_texts(t.input_ids, t.attention_mask) for t in tokens]  # each [captions, P]
    rng = np.random.default_rng(seed)
    stats = {True: ([], []), False: ([], [])}  # correct? → (weights, losses)
    for _ in range(20):  # rounds: every video with a random one of its captions, in random batches
        order = rng.permutation(len(records))
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            picks = [int(rng.integers(len(records[i].augmented))) for i in chosen]
            text = torch.stack([texts[i][k] for i, k in zip(chosen, picks)])
            with torch.no_grad():
                losses = criterion(videos[chosen], text)
                weights = meta.weights(losses)
            for i, k, w, ell in zip(chosen, picks, weights.tolist(), losses.tolist()):
                correct = records[i].meta["augmented_correct"][k]
                stats[correct][0].append(w)
                stats[correct][1].append(ell)
    return {"weight_wrong": float(np.mean(stats[False][0])), "weight_correct": float(np.mean(stats[True][0])),
            "loss_wrong": float(np.mean(stats[False][1])), "loss_correct": float(np.mean(stats[True][1]))}


def oracle_bench(bench: Path, target: Path) -> None:
    """A copy of the benchmark (videos linked) whose training records keep only their correct
    augmented captions: what training would see if the noise were filtered out perfectly."""
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "videos").exists():
        (target / "videos").symlink_to((bench / "videos").resolve())
    for name in ("benchmark.json", "val.jsonl", "test.jsonl", "meta.jsonl"):
        shutil.copyfile(bench / name, target / name)
    lines = []
    for line in (bench / "train.jsonl").read_text().splitlines():
        record = json.loads(line)
        correct = record["meta"]["augmented_correct"]
        record["augmented"] = [c for c, ok in zip(record["augmented"], correct) if ok]
        record["meta"]["augmented_correct"] = [True] * len(record["augmented"])
        lines.append(json.dumps(record))
    (target / "train.jsonl").write_text("\n".join(lines) + "\n")


def bootstrap(ranks: dict[tuple[str, int], list[int]], methods: list[str], seeds: list[int], baseline: str,
              samples: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """95% intervals of t2v R@1 over resampled test queries (the same resample for every run, so
    differences are paired), averaged over seeds, for each method and for its difference to
    `baseline`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    hits = {key: np.asarray(r) == 1 for key, r in ranks.items()}  # per query: ranked first?
    n = len(next(iter(hits.values())))
    draws = rng.integers(0, n, size=(samples, n))
    r1 = {m: np.mean([hits[(m, s)][draws].mean(1) * 100 for s in seeds], axis=0) for m in methods}  # [samples]
    out = {}
    for m in methods:
        low, high = np.percentile(r1[m], [2.5, 97.5])
        out[m] = {"low": float(low), "high": float(high)}
        if m != baseline and baseline in r1:
            d_low, d_high = np.percentile(r1[m] - r1[baseline], [2.5, 97.5])
            out[m] |= {"diff_low": float(d_low), "diff_high": float(d_high)}
    return out


def run(method: str, seed: int, args) -> dict:
    name = method.replace(" ", "_").replace("+", "plus").translate(str.maketrans("", "", ",()"))
    folder = args.out / f"{name}-seed{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    mixma = [sys.executable, "-m", "mixma"]
    epochs = [f"run.epochs={args.epochs}", f"run.eval_every={args.epochs}"] if args.epochs else []
    method_overrides = [o.format(oracle=args.out / "bench-oracle", bench=args.bench) for o in METHODS[method]]
    overrides = [f"data.root={args.bench}", *epochs, f"run.seed={seed}", "run.threads=1", *method_overrides]
    if not (folder / "summary.json").exists():
        resume = ["--resume"] if (folder / "checkpoints" / "latest").exists() else []  # an interrupted run goes on
        subprocess.run([*mixma, "train", "mama", str(args.config), "-o", str(folder), *resume,
                        *sum((["--set", o] for o in overrides), [])], check=True, env=env, stderr=subprocess.DEVNULL)
    predictions = folder / "test_predictions.jsonl"
    out = subprocess.run([*mixma, "eval", str(folder), "--split", "test", "--predictions", str(predictions)],
                         check=True, env=env, capture_output=True, text=True)
    metrics = json.loads(out.stdout)
    ranks = [json.loads(line)["rank"] for line in predictions.read_text().splitlines()]
    summary = json.loads((folder / "summary.json").read_text())
    seconds = summary["seconds"]
    # a direct weighting has no function of the loss to evaluate afterwards
    weights = caption_weights(folder) if "meta" in method and "direct" not in method else {}
    print(f"{method} seed {seed}: " + ", ".join(f"{k} {metrics[k]:.1f}" for k in KEYS) + f" ({seconds:.0f} s) {weights}", flush=True)
    return {"method": method, "seed": seed, "seconds": seconds, "steps": summary["steps"], **{k: metrics[k] for k in KEYS},
            **weights, "ranks": ranks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True)
    parser.add_argument("--config", type=Path, default=ROOT / "configs/mama_synthetic.yaml",
                        help="the run config every method starts from (default: the from-scratch study's)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: the config's")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), metavar="METHOD",
                        help="run and report only these (default: all): " + "; ".join(METHODS))
    args = parser.parse_args()
    methods = args.methods or list(METHODS)
    args.out.mkdir(parents=True, exist_ok=True)
    oracle_bench(Path(args.bench), args.out / "bench-oracle")
    jobs = [(m, s) for s in args.seeds for m in methods]
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: run(*job, args), jobs))
    baseline = "InfoNCE" if "InfoNCE" in methods else methods[0]
    intervals = bootstrap({(r["method"], r["seed"]): r["ranks"] for r in results}, methods, args.seeds, baseline)
    queries = len(results[0]["ranks"])
    lines = [
        f"Test split ({queries} captions as queries), {len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}), "
        f"{results[0]['steps']} steps each; 40% of training captions wrong; mean ± std over seeds (%), and for t2v "
        f"R@1 the 95% bootstrap interval over test queries (seeds averaged) and of the paired difference to {baseline}.",
        "",
        "| method | " + " | ".join(KEYS) + f" | t2v R@1, 95% interval | difference to {baseline} | train time |",
        "|---|" + "---|" * len(KEYS) + "---|---|---|",
    ]
    for method in methods:
        rows = [r for r in results if r["method"] == method]
        cells = []
        for key in KEYS:
            values = [r[key] for r in rows]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}")
        seconds = statistics.mean(r["seconds"] for r in rows)
        ci = intervals[method]
        diff = f"[{ci['diff_low']:+.1f}, {ci['diff_high']:+.1f}]" if "diff_low" in ci else ""
        lines.append(f"| {method} | " + " | ".join(cells) + f" | [{ci['low']:.1f}, {ci['high']:.1f}] | {diff} | {seconds:.0f} s |")
    weighted = [m for m in methods if any("weight_wrong" in r for r in results if r["method"] == m)]
    if weighted:
        lines += ["", "What the learned weighting does to the training pairs (final model and weighting net, mean over seeds):", "",
                  "| method | training pairs | mean weight | mean loss |", "|---|---|---|---|"]
        for method in weighted:
            rows = [r for r in results if r["method"] == method]
            for kind in ("wrong", "correct"):
                weight, loss = (statistics.mean(r[f"{q}_{kind}"] for r in rows) for q in ("weight", "loss"))
                lines.append(f"| {method} | {kind} augmented captions | {weight:.3f} | {loss:.3f} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps({"runs": results, "intervals": intervals}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
