"""Reading pretrained state dicts and loading them strictly into an `InvertedResidualNet`.

Published weights use their authors' module names (lukemelas' EfficientNet-PyTorch, torchvision);
`translate` renames them to ours with a table built from the network spec, so every tensor must
find its place: a renamed key the network lacks, a key of the network left unfilled, or a shape
that differs is a `WeightsError` naming the first offenders. Files are read with
`torch.load(weights_only=True)`, which unpickles tensors and containers only, never code.
"""

from __future__ import annotations

import os
import pickle
from importlib import metadata
from pathlib import Path

import torch
from torch import Tensor, nn

from mixma.models.vision.errors import MissingWeightsError, WeightsError

MAX_NAMES_SHOWN = 3  # offending keys quoted in an error message


def package_file(package: str, version: str, file: str) -> Path:
    """Path of `file` inside the installed distribution `package`.

    Raises:
        MissingWeightsError: the distribution is not installed, or lacks the file (another version).
    """
    try:
        path = Path(metadata.distribution(package).locate_file(file))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise MissingWeightsError(f"{package}=={version}", "these pretrained weights")
    return path


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Tensors of a `torch.save`d state dict (a flat name → tensor mapping), read safely.

    Raises:
        WeightsError: missing file, not a torch file, or not a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: not a readable torch state dict ({first_line})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # training checkpoints often nest it
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise WeightsError(f"{path}: expected a state dict (a mapping of names to tensors)")
    return dict(state)


def translate(state: dict[str, Tensor], names: dict[str, str]) -> dict[str, Tensor]:
    """Rename `module.param` keys by module name (`names`: theirs → ours); others pass unchanged."""
    out = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        out[f"{names.get(module, module)}.{param}" if module else key] = value
    return out


def mismatches(net: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Why `state` does not load strictly into `net`: one line per kind of problem (empty: it fits)."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            shown = ", ".join(keys[:MAX_NAMES_SHOWN]) + (", ..." if len(keys) > MAX_NAMES_SHOWN else "")
            problems.append(f"{len(keys)} {what} ({shown})")
    return problems


def load_strict(net: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Copy `state` (already in our names) into `net`; every tensor must match exactly.

    Raises:
        WeightsError: names or shapes differ; the message says which.
    """
    problems = mismatches(net, state)
    if problems:
        raise WeightsError(f"{source}: weights do not fit the network: {'; '.join(problems)}")
    net.load_state_dict(state, strict=True)
