"""Writing a run's checkpoints: atomically, and so that resuming continues exactly.

A checkpoint folder (`RUN/checkpoints/step-00000120/`, layout in `mixma.runs.folder`) holds

    trained.safetensors         the trained tensors (parameters that require grad, and any extra
                                trained tensors such as a loss's logit scale)
    training_state.json         the optimiser, scaler and stateful parts, random generators,
    training_state.safetensors  progress (`RunState`): see `mixma.train.state` (no pickles)
    config.yaml

Each checkpoint folder is written under a temporary name and renamed into place, and
`checkpoints/latest` is replaced atomically after it: a run killed at any moment leaves the
previous checkpoint intact and resumable. Resuming restores the optimizer, the Python, NumPy and
torch random states and the position in the epoch, so the continued run is the one that would
have happened. `best/` holds the trained tensors of the best evaluation, plus its metrics.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from mixma._atomic import write_json, write_text
from mixma.runs.folder import CONFIG, TRAINED, latest_checkpoint, save_folder
from mixma.train.state import load_state, rng_state, save_state

__all__ = ["save_checkpoint", "save_best", "latest_checkpoint", "load_state", "append_metrics", "write_summary"]


def _write(folder: Path, trained: dict[str, torch.Tensor], config_text: str, state: dict | None, metrics: dict | None) -> None:
    # clone: tied or shared storage cannot be saved by safetensors, and the copy is consistent
    save_file({k: v.detach().to("cpu").clone().contiguous() for k, v in trained.items()}, str(folder / TRAINED))
    if state is not None:
        save_state(folder, state)
    (folder / CONFIG).write_text(config_text)
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def save_checkpoint(run_dir: str | os.PathLike, step: int, trained: dict[str, torch.Tensor], state: dict[str, Any],
                    config_text: str, keep: int = 2) -> Path:
    """Write `checkpoints/step-<step>` (with the random generators' state added to `state`) and
    point `checkpoints/latest` at it; keep the newest `keep`."""
    folder = Path(run_dir) / "checkpoints"
    target = save_folder(folder / f"step-{step:08d}",
                         lambda tmp: _write(tmp, trained, config_text, {**state, "rng": rng_state()}, None))
    write_text(folder / "latest", target.name + "\n")
    steps = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for stale in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(stale, ignore_errors=True)
    return target


def save_best(run_dir: str | os.PathLike, trained: dict[str, torch.Tensor], config_text: str, metrics: dict) -> Path:
    return save_folder(Path(run_dir) / "best", lambda tmp: _write(tmp, trained, config_text, None, metrics))


def append_metrics(run_dir: str | os.PathLike, entry: dict) -> None:
    with open(Path(run_dir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def write_summary(run_dir: str | os.PathLike, summary: dict) -> None:
    write_json(Path(run_dir) / "summary.json", summary)
