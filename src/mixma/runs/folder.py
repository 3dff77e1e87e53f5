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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from mixma.config import apply_overrides, from_dict, read_yaml
from mixma.errors import MixmaError

CONFIG = "config.yaml"
TRAINED = "trained.safetensors"
BASE = "base"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class RunError(MixmaError):
    """A run folder or checkpoint is missing, incomplete, or does not fit its model."""


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder, or None.

    `checkpoints/latest` names it; should that folder be missing (a process killed while
    replacing it, see `save_folder`), the replaced copy is put back, or the newest complete
    `step-*` folder is taken.
    """
    folder = Path(run_dir) / "checkpoints"
    pointer = folder / "latest"
    if not pointer.exists():
        return None
    path = folder / pointer.read_text().strip()
    recover(path)
    if (path / TRAINED).exists():
        return path
    complete = sorted(p for p in folder.glob("step-*") if (p / TRAINED).exists())
    return complete[-1] if complete else None


def recover(target: Path) -> None:
    """Put back a folder that `save_folder` had moved aside when it was killed before moving the
    new one in (`.NAME.old-PID` beside a missing `NAME`)."""
    if target.exists() or not target.parent.is_dir():
        return
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:  # a complete folder: it was `target` until the kill
        os.replace(olds[-1], target)


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


def read_run(checkpoint: str | os.PathLike, cls: type, kind: str, overrides: list[str] = ()):
    """The config a checkpoint was trained with, as `cls`, with `section.key=value` overrides.

    Raises:
        RunError: a run of another trainer.
        ConfigError: an override that does not fit.
    """
    raw = read_run_config(checkpoint)
    if raw.get("kind") != kind:
        trainer = {"malmm": "an MA-LMM run (mixma train malmm)", "mama": "a MAMA run (mixma train mama)"}.get(kind, kind)
        raise RunError(f"{checkpoint} is a {raw.get('kind', 'unknown')} run; this needs {trainer}")
    return from_dict(cls, apply_overrides(raw, list(overrides)))


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


def resolve_source(value: str | None, root: Path, what: str, *, allow_cwd: bool = False) -> str | None:
    """A model source as a loadable path or hub id: an absolute path, a path relative to `root`
    (the run folder, as `store_source` writes it), or, with `allow_cwd` (a config being trained,
    whose paths the user typed), relative to the working directory. A loaded run never looks in
    the working directory, so a run folder means the same model wherever it is opened.

    Raises:
        RunError: neither a local folder nor plausible as a hub id.
    """
    if value is None:
        return None
    path = Path(value)
    for candidate in [path] if path.is_absolute() else [Path(root) / path, *([path] if allow_cwd else [])]:
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
    try:
        if names is None:
            return load_file(str(file))
        with safe_open(str(file), framework="pt") as f:
            missing = sorted(set(names) - set(f.keys()))
            if missing:
                raise KeyError(f"{file} has no tensors {missing}")
            return {name: f.get_tensor(name) for name in names}
    except SafetensorError as exc:
        raise RunError(f"{file}: damaged or not a safetensors file ({exc})") from None


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
    """Fill a folder atomically: `write(tmp)` fills a temporary folder beside `target`, which then
    replaces `target`. A failure leaves the old `target` as it was; a kill in the instant between
    moving the old one aside and the new one in leaves the old one as `.NAME.old-PID`, which
    `recover` (called here and by `latest_checkpoint`) puts back."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
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
