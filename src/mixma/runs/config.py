"""The sections every run config shares: the optimiser and the run itself (how long, where,
on which device). `mixma.config` turns YAML files and `--set` overrides into these dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay (MA-LMM's defaults)."""

    lr: float = 1e-4
    weight_decay: float = 0.05  # on weights only: not on biases, norms or embedding tables with ndim < 2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 1000  # optimizer steps of linear warmup from warmup_lr
    warmup_lr: float = 1e-8
    min_lr: float = 0.0  # the cosine decays from lr to min_lr at the last step
    max_grad_norm: float | None = None  # clip gradients to this norm (None: no clipping)
    accumulate: int = 1  # micro-batches per optimizer step

    def __post_init__(self):
        if self.lr <= 0 or self.accumulate < 1 or self.warmup_steps < 0:
            raise ValueError("need lr > 0, accumulate >= 1 and warmup_steps >= 0")


@dataclass
class RunConfig:
    """How long and where to train."""

    output_dir: str = "runs/latest"
    epochs: int = 5
    batch_size: int = 8  # per process, per micro-batch
    eval_batch_size: int = 16
    seed: int = 42
    num_workers: int = 0  # data loading processes per training process
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None  # torch intra-op threads per process (None: torch's default); on a
    # busy CPU, 1 thread avoids OpenMP threads spinning at every barrier for small ops
    amp: Literal["no", "bf16", "fp16"] = "no"  # fp16 only on CUDA, with a gradient scaler
    log_every: int = 10  # optimizer steps between log lines
    eval_every: int = 1  # epochs between evaluations (0: only at the end)
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: at the end of each epoch)
    keep_checkpoints: int = 2  # most recent checkpoints kept (the best is kept separately)
    max_steps: int | None = None  # stop after this many optimizer steps (for smoke tests)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1 or self.keep_checkpoints < 1:
            raise ValueError("epochs, batch_size, eval_batch_size and keep_checkpoints must be >= 1")
