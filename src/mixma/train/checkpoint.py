"""Checkpoints: written atomically, resumed exactly.

A run directory holds:

    config.yaml              the resolved configuration
    checkpoints/step-00000120/
        trained.safetensors  the trained tensors (parameters that require grad, and any extra
                             trained tensors such as a loss's logit scale)
        training_state.pt    optimizer and other stateful parts, RNG states, progress
        config.yaml
    checkpoints/latest       the name of the newest complete checkpoint
    best/                    the checkpoint with the best evaluation metric, plus metrics.json
    metrics.jsonl            one line per log step and per evaluation

Each checkpoint directory is written under a temporary name and renamed into place, and `latest`
is replaced atomically after it: a run killed at any moment leaves the previous checkpoint intact
and resumable. Resuming restores the optimizer, the Python, NumPy and torch random states and the
position in the epoch, so the continued run is the one that would have happened.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mixma._atomic import write_json, write_text

TRAINED = "trained.safetensors"
STATE = "training_state.pt"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_dir(target: Path, trained: dict[str, torch.Tensor], state: dict[str, Any] | None, config_text: str,
               metrics: dict | None = None) -> None:
    """Write a checkpoint directory under a temporary name, then rename it to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        # clone: tied or shared storage cannot be saved by safetensors, and the copy is consistent
        save_file({k: v.detach().to("cpu").clone().contiguous() for k, v in trained.items()}, str(tmp / TRAINED))
        if state is not None:
            torch.save(state, tmp / STATE)
        (tmp / "config.yaml").write_text(config_text)
        if metrics is not None:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        for f in tmp.iterdir():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(run_dir: str | os.PathLike, step: int, trained: dict[str, torch.Tensor], state: dict[str, Any],
                    config_text: str, keep: int = 2) -> Path:
    """Write `checkpoints/step-<step>` and point `checkpoints/latest` at it; keep the newest `keep`."""
    folder = Path(run_dir) / "checkpoints"
    target = folder / f"step-{step:08d}"
    _write_dir(target, trained, {**state, "rng": rng_state()}, config_text)
    write_text(folder / "latest", target.name + "\n")
    steps = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for stale in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(stale, ignore_errors=True)
    return target


def save_best(run_dir: str | os.PathLike, trained: dict[str, torch.Tensor], config_text: str, metrics: dict) -> Path:
    target = Path(run_dir) / "best"
    _write_dir(target, trained, None, config_text, metrics)
    return target


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / STATE).exists() else None


def load_trained(path: str | os.PathLike, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """A checkpoint's trained tensors: all of them, or only `names` (read lazily, nothing else).

    Raises:
        KeyError: if a name is not in the checkpoint.
    """
    if names is None:
        return load_file(str(Path(path) / TRAINED))
    with safe_open(str(Path(path) / TRAINED), framework="pt") as f:
        missing = sorted(set(names) - set(f.keys()))
        if missing:
            raise KeyError(f"{Path(path) / TRAINED} has no tensors {missing}")
        return {name: f.get_tensor(name) for name in names}


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    return torch.load(Path(path) / STATE, weights_only=False)


def append_metrics(run_dir: str | os.PathLike, entry: dict) -> None:
    with open(Path(run_dir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def write_summary(run_dir: str | os.PathLike, summary: dict) -> None:
    write_json(Path(run_dir) / "summary.json", summary)
