"""AdamW parameter groups and the learning-rate schedule.

Weight decay applies to weight matrices only: parameters with fewer than two dimensions
(biases, norm scales) and names containing "bias", "norm", "ln" or a model's own no-decay list
(learned tokens, position tables) are exempt, as in LAVIS. The schedule is a pure function of
the optimizer step, so resuming needs nothing but the step count: a linear warmup from
`warmup_lr` to `lr` over `warmup_steps`, then a cosine from `lr` to `min_lr` at the last step.
(LAVIS steps its cosine once per epoch; per step is the smooth version of the same curve.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import torch
from torch import nn

from mixma.runs.config import OptimConfig

_NO_DECAY = re.compile(r"(^|\.)(bias|[^.]*norm[^.]*|ln[^.]*|LayerNorm)(\.|$)", re.IGNORECASE)


def parameter_groups(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float, no_decay: set[str] = frozenset()):
    """Two AdamW groups, with and without weight decay (trainable parameters only)."""
    decay, plain = [], []
    for name, param in named:
        if not param.requires_grad:
            continue
        exempt = param.ndim < 2 or bool(_NO_DECAY.search(name)) or name in no_decay
        (plain if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def build_optimizer(named: Iterable[tuple[str, nn.Parameter]], config: OptimConfig, no_decay: set[str] = frozenset()):
    groups = [g for g in parameter_groups(named, config.weight_decay, no_decay) if g["params"]]
    if not groups:
        raise ValueError("nothing to train: no parameter requires a gradient")
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def learning_rate(step: int, total_steps: int, config: OptimConfig) -> float:
    """The learning rate for optimizer step `step` (0-based) of `total_steps`."""
    if step < config.warmup_steps:
        return config.warmup_lr + (config.lr - config.warmup_lr) * step / max(1, config.warmup_steps)
    decay_steps = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
