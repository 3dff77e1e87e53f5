"""Cost of a meta-weighted training step against a plain step, on a small dual encoder stand-in.

Model: two MLP towers (video features 768 → 1024 → 256, text features 512 → 1024 → 256) and the
angular-margin loss with its learnable scale; batch 64, meta batch 64, AdamW. Baseline ("plain"):
per-sample losses → mean → backward → optimizer step. Ours: `MetaWeighting.step` (virtual step,
second-order update of the weighting net, weighted loss) → backward → optimizer step, with
`meta_interval` 1 (the full bi-level step every call) and k (amortised).

Time per step is the median over `--rounds` rounds of `--steps` steps, the variants interleaved
so that load from other processes hits them alike.

Run: `.venv/bin/python benchmarks/bench_meta_step.py`
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from mixma.losses import AngularMarginConfig, AngularMarginLoss, MetaWeighting, MetaWeightingConfig, functional_loss

VIDEO_DIM, TEXT_DIM, HIDDEN, EMBED = 768, 512, 1024, 256


class DualEncoder(nn.Module):
    """Two MLP towers and the loss: forward gives per-sample losses `[B]`."""

    def __init__(self):
        super().__init__()
        self.video = nn.Sequential(nn.Linear(VIDEO_DIM, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, EMBED))
        self.text = nn.Sequential(nn.Linear(TEXT_DIM, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, EMBED))
        self.loss = AngularMarginLoss(AngularMarginConfig(margin=0.1))

    def forward(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.loss(self.video(video), self.text(text))


def batch(size: int, g: torch.Generator):
    return (torch.randn(size, VIDEO_DIM, generator=g), torch.randn(size, TEXT_DIM, generator=g)), None


def runner(variant: str, batch_size: int, interval: int):
    """A closure doing one training step of `variant` ("plain" or "meta")."""
    torch.manual_seed(0)
    model = DualEncoder()
    lr = 1e-4
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    weighting = MetaWeighting(MetaWeightingConfig(meta_interval=interval))
    loss_fn = functional_loss(model, lambda losses, _: losses)
    g = torch.Generator().manual_seed(1)

    def step() -> None:
        train = batch(batch_size, g)
        if variant == "plain":
            loss = model(*train[0]).mean()
        else:
            loss = weighting.step(model, loss_fn, train, batch(batch_size, g), lr).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.loss.clamp_()

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round (a multiple of --interval)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--interval", type=int, default=5, help="meta_interval of the amortised variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    variants = {
        "plain": runner("plain", args.batch, 1),
        "meta k=1": runner("meta", args.batch, 1),
        f"meta k={args.interval}": runner("meta", args.batch, args.interval),
    }
    for step in variants.values():  # warm-up
        for _ in range(args.interval):
            step()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps)

    print(f"dual encoder stand-in, batch {args.batch}, {torch.get_num_threads()} threads; median of {args.rounds} rounds x {args.steps} steps")
    plain = statistics.median(times["plain"])
    for name, values in times.items():
        median = statistics.median(values)
        spread = (max(values) - min(values)) / median
        print(f"{name:12s}: {1000 * median:7.2f} ms/step (spread {100 * spread:3.0f}%)  ratio vs plain: {median / plain:.2f}x")
    print("goal: meta k=1 <= 3x plain")


if __name__ == "__main__":
    main()
