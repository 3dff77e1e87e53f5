"""Saving and loading mixma's own (non-transformers) models: one strict mixin for all of them.

A model folder holds `config.json` (the model's class name plus its config dataclass as a dict)
and `model.safetensors`; a model may add files of its own (the QA model's answer vocabulary).
Loading rebuilds the model from the config, with no hub access, and loads the weights strictly:
a missing tensor, an unexpected one, or one of another shape is an error that names them.
(Transformers models such as `MALMM` use transformers' own `save_pretrained`/`from_pretrained`.)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from mixma._atomic import atomic_open, atomic_path
from mixma.errors import MixmaError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def weights_digest(module: nn.Module) -> str:
    """A short hash of a module's weights and buffers: its identity, e.g. in cached features' names."""
    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class ModelFolderError(MixmaError, ValueError):
    """A folder is not a model folder of the expected class, or its weights do not fit."""


class NotAModelFolder(ModelFolderError, FileNotFoundError):
    """The folder has no model config at all."""


def _names(keys: list[str]) -> str:
    keys = sorted(keys)
    return (", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")) if keys else "none"


def read_model_config(directory: str | os.PathLike, expected_class: str) -> dict[str, Any]:
    """A model folder's `config.json`, checking it was saved by `expected_class`.

    Raises:
        ModelFolderError: no config, not a mixma model folder, or another model class.
    """
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise NotAModelFolder(f"{directory}: no {CONFIG_NAME}: not a model folder")
    data = json.loads(path.read_text(encoding="utf-8"))
    saved = data.pop("model_class", None)
    if saved is None:
        raise ModelFolderError(f"{directory} is not a mixma model folder (its {CONFIG_NAME} has no model_class)")
    if saved != expected_class:
        raise ModelFolderError(f"{directory} holds a {saved}, not a {expected_class}")
    return data


class ModelFolderMixin:
    """`save_pretrained` / `from_pretrained` for an `nn.Module` with a `config` dataclass.

    Subclasses set `config_class` (with `to_dict` / `from_dict`) and may override `_save_extra`
    and `_build` (how a model is made from its config and folder).
    """

    config_class: ClassVar[type]
    config: Any

    def _save_extra(self, directory: Path) -> None:
        """Hook: files besides the config and the weights."""

    @classmethod
    def _build(cls, config: Any, directory: Path):
        return cls(config)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write `config.json` and `model.safetensors` (each atomically) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_open(directory / CONFIG_NAME) as f:
            json.dump({"model_class": type(self).__name__, **self.config.to_dict()}, f, indent=2, sort_keys=True)
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_model(self, str(tmp))
        self._save_extra(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu"):
        """Load a model written by `save_pretrained` (local folder, no hub), strictly, in eval mode.

        Raises:
            ModelFolderError: not a folder of this class, or weights that do not fit.
        """
        directory = Path(directory)
        data = read_model_config(directory, cls.__name__)
        try:
            config = cls.config_class.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ModelFolderError(f"{directory}: invalid {CONFIG_NAME} ({exc})") from None
        model = cls._build(config, directory)
        weights = directory / WEIGHTS_NAME
        try:
            return _load_weights(model, weights, directory, cls.__name__).to(device).eval()
        except SafetensorError as exc:
            raise ModelFolderError(f"{weights}: damaged or not a safetensors file ({exc})") from None


def _load_weights(model, weights: Path, directory: Path, name: str):
    """Load `weights` into `model` strictly (see `ModelFolderMixin.from_pretrained`)."""
    own = model.state_dict()
    with safe_open(str(weights), framework="pt") as f:  # shapes only: nothing is read yet
        wrong = [f"{k} {tuple(f.get_slice(k).get_shape())} vs {tuple(own[k].shape)}"
                 for k in f.keys() if k in own and tuple(f.get_slice(k).get_shape()) != tuple(own[k].shape)]
    if wrong:
        raise ModelFolderError(f"{directory}: weights of another shape than a {name}'s: {', '.join(wrong[:5])}")
    # safetensors' loader re-ties shared tensors that saving stored once
    missing, unexpected = load_model(model, str(weights), strict=False)
    if missing or unexpected:
        raise ModelFolderError(f"{directory}: the weights do not fit a {name}: "
                               f"missing {_names(missing)}; unexpected {_names(unexpected)}")
    return model
