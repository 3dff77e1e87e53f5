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
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mixma.errors import MixmaError
from mixma.train import checkpoint as ckpt
from mixma.train.config import OptimConfig, RunConfig
from mixma.train.distributed import Distributed, average_gradients, barrier, broadcast_parameters, mean_over_ranks
from mixma.train.optim import build_optimizer, learning_rate, set_learning_rate


@dataclass
class TrainingJob:
    """What to train and how to measure it.

    Attributes:
        model: the module; its parameters that require grad are trained.
        dataset: training samples; `set_epoch(epoch)` is called before each epoch if present.
        collate: list of items → batch.
        loss: `(batch, step, lr) -> scalar loss` (the batch is already on the device; `lr` is
            this step's learning rate, which MAMA's meta step needs).
        evaluate: `() -> metrics`, run on rank 0 (None: no evaluation).
        metric: the metric whose highest value picks the best checkpoint.
        extra_trainable: further trained tensors outside the model (e.g. a loss's logit scale).
        stateful: objects with `state_dict`/`load_state_dict` to checkpoint (e.g. meta-weighting).
        after_step: called after each optimizer step (e.g. to clamp a logit scale).
        no_decay: parameter names exempt from weight decay beyond the default rule.
    """

    model: nn.Module
    dataset: Dataset
    collate: Callable[[list], Any]
    loss: Callable[[Any, int, float], torch.Tensor]
    evaluate: Callable[[], dict[str, float]] | None = None
    metric: str | None = None
    extra_trainable: dict[str, nn.Parameter] = field(default_factory=dict)
    stateful: dict[str, Any] = field(default_factory=dict)
    after_step: Callable[[], None] | None = None
    no_decay: set[str] = field(default_factory=set)


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


def _autocast(amp: str, device: torch.device):
    if amp == "no":
        return contextlib.nullcontext()
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("run.amp fp16 needs a CUDA device; use bf16 on CPU")
        return torch.autocast("cuda", dtype=torch.float16)
    raise ValueError(f"run.amp must be no, bf16 or fp16, got {amp!r}")


class RunExists(MixmaError):
    pass


def check_output(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from; refuses to start over a run unless resuming.

    Call this before writing anything into `out`: a refused command must leave the run intact.
    """
    previous = ckpt.latest_checkpoint(out)
    if previous is not None and not resume:
        raise RunExists(f"{out} already holds a run (latest checkpoint {previous.name}); pass --resume to continue it or choose another output directory")
    return previous


def fit(job: TrainingJob, optim: OptimConfig, run: RunConfig, config_text: str, info: Distributed,
        *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train `job`; returns a summary (steps, last loss, best metric, evaluation history)."""
    out = Path(run.output_dir)
    previous = check_output(out, resume)
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(config_text)

    trained = {n: p for n, p in job.model.named_parameters() if p.requires_grad}
    trained.update(job.extra_trainable)
    optimizer = build_optimizer(trained.items(), optim, job.no_decay)
    scaler = torch.amp.GradScaler("cuda") if run.amp == "fp16" else None

    n = len(job.dataset)
    if n == 0:
        raise MixmaError("the training set is empty")
    micro_per_epoch = len(epoch_batches(n, run.batch_size, run.seed, 0, info.rank, info.world_size))
    steps_per_epoch = math.ceil(micro_per_epoch / optim.accumulate)
    total_steps = run.epochs * steps_per_epoch  # the schedule always spans the whole run
    stop_at = total_steps if run.max_steps is None else min(total_steps, run.max_steps)

    epoch, micro_done, step, best, history = 0, 0, 0, None, []
    earlier_seconds = 0.0  # training time of the processes this run resumes from
    started = time.perf_counter()

    def elapsed() -> float:
        return earlier_seconds + time.perf_counter() - started

    if previous is not None:
        for name, tensor in ckpt.load_trained(previous).items():
            with torch.no_grad():
                trained[name].copy_(tensor)
        state = ckpt.load_state(previous)
        optimizer.load_state_dict(state["optimizer"])
        for name, obj in job.stateful.items():
            obj.load_state_dict(state["stateful"][name])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        epoch, micro_done, step = state["epoch"], state["micro_done"], state["step"]
        best, history = state.get("best"), state.get("history", [])
        earlier_seconds = state.get("seconds", 0.0)
        ckpt.restore_rng(state["rng"])
    else:
        broadcast_parameters(list(trained.values()), info)

    def save(reason: str, pending_eval: bool = False) -> None:
        if info.is_main:
            state = {
                "optimizer": optimizer.state_dict(),
                "stateful": {name: obj.state_dict() for name, obj in job.stateful.items()},
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch, "micro_done": micro_done, "step": step, "best": best, "history": history,
                "reason": reason, "pending_eval": pending_eval, "seconds": elapsed(),
            }
            ckpt.save_checkpoint(out, step, trained, state, config_text, run.keep_checkpoints)
        barrier(info)

    last_evaluated = history[-1]["step"] if history else None  # the step of the latest evaluation

    def evaluate() -> None:
        nonlocal best, last_evaluated
        last_evaluated = step
        if job.evaluate is None:
            return
        metrics = None
        if info.is_main:
            job.model.eval()
            rng = ckpt.rng_state()  # evaluating must not shift training's random streams
            with torch.no_grad():
                metrics = job.evaluate()
            ckpt.restore_rng(rng)
            job.model.train()
            entry = {"epoch": epoch, "step": step, "eval": metrics}
            history.append(entry)
            ckpt.append_metrics(out, entry)
            value = metrics.get(job.metric) if job.metric else None
            if value is not None and (best is None or value > best["value"]):
                best = {"value": value, "metric": job.metric, "epoch": epoch, "step": step}
                ckpt.save_best(out, trained, config_text, {**metrics, "epoch": epoch, "step": step})
            if progress:
                tqdm.write(f"epoch {epoch} step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))))
        barrier(info)

    def evaluate_and_save(reason: str) -> None:
        if job.evaluate is not None:
            save(reason, pending_eval=True)  # the trained weights are on disk before evaluation runs
        evaluate()
        save(reason)

    if previous is not None and state.get("pending_eval"):  # evaluation failed or was cut short
        evaluate()
        save(state["reason"])

    loader_generator = torch.Generator()  # DataLoader seeds workers from this, not the global RNG
    job.model.train()
    bar = tqdm(total=stop_at, initial=step, desc="train", unit="step", disable=not (progress and info.is_main))
    last_loss = None
    stopped_early = False
    with bar:
        while epoch < run.epochs and step < stop_at:
            if hasattr(job.dataset, "set_epoch"):
                job.dataset.set_epoch(epoch)
            batches = epoch_batches(n, run.batch_size, run.seed, epoch, info.rank, info.world_size)
            groups = [batches[i : i + optim.accumulate] for i in range(0, len(batches), optim.accumulate)]
            loader = DataLoader(job.dataset, batch_sampler=batches[micro_done:], collate_fn=job.collate,
                                num_workers=run.num_workers, generator=loader_generator)
            running, count = 0.0, 0
            start = micro_done
            for offset, batch in enumerate(loader):
                mi = start + offset  # this micro-batch's position in the epoch
                group = groups[mi // optim.accumulate]
                batch = to_device(batch, info.device)
                lr = learning_rate(step, total_steps, optim)
                with _autocast(run.amp, info.device):
                    loss = job.loss(batch, step, lr)
                if not torch.isfinite(loss):
                    raise MixmaError(f"the loss became {loss.item()} at step {step}; lower optim.lr or enable clipping")
                scaled = loss / len(group)
                (scaler.scale(scaled) if scaler else scaled).backward()
                running += float(loss.detach())
                count += 1
                if (mi + 1) % optim.accumulate and mi + 1 < len(batches):
                    continue  # more micro-batches to accumulate
                average_gradients(list(trained.values()), info)
                if scaler:
                    scaler.unscale_(optimizer)
                if optim.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(list(trained.values()), optim.max_grad_norm)
                set_learning_rate(optimizer, lr)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if job.after_step:
                    job.after_step()
                step += 1
                micro_done = mi + 1
                last_loss = mean_over_ranks(running / count, info)
                running, count = 0.0, 0
                bar.update()
                bar.set_postfix(epoch=epoch, loss=f"{last_loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                if info.is_main and (step % run.log_every == 0 or step == stop_at):
                    ckpt.append_metrics(out, {"epoch": epoch, "step": step, "loss": last_loss,
                                              "lr": optimizer.param_groups[0]["lr"], "time": elapsed()})
                if run.checkpoint_every and step % run.checkpoint_every == 0:
                    save("interval")
                if step >= stop_at:
                    break
            if micro_done < len(batches):  # stopped inside the epoch (max_steps)
                stopped_early = True
                break
            epoch, micro_done = epoch + 1, 0
            if run.eval_every and epoch % run.eval_every == 0:
                evaluate_and_save("epoch")
            else:
                save("epoch")
    if stopped_early:
        save("stopped")
    elif last_evaluated != step:
        evaluate_and_save("final")
    summary = {"steps": step, "epochs": epoch, "last_loss": last_loss, "best": best, "history": history,
               "seconds": round(elapsed(), 1), "world_size": info.world_size}
    if info.is_main:
        ckpt.write_summary(out, summary)
    return summary
