"""Typed configuration: YAML files into (nested) dataclasses, plus `key.path=value` overrides.

A config file has one section per field of the config dataclass (for example `model`, `data`,
`optim`, `run`); a section's fields may themselves be dataclasses (the library's own options,
such as `MixedConfig` under `data.mixed`), so every default is written once, in the dataclass
that uses it. Everything is checked when the config is read:

- unknown keys are errors that name the key and the section's known keys, so a typo never
  silently falls back to a default;
- values are checked against the field's type; a `Literal[...]` field accepts only its choices;
- a dataclass's own `__post_init__` validation runs, and its `ValueError` names the section.

Overrides are written `optim.lr=3e-4` and parsed as YAML values (`true`, `[1, 2]`, `null`,
numbers, strings, `'quoted strings'`). The resolved configuration (file, overrides and defaults
together) is saved next to every checkpoint.
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
_BOOLEAN_WORDS = {False: ("no", "off", "false"), True: ("yes", "on", "true")}


class ConfigError(MixmaError):
    """A configuration file or override is invalid."""


def _convert_union(value: Any, annotation: Any, where: str) -> Any:
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


def _convert_sequence(value: Any, annotation: Any, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    item = args[0] if args else Any
    converted = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(converted) if origin is tuple else converted


def _convert_scalar(value: Any, annotation: Any, where: str) -> Any:
    if annotation is float:
        if isinstance(value, str):  # PyYAML reads `1e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    checks = {int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
              bool: (lambda v: isinstance(v, bool), "true or false"),
              str: (lambda v: isinstance(v, str), "a string")}
    if annotation in checks:
        ok, expected = checks[annotation]
        if not ok(value):
            raise ConfigError(f"{where}: expected {expected}, got {value!r}")
    return value


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a type annotation; build nested dataclasses; coerce int → float."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        if dataclasses.is_dataclass(value) and isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, annotation, where)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if isinstance(value, bool):  # YAML 1.1 reads a bare no / off / yes / on as a boolean
            value = next((c for c in choices if str(c).lower() in _BOOLEAN_WORDS[value]), value)
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (tuple, list):
        return _convert_sequence(value, annotation, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return _convert_scalar(value, annotation, where)


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, checking every key and value.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or one `cls` rejects; the message
            names the key (`config.data.mixed.mode: ...`).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - fields
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(fields))}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_value(text: str) -> Any:
    """An override's value as YAML (`3e-4`, `true`, `[1, 2]`, `null`, `'a string'`).

    Raises:
        ConfigError: the text is not valid YAML.
    """
    if not text:
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{text!r} is not a valid value ({problem}); quote a string that contains YAML syntax") from None


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`["optim.lr=3e-4", "run.epochs=2"]` applied to a nested dict (values parsed as YAML)."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} must look like section.key=value")
        try:
            value = parse_value(text)
        except ConfigError as exc:
            raise ConfigError(f"override {key}: {exc}") from None
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {part} is not a section")
        node[leaf] = value
    return data


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML file whose top level is a mapping (an empty file is an empty mapping).

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping.
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: list[str] = ()) -> T:
    """Read a YAML config file (or start empty), apply overrides, and validate into `cls`."""
    data = read_yaml(path) if path is not None else {}
    return from_dict(cls, apply_overrides(data, list(overrides)))


def to_dict(config: Any) -> dict:
    """A plain, YAML-ready dict of a (nested) dataclass config."""
    def plain(value):
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


def dump_config(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
