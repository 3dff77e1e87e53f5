"""The training loop shared by every model: one process or many, checkpoints, exact resume.

A task (MA-LMM, the MAMA models) describes what to train as a `TrainingJob`: the model, a dataset
with `set_epoch`, how to collate and to compute the loss of a batch, and how to evaluate. `fit`
does the rest:

- batches: each epoch's order is a permutation drawn from (seed, epoch), split across ranks
  and into micro-batches; the dataset's own randomness is seeded per sample. So the batches are
  a function of (seed, epoch, rank) alone, and a resumed run skips exactly the micro-batches done;
- optimisation: AdamW with warmup and cosine decay (`mixma.train.optim`), gradient accumulation
  over `accumulate` micro-batches, optional clipping and mixed precision;
- several processes (torchrun): parameters broadcast from rank 0, gradients averaged after every
  backward pass (`mixma.train.distributed`);
- evaluation on rank 0 every `eval_every` epochs, with the random streams saved and restored around
  it (how often a run evaluates never changes what it learns); the best checkpoint by `job.metric` is kept;
- checkpoints (`mixma.train.checkpoint`) every `checkpoint_every` steps or each epoch, and when
  stopping early; `resume=True` continues from the latest one. A checkpoint is written before each
  evaluation, so a failed evaluation loses no training; resuming runs it again.

Where the run stands is one value, `RunState` (`mixma.train.state`), saved with each checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mixma.errors import MixmaError
from mixma.runs.config import OptimConfig, RunConfig
from mixma._atomic import write_text
from mixma.runs.folder import RunError, fit_problems, read_trained
from mixma.train import checkpoint as ckpt
from mixma.train.distributed import (Distributed, average_gradients, barrier, broadcast_parameters, gather_objects,
                                    mean_over_ranks)
from mixma.train.optim import build_optimizer, learning_rate, set_learning_rate
from mixma.train.state import RunState, restore_rng, rng_state


@dataclass
class TrainingJob:
    """What to train and how to measure it.

    Attributes:
        model: the module; its parameters that require grad are trained.
        dataset: training samples; `set_epoch(epoch)` is called before each epoch if present.
        collate: list of items → batch.
        loss: `(batch, step, lr) -> scalar loss`; the batch (already on the device) is read-only;
            `lr` is this step's learning rate, which MAMA's meta step needs.
        evaluate: `() -> metrics`, run on rank 0 (None: no evaluation).
        metric: the metric whose highest value picks the best checkpoint.
        extra_trainable: further trained tensors outside the model (e.g. a loss's logit scale).
        stateful: objects with `state_dict`/`load_state_dict` to checkpoint (e.g. meta-weighting).
        after_step: called after each optimizer step (e.g. to clamp a logit scale).
        no_decay: parameter names exempt from weight decay beyond the default rule.
        summary: extra entries for the run's summary (e.g. what data was left out).
    """

    model: nn.Module
    dataset: Dataset
    collate: Callable[[list], Any]
    loss: Callable[[Mapping, int, float], torch.Tensor]
    evaluate: Callable[[], dict[str, float]] | None = None
    metric: str | None = None
    extra_trainable: dict[str, nn.Parameter] = field(default_factory=dict)
    stateful: dict[str, Any] = field(default_factory=dict)
    after_step: Callable[[], None] | None = None
    no_decay: set[str] = field(default_factory=set)
    summary: dict[str, Any] = field(default_factory=dict)


class RunExists(MixmaError):
    pass


@dataclass
class Training:
    """The live parts of a run: what trains and how, and the clock."""

    job: TrainingJob
    optim: OptimConfig
    run: RunConfig
    info: Distributed
    out: Path
    config_text: str
    trained: dict[str, nn.Parameter]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    total_steps: int  # the schedule always spans the whole run
    stop_at: int
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self, state: RunState) -> float:
        return state.seconds + time.perf_counter() - self.started


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This rank's micro-batches for an epoch: a seeded permutation, padded by wrapping so
    every rank gets the same number of samples, dealt round-robin, then chunked."""
    order = np.random.default_rng([seed, epoch, 7]).permutation(n)
    per_rank = math.ceil(n / world)
    order = np.resize(order, per_rank * world)  # wrap around to fill the last ranks
    mine = order[rank::world].tolist()
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def autocast(amp: str, device: torch.device):
    if amp == "no":
        return contextlib.nullcontext()
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if device.type != "cuda":
        raise MixmaError("run.amp fp16 needs a CUDA device; use bf16 on CPU")
    return torch.autocast("cuda", dtype=torch.float16)


def check_output(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from; refuses to start over a run unless resuming, and to resume
    where there is nothing to resume.

    Call this before writing anything into `out`: a refused command must leave the run intact.
    """
    previous = ckpt.latest_checkpoint(out)
    if previous is not None and not resume:
        raise RunExists(f"{out} already holds a run (latest checkpoint {previous.name}); pass --resume to continue it or choose another output directory")
    if previous is None and resume:
        raise RunExists(f"--resume: {out} holds no checkpoint to continue from; run without --resume to start a new run there")
    return previous


# what a resumed run may change: how long it goes on and how it is run, not what it learns
RESUMABLE_CHANGES = ("run.epochs", "run.max_steps", "run.eval_every", "run.log_every", "run.checkpoint_every",
                     "run.keep_checkpoints", "run.num_workers", "run.threads", "run.device", "run.output_dir")


def _dotted(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as `{"section.key": value}`."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    return {k: v for key, value in tree.items() for k, v in _dotted(value, f"{prefix}.{key}" if prefix else str(key)).items()}


def check_resume_config(previous: Path, config_text: str) -> None:
    """Refuse to resume `previous` with a config that changes what the run learns, naming the keys.

    Raises:
        RunError: settings other than `RESUMABLE_CHANGES` differ from the checkpoint's.
    """
    stored = previous / "config.yaml"
    if not stored.exists():
        return
    before, after = (_dotted(yaml.safe_load(text) or {}) for text in (stored.read_text(), config_text))
    changed = sorted(k for k in before.keys() | after.keys()
                     if before.get(k) != after.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        shown = ", ".join(f"{k} ({before.get(k)!r} -> {after.get(k)!r})" for k in changed[:5])
        raise RunError(f"--resume: the config changes {shown}{' ...' if len(changed) > 5 else ''} from the "
                       f"checkpoint {previous.name}; resume with the same settings or start a new run")


def prepare(job: TrainingJob, optim: OptimConfig, run: RunConfig, info: Distributed, config_text: str) -> Training:
    """The optimizer, scaler and schedule of a job."""
    trained = {n: p for n, p in job.model.named_parameters() if p.requires_grad}
    trained.update(job.extra_trainable)
    if len(job.dataset) == 0:
        raise MixmaError("the training set is empty")
    micro_per_epoch = len(epoch_batches(len(job.dataset), run.batch_size, run.seed, 0, info.rank, info.world_size))
    total = run.epochs * math.ceil(micro_per_epoch / optim.accumulate)
    return Training(job, optim, run, info, Path(run.output_dir), config_text, trained,
                    build_optimizer(trained.items(), optim, job.no_decay),
                    torch.amp.GradScaler("cuda") if run.amp == "fp16" else None,
                    total, total if run.max_steps is None else min(total, run.max_steps))


def restore(t: Training, previous: Path) -> RunState:
    """Load a checkpoint into the live run; returns where it stood.

    Raises:
        RunError: the checkpoint's trained tensors do not fit this job's.
    """
    tensors = read_trained(previous)
    problems = fit_problems(t.trained, tensors)
    if problems:
        raise RunError(f"{previous}: cannot resume: the trained tensors do not fit ({'; '.join(problems)})")
    with torch.no_grad():
        for name, tensor in tensors.items():
            t.trained[name].copy_(tensor)
    state = ckpt.load_state(previous)
    t.optimizer.load_state_dict(state["optimizer"])
    for name, obj in t.job.stateful.items():
        obj.load_state_dict(state["stateful"][name])
    if t.scaler is not None and state.get("scaler"):
        t.scaler.load_state_dict(state["scaler"])
    ranks = state.get("rng_ranks") or []
    # each rank its own streams; a checkpoint of another world size (or an older one): rank 0's
    restore_rng(ranks[t.info.rank] if len(ranks) == t.info.world_size else state["rng"])
    return RunState.from_json(state)


def save(t: Training, state: RunState, reason: str, pending_eval: bool = False) -> None:
    """Checkpoint the run (on rank 0; every rank waits), with every rank's random streams."""
    streams = gather_objects(rng_state(), t.info)  # ranks draw differently (dropout, augmentation)
    if t.info.is_main:
        state.reason, state.pending_eval = reason, pending_eval
        extra = {
            "optimizer": t.optimizer.state_dict(),
            "stateful": {name: obj.state_dict() for name, obj in t.job.stateful.items()},
            "scaler": t.scaler.state_dict() if t.scaler is not None else None,
            "rng_ranks": streams,
        }
        snapshot = {**state.to_json(), "seconds": t.elapsed(state), **extra}
        ckpt.save_checkpoint(t.out, state.step, t.trained, snapshot, t.config_text, t.run.keep_checkpoints)
    barrier(t.info)


def evaluate_and_record(t: Training, state: RunState, progress: bool) -> None:
    """Evaluate on rank 0 without touching training's random streams; record and keep the best."""
    state.evaluated_at = state.step
    if t.job.evaluate is None:
        return
    if t.info.is_main:
        model = t.job.model
        model.eval()
        streams = rng_state()  # evaluating must not shift training's random streams
        with torch.no_grad():
            metrics = t.job.evaluate()
        restore_rng(streams)
        model.train()
        entry = {"epoch": state.epoch, "step": state.step, "eval": metrics}
        state.history.append(entry)
        ckpt.append_metrics(t.out, entry)
        value = metrics.get(t.job.metric) if t.job.metric else None
        if value is not None and (state.best is None or value > state.best["value"]):
            state.best = {"value": value, "metric": t.job.metric, "epoch": state.epoch, "step": state.step}
            ckpt.save_best(t.out, t.trained, t.config_text, {**metrics, "epoch": state.epoch, "step": state.step})
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
            tqdm.write(f"epoch {state.epoch} step {state.step}: {shown}")
    barrier(t.info)


def evaluate_and_save(t: Training, state: RunState, reason: str, progress: bool) -> None:
    if t.job.evaluate is not None:
        save(t, state, reason, pending_eval=True)  # the trained weights are on disk before evaluation runs
    evaluate_and_record(t, state, progress)
    save(t, state, reason)


def optimizer_step(t: Training, lr: float) -> None:
    """Average gradients over ranks, unscale, clip, step with `lr`, and clear the gradients."""
    params = list(t.trained.values())
    average_gradients(params, t.info)
    if t.scaler:
        t.scaler.unscale_(t.optimizer)
    if t.optim.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(params, t.optim.max_grad_norm)
    set_learning_rate(t.optimizer, lr)
    if t.scaler:
        t.scaler.step(t.optimizer)
        t.scaler.update()
    else:
        t.optimizer.step()
    t.optimizer.zero_grad(set_to_none=True)
    if t.job.after_step:
        t.job.after_step()


def micro_step(t: Training, batch: Any, step: int, lr: float, share: int) -> float:
    """Forward and backward one micro-batch (its loss weighted by `1 / share`); returns the loss."""
    batch = to_device(batch, t.info.device)
    with autocast(t.run.amp, t.info.device):
        loss = t.job.loss(MappingProxyType(batch) if isinstance(batch, dict) else batch, step, lr)
    if not torch.isfinite(loss):
        raise MixmaError(f"the loss became {loss.item()} at step {step}; lower optim.lr or enable clipping")
    scaled = loss / share
    (t.scaler.scale(scaled) if t.scaler else scaled).backward()
    return float(loss.detach())


def log_step(t: Training, state: RunState, loss: float, bar: tqdm) -> None:
    lr = t.optimizer.param_groups[0]["lr"]
    bar.update()
    bar.set_postfix(epoch=state.epoch, loss=f"{loss:.4f}", lr=f"{lr:.2e}")
    if t.info.is_main and (state.step % t.run.log_every == 0 or state.step == t.stop_at):
        ckpt.append_metrics(t.out, {"epoch": state.epoch, "step": state.step, "loss": loss, "lr": lr, "time": t.elapsed(state)})


def train_epoch(t: Training, state: RunState, loader_seed: torch.Generator, bar: tqdm) -> float | None:
    """The rest of `state.epoch`, from `state.micro_done`; stops early at `stop_at`.
    Returns the last step's loss (averaged over ranks), None if no step ran."""
    job, accumulate = t.job, t.optim.accumulate
    if hasattr(job.dataset, "set_epoch"):
        job.dataset.set_epoch(state.epoch)
    batches = epoch_batches(len(job.dataset), t.run.batch_size, t.run.seed, state.epoch, t.info.rank, t.info.world_size)
    loader = DataLoader(job.dataset, batch_sampler=batches[state.micro_done:], collate_fn=job.collate,
                        num_workers=t.run.num_workers, generator=loader_seed)
    running, count, last = 0.0, 0, None
    for mi, batch in enumerate(loader, start=state.micro_done):  # mi: the micro-batch's place in the epoch
        group = min(accumulate, len(batches) - (mi // accumulate) * accumulate)  # micro-batches in its step
        lr = learning_rate(state.step, t.total_steps, t.optim)
        running += micro_step(t, batch, state.step, lr, group)
        count += 1
        if (mi + 1) % accumulate and mi + 1 < len(batches):
            continue  # more micro-batches to accumulate
        optimizer_step(t, lr)
        state.step, state.micro_done = state.step + 1, mi + 1
        last = mean_over_ranks(running / count, t.info)
        running, count = 0.0, 0
        log_step(t, state, last, bar)
        if t.run.checkpoint_every and state.step % t.run.checkpoint_every == 0:
            save(t, state, "interval")
        if state.step >= t.stop_at:
            break
    if state.micro_done == len(batches):
        state.epoch, state.micro_done = state.epoch + 1, 0
    return last


def fit(job: TrainingJob, optim: OptimConfig, run: RunConfig, config_text: str, info: Distributed,
        *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train `job`; returns a summary (steps, last loss, best metric, evaluation history)."""
    out = Path(run.output_dir)
    previous = check_output(out, resume)
    if previous is not None:
        check_resume_config(previous, config_text)
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", config_text)
    t = prepare(job, optim, run, info, config_text)
    if previous is not None:
        state = restore(t, previous)
        if state.pending_eval:  # evaluation failed or was cut short
            evaluate_and_record(t, state, progress)
            save(t, state, state.reason)
    else:
        state = RunState()
        broadcast_parameters(list(t.trained.values()), info)

    loader_seed = torch.Generator()  # DataLoader seeds workers from this, not the global RNG
    job.model.train()
    last_loss, stopped_early = None, False
    with tqdm(total=t.stop_at, initial=state.step, desc="train", unit="step", disable=not (progress and info.is_main)) as bar:
        while state.epoch < run.epochs and state.step < t.stop_at:
            epoch = state.epoch
            loss = train_epoch(t, state, loader_seed, bar)
            last_loss = last_loss if loss is None else loss
            if state.epoch == epoch:  # stopped inside the epoch (max_steps)
                stopped_early = True
                break
            if run.eval_every and state.epoch % run.eval_every == 0:
                evaluate_and_save(t, state, "epoch", progress)
            else:
                save(t, state, "epoch")
    if stopped_early:
        save(t, state, "stopped")
    elif state.evaluated_at != state.step:
        evaluate_and_save(t, state, "final", progress)
    summary = {"steps": state.step, "epochs": state.epoch, "last_loss": last_loss, "best": state.best,
               "history": state.history, "seconds": round(t.elapsed(state), 1), "world_size": info.world_size, **job.summary}
    if info.is_main:
        ckpt.write_summary(out, summary)
    return summary
