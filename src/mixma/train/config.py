"""Training configuration: YAML files into typed dataclasses, plus `key.path=value` overrides.

A config file has one section per dataclass field of the task's config (for example `model`,
`data`, `optim`, `run`). Unknown keys are errors that name the key and the section's known keys,
so a typo never silently falls back to a default. Overrides are written `optim.lr=3e-4` and
parsed as YAML values (`true`, `[1, 2]`, `null`, numbers, strings). The resolved configuration
(file, overrides and defaults together) is saved next to every checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mixma.errors import MixmaError

T = TypeVar("T")


class ConfigError(MixmaError):
    """A configuration file or override is invalid."""


@dataclasses.dataclass
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


@dataclasses.dataclass
class RunConfig:
    """How long and where to train."""

    output_dir: str = "runs/latest"
    epochs: int = 5
    batch_size: int = 8  # per process, per micro-batch
    eval_batch_size: int = 16
    seed: int = 42
    num_workers: int = 0  # data loading processes per training process
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch intra-op threads per process (None: torch's default); on a
    # busy CPU, 1 thread avoids OpenMP threads spinning at every barrier for small ops
    amp: str = "no"  # no | bf16 | fp16 (fp16 only on CUDA, with a gradient scaler)
    log_every: int = 10  # optimizer steps between log lines
    eval_every: int = 1  # epochs between evaluations (0: only at the end)
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: at the end of each epoch)
    keep_checkpoints: int = 2  # most recent checkpoints kept (the best is kept separately)
    max_steps: int | None = None  # stop after this many optimizer steps (for smoke tests)


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a type annotation; build nested dataclasses; coerce int → float."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"{where}: must be one of {', '.join(map(repr, typing.get_args(annotation)))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is float:
        if isinstance(value, str):  # PyYAML reads `1e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, checking every key and value."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - fields
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(fields))}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`["optim.lr=3e-4", "run.epochs=2"]` applied to a nested dict (values parsed as YAML)."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} must look like section.key=value")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {override!r}: {exc}") from None
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {part} is not a section")
        node[leaf] = value
    return data


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: list[str] = ()) -> T:
    """Read a YAML config file (or start empty), apply overrides, and validate into `cls`."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return from_dict(cls, apply_overrides(data, list(overrides)))


def to_dict(config: Any) -> dict:
    """A plain, YAML-ready dict of a (nested) dataclass config."""
    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


def dump_config(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
