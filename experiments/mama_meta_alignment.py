"""Which training pairs does the bi-level (meta-weighting) objective want to up-weight?

Meta-Weight-Net's update of the weighting net follows, to first order, the derivative of the clean
meta loss after one virtual SGD step with respect to each training pair's weight:

    ∂ L_meta(w − α Σ_j ε_j ∇ℓ_j / n) / ∂ε_i  =  −(α / n) · ∇L_meta · ∇ℓ_i

so a pair gets more weight exactly when its gradient `∇ℓ_i` aligns with the meta-set gradient.
This script measures that alignment (cosine and dot product, over the trainable parameters) for
the pairs whose augmented caption is wrong and for those whose caption is right, on a run's initial
model (`base/`) and on its final checkpoint, and how alignment varies with the loss, the only
thing a Meta-Weight-Net weighting net sees: where alignment rises with loss, the objective pushes
the net to give high-loss pairs, wrong ones included, more weight. It also reports the weights
`loss.meta.method=direct` would give the pairs (the clipped dot products, rescaled to average 1 per
batch, as in `mixma.losses.weighting`) and their effective batch size.

    python experiments/mama_meta_alignment.py runs/mama-noisy/InfoNCE-seed{0,1,2} [--batches 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def alignment(run: Path, which: str, batches: int, seed: int) -> dict[str, float]:
    """Gradient alignment of wrong and correct training pairs with the meta gradient.

    `which` is "initial" (the run's `base/` model and initial logit scale) or "final" (its latest
    checkpoint). Each of `batches` rounds draws a training batch (each video with a random one of
    its augmented captions) and a meta batch (each video with one of its clean reference captions),
    as training does, and compares every pair's loss gradient with the meta batch's mean-loss
    gradient over the trainable parameters. Returns the mean cosine, dot product, direct weight and
    loss of the wrong and of the correct pairs, and the Spearman correlation of loss and dot over
    all pairs.
    """
    from transformers import AutoTokenizer

    from mixma.data.annotations import read_records
    from mixma.data.section import video_input
    from mixma.models.dual_encoder import DualEncoder
    from mixma.runs.folder import latest_checkpoint
    from mixma.runs.mama import load_mama_run, load_trained_loss, make_criterion, read_mama_run

    latest = latest_checkpoint(run)
    if which == "final":
        trained = load_mama_run(latest)
        model, tokenizer, config = trained.model, trained.tokenizer, trained.config
        criterion = load_trained_loss(latest)
    else:  # the model and loss scale training started from
        config = read_mama_run(latest)
        model, tokenizer = DualEncoder.from_pretrained(run / "base"), AutoTokenizer.from_pretrained(run / "base")
        criterion = make_criterion(config.loss, gather=False)
    model.train()
    data = config.data
    params = [p for p in model.parameters() if p.requires_grad]
    video = video_input(data, data.train_strategy)  # training's sampling, no augmentation
    rng = np.random.default_rng(seed)

    def losses(records, captions):
        pixels = torch.stack([video(r.video_path(data.root)) for r in records])
        tok = tokenizer(captions, padding=True, truncation=True, max_length=data.max_text_len, return_tensors="pt")
        out = model(pixel_values=pixels, input_ids=tok.input_ids, attention_mask=tok.attention_mask)
        return criterion(out.video_emb, out.text_emb)  # [n]

    def flat_grad(loss):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])

    train = [r for r in read_records(Path(data.root) / f"{data.train_split}.jsonl") if r.augmented]
    meta = read_records(Path(data.root) / f"{config.loss.meta_split}.jsonl")
    pairs = []  # (caption correct?, loss, cosine, dot, direct weight) per training pair
    sizes = []  # effective batch size of the direct weights, per batch
    for _ in range(batches):
        chosen = [train[i] for i in rng.choice(len(train), config.run.batch_size, replace=False)]
        picks = [int(rng.integers(len(r.augmented))) for r in chosen]
        meta_chosen = [meta[i] for i in rng.choice(len(meta), config.loss.meta_batch_size, replace=False)]
        meta_grad = flat_grad(losses(meta_chosen, [str(rng.choice(r.captions)) for r in meta_chosen]).mean())
        per_pair = losses(chosen, [r.augmented[k] for r, k in zip(chosen, picks)])
        batch = []
        for i, (record, k) in enumerate(zip(chosen, picks)):
            g = flat_grad(per_pair[i])
            batch.append((record.meta["augmented_correct"][k], float(per_pair[i]),
                          float(torch.nn.functional.cosine_similarity(g, meta_grad, dim=0)), float(g @ meta_grad)))
        clipped = np.maximum([row[3] for row in batch], 0.0)
        direct = clipped * (len(clipped) / clipped.sum()) if clipped.sum() > 0 else clipped
        pairs += [(*row, w) for row, w in zip(batch, direct)]
        # Kish's effective sample size, as a fraction of the batch: 1 for equal weights, 1/n for one pair
        sizes.append(direct.sum() ** 2 / (direct**2).sum() / len(direct) if direct.sum() > 0 else 0.0)
    correct, loss, cosine, dot, direct = (np.array(column) for column in zip(*pairs))
    # A weighting net sees only the loss: what it can learn follows how alignment varies with loss
    # (Spearman: rank correlation, as the net may be any monotone function of the loss).
    loss_rank, dot_rank = np.argsort(np.argsort(loss)), np.argsort(np.argsort(dot))
    result = {"spearman_loss_dot": float(np.corrcoef(loss_rank, dot_rank)[0, 1]),
              "direct_effective_size": float(np.mean(sizes))}
    for kind, mask in (("wrong", ~correct), ("correct", correct)):
        result |= {f"cosine_{kind}": float(cosine[mask].mean()), f"dot_{kind}": float(dot[mask].mean()),
                   f"direct_{kind}": float(direct[mask].mean()), f"loss_{kind}": float(loss[mask].mean()),
                   f"pairs_{kind}": int(mask.sum())}
    return result


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
          "| direct weight, wrong / correct | direct: effective batch | loss, wrong / correct | Spearman(loss, dot) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['model']} | {r['cosine_wrong']:.4f} | {r['cosine_correct']:.4f} | "
              f"{r['dot_wrong']:.3g} | {r['dot_correct']:.3g} | {r['direct_wrong']:.2f} / {r['direct_correct']:.2f} "
              f"| {r['direct_effective_size']:.0%} "
              f"| {r['loss_wrong']:.2f} / {r['loss_correct']:.2f} | {r['spearman_loss_dot']:+.2f} |")


if __name__ == "__main__":
    main()
