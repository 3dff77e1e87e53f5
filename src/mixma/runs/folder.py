"""Run folders: where a training run keeps its config, checkpoints and base model, and how they
are found and read again, from any working directory and after the folder has moved.

    RUN/config.yaml                 the resolved configuration (`kind` names the trainer)
    RUN/base/                       the model training starts from (a from-scratch or copied base)
    RUN/checkpoints/step-00000120/  trained.safetensors, training state, config.yaml
    RUN/checkpoints/latest          the name of the newest complete checkpoint
    RUN/best/                       the checkpoint with the best evaluation metric
    RUN/metrics.jsonl, RUN/summary.json

Paths inside a run's config that point into the run folder (the base model) are stored relative
to the run folder, so a run can be moved, copied to another machine, or opened from anywhere;
other local paths are stored absolute; anything else is taken as a Hugging Face hub id.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from mixma.config import read_yaml
from mixma.errors import MixmaError

CONFIG = "config.yaml"
TRAINED = "trained.safetensors"
BASE = "base"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class RunError(MixmaError):
    """A run folder or checkpoint is missing, incomplete, or does not fit its model."""


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / TRAINED).exists() else None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder to load: a run folder's best checkpoint, else its latest; a
    checkpoint folder itself.

    Raises:
        RunError: nothing loadable at `path`.
    """
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such run or checkpoint folder")
    if (path / "best" / TRAINED).exists():
        return path / "best"
    if (path / "checkpoints").is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise RunError(f"{path}: the run has no complete checkpoint yet")
        return latest
    if (path / TRAINED).exists():
        return path
    raise RunError(f"{path}: not a run folder or a checkpoint folder (no {TRAINED})")


def run_root(checkpoint: Path) -> Path:
    """The run folder a checkpoint folder belongs to (`RUN/best`, `RUN/checkpoints/step-N`)."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent
    if (checkpoint.parent / CONFIG).exists() and checkpoint.name == "best":
        return checkpoint.parent
    return checkpoint


def read_run_config(path: str | os.PathLike) -> dict:
    """The raw `config.yaml` of a run or checkpoint folder (the checkpoint's own when it has one)."""
    path = Path(path)
    for candidate in (path / CONFIG, path / "best" / CONFIG):
        if candidate.exists():
            return read_yaml(candidate)
    raise RunError(f"{path}: no {CONFIG}: not a training run or checkpoint folder")


def run_kind(path: str | os.PathLike) -> str:
    """Which trainer wrote a run (`kind` in its config)."""
    kind = read_run_config(path).get("kind")
    if not isinstance(kind, str):
        raise RunError(f"{path}: its {CONFIG} does not say which trainer wrote it (no 'kind')")
    return kind


def store_source(value: str | None, root: Path) -> str | None:
    """How a model source is written into a run's config: relative to the run folder when inside
    it, absolute when it is another local path, unchanged otherwise (a hub id)."""
    if value is None or not Path(value).exists():
        return value
    absolute = Path(os.path.abspath(value))
    try:
        return absolute.relative_to(Path(os.path.abspath(root))).as_posix()
    except ValueError:
        return str(absolute)


def resolve_source(value: str | None, root: Path, what: str) -> str | None:
    """A stored model source as a loadable path or hub id.

    Raises:
        RunError: neither a local folder nor plausible as a hub id.
    """
    if value is None:
        return None
    path = Path(value)
    for candidate in [path] if path.is_absolute() else [Path(root) / path, path]:
        if candidate.exists():
            return os.path.abspath(candidate)
    if _HUB_ID.match(value):
        return value
    raise RunError(f"{what} {value!r}: no such folder (looked in {root}), and not a Hugging Face hub id (owner/name)")


def read_trained(path: str | os.PathLike, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """A checkpoint's trained tensors: all of them, or only `names` (read lazily, nothing else).

    Raises:
        KeyError: if a name is not in the checkpoint.
    """
    file = Path(path) / TRAINED
    if names is None:
        return load_file(str(file))
    with safe_open(str(file), framework="pt") as f:
        missing = sorted(set(names) - set(f.keys()))
        if missing:
            raise KeyError(f"{file} has no tensors {missing}")
        return {name: f.get_tensor(name) for name in names}


def fit_problems(own: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Why `tensors` cannot be copied into `own` (names it lacks, shapes that differ), as phrases."""
    unknown = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(tensors) & set(own) if tensors[k].shape != own[k].shape)
    problems = []
    if unknown:
        problems.append(f"not in the model: {', '.join(unknown[:5])}" + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""))
    if wrong:
        problems.append("of another shape: " + ", ".join(f"{k} {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:5]))
    return problems


def load_trained_into(model: nn.Module, checkpoint: str | os.PathLike, *, skip_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Copy a checkpoint's trained tensors into `model`; every one must be one of the model's
    parameters or buffers, with the same shape. Returns the names loaded.

    Tensors whose names start with one of `skip_prefixes` (e.g. a loss's logit scale) are skipped.

    Raises:
        RunError: a tensor the model does not have, or of another shape (the message names them).
    """
    tensors = {k: v for k, v in read_trained(checkpoint).items() if not k.startswith(skip_prefixes)}
    problems = fit_problems(model.state_dict(), tensors)
    if problems:
        raise RunError(f"{checkpoint}: the trained tensors do not fit the model ({'; '.join(problems)})")
    model.load_state_dict(tensors, strict=False)
    return sorted(tensors)


def save_folder(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Fill a folder atomically: `write(tmp)` fills a temporary folder beside `target`, which
    then replaces `target`; a failure or a kill leaves the old `target` as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
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
    return target
