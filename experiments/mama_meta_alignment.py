"""Which training pairs does the bi-level (meta-weighting) objective want to up-weight?

Meta-Weight-Net's update of the weighting net follows, to first order, the derivative of the clean
meta loss after one virtual SGD step with respect to each training pair's weight:

    ∂ L_meta(w − α Σ_j ε_j ∇ℓ_j / n) / ∂ε_i  =  −(α / n) · ∇L_meta · ∇ℓ_i

so a pair gets more weight exactly when its gradient `∇ℓ_i` aligns with the meta-set gradient.
This script measures that alignment (cosine and dot product, over the trainable parameters) for
the pairs whose augmented caption is wrong and for those whose caption is right, on a run's initial
model (`base/`) and on its final checkpoint: if the wrong pairs align as well as or better than the
right ones, no weighting net trained by this objective can learn to down-weight them.

    python experiments/mama_meta_alignment.py runs/mama-noisy/InfoNCE-seed0 [--batches 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def alignment(run: Path, which: str, batches: int, seed: int) -> dict[str, float]:
    from mixma.data.annotations import read_records
    from mixma.data.frame_cache import FrameLoader, FrameSpec
    from mixma.data.transforms import TransformConfig, VideoTransform
    from mixma.losses.contrastive import AngularMarginConfig, AngularMarginLoss
    from mixma.models.dual_encoder import DualEncoder
    from mixma.train import checkpoint as ckpt
    from mixma.train.mama import load_trained_mama

    model, tokenizer, config = load_trained_mama(ckpt.latest_checkpoint(run))
    scale = ckpt.load_trained(ckpt.latest_checkpoint(run))["loss.log_scale"]
    if which == "initial":
        model = DualEncoder.from_pretrained(run / "base")
        scale = torch.log(torch.tensor(float(config.loss.init_scale)))
    model.train()
    data = config.data
    criterion = AngularMarginLoss(AngularMarginConfig(margin=config.loss.margin, max_scale=config.loss.max_scale, gather=False))
    with torch.no_grad():
        criterion.log_scale.copy_(scale)
    params = [p for p in model.parameters() if p.requires_grad]
    frames = FrameLoader(data.cache_dir or Path(data.root) / ".frame_cache")
    spec = FrameSpec(data.num_frames, data.train_strategy, data.decode_size or data.image_size, dict(data.mixed))
    transform = VideoTransform(TransformConfig(size=data.image_size), train=False)
    rng = np.random.default_rng(seed)

    def losses(records, captions):
        pixels = torch.stack([transform(frames.load(r.video_path(data.root), spec)) for r in records])
        tok = tokenizer(captions, padding=True, truncation=True, max_length=data.max_text_len, return_tensors="pt")
        out = model(pixel_values=pixels, input_ids=tok.input_ids, attention_mask=tok.attention_mask)
        return criterion(out.video_emb, out.text_emb)  # [n]

    def flat_grad(loss):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])

    train = [r for r in read_records(Path(data.root) / f"{data.train_split}.jsonl") if r.augmented]
    meta = read_records(Path(data.root) / f"{config.loss.meta_split}.jsonl")
    stats = {True: ([], []), False: ([], [])}  # caption correct? → (cosines, dots)
    pair_losses, pair_dots, corrects = [], [], []  # every pair, for the loss ↔ alignment correlation
    for _ in range(batches):
        chosen = [train[i] for i in rng.choice(len(train), config.run.batch_size, replace=False)]
        picks = [int(rng.integers(len(r.augmented))) for r in chosen]
        meta_chosen = [meta[i] for i in rng.choice(len(meta), config.loss.meta_batch_size, replace=False)]
        meta_grad = flat_grad(losses(meta_chosen, [str(rng.choice(r.captions)) for r in meta_chosen]).mean())
        per_pair = losses(chosen, [r.augmented[k] for r, k in zip(chosen, picks)])
        for i, (record, k) in enumerate(zip(chosen, picks)):
            g = flat_grad(per_pair[i])
            correct = record.meta["augmented_correct"][k]
            corrects.append(correct)
            stats[correct][0].append(float(torch.nn.functional.cosine_similarity(g, meta_grad, dim=0)))
            stats[correct][1].append(float(g @ meta_grad))
            pair_losses.append(float(per_pair[i]))
            pair_dots.append(stats[correct][1][-1])
    # A weighting net sees only the loss: what it can learn follows how alignment varies with loss
    # (Spearman: rank correlation, as the net may be any monotone function of the loss).
    ranks = [np.argsort(np.argsort(v)) for v in (pair_losses, pair_dots)]
    return {f"{stat}_{kind}": float(np.mean(stats[ok][j])) for kind, ok in (("wrong", False), ("correct", True))
            for j, stat in enumerate(("cosine", "dot"))} | {
        "loss_wrong": float(np.mean([l for l, ok in zip(pair_losses, corrects) if not ok])),
        "loss_correct": float(np.mean([l for l, ok in zip(pair_losses, corrects) if ok])),
        "spearman_loss_dot": float(np.corrcoef(*ranks)[0, 1]),
        "pairs_wrong": len(stats[False][0]), "pairs_correct": len(stats[True][0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="MAMA run folders (with base/ and checkpoints/)")
    parser.add_argument("--batches", type=int, default=12, help="training batches sampled per model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rows = []
    for run in args.runs:
        for which in ("initial", "final"):
            result = alignment(run, which, args.batches, args.seed)
            rows.append({"run": run.name, "model": which} | result)
            print(json.dumps(rows[-1]))
    print("\n| run | model | cosine, wrong pairs | cosine, correct pairs | dot, wrong pairs | dot, correct pairs "
          "| loss, wrong / correct | Spearman(loss, dot) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['model']} | {r['cosine_wrong']:.4f} | {r['cosine_correct']:.4f} | "
              f"{r['dot_wrong']:.3g} | {r['dot_correct']:.3g} | {r['loss_wrong']:.2f} / {r['loss_correct']:.2f} "
              f"| {r['spearman_loss_dot']:+.2f} |")


if __name__ == "__main__":
    main()
