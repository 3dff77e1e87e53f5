"""A run's progress and everything resuming needs, stored so that loading it cannot run code.

Run folders get shared (a colleague's run, a downloaded one), and a pickle can execute anything
when it is loaded. So a checkpoint's training state (the optimiser's moments, the gradient
scaler, the weighting net, the random generators, the position in the epoch) is written as two
plain files: `training_state.json` for the structure and the numbers, and
`training_state.safetensors` for every tensor and array in it. Neither format can hold code.
`flatten` / `unflatten` convert any nesting of dicts (any key type), lists, tuples, tensors,
NumPy arrays and JSON scalars, exactly: a state read back equals the state written.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mixma._atomic import write_text
from mixma.errors import MixmaError

STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
LEGACY_PICKLE = "training_state.pt"  # written by mixma before 0.2: never loaded


class UnsafeCheckpoint(MixmaError):
    """A checkpoint whose training state is a pickle (which can run code when loaded)."""


@dataclass
class RunState:
    """Where a run stands: what `fit` carries from step to step and a checkpoint restores."""

    epoch: int = 0  # the epoch in progress
    micro_done: int = 0  # micro-batches of it already trained
    step: int = 0  # optimizer steps done
    best: dict | None = None  # {"value", "metric", "epoch", "step"} of the best evaluation
    history: list[dict] = field(default_factory=list)  # every evaluation: {"epoch", "step", "eval"}
    evaluated_at: int | None = None  # the step of the latest evaluation
    seconds: float = 0.0  # training time of the processes this one resumes from
    reason: str = ""  # why the checkpoint was written: interval, epoch, stopped, final
    pending_eval: bool = False  # written just before an evaluation that has not finished

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RunState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# -- exact, code-free (de)serialisation -----------------------------------------------------------


def flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str = "state") -> Any:
    """`obj` as JSON-ready data; its tensors and arrays go into `tensors`, referenced by name."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()  # clone: no shared storage for safetensors
        return {"$tensor": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"$ndarray": path}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):  # readable as a JSON object
            return {k: flatten(v, tensors, f"{path}/{k}") for k, v in obj.items()}
        items = [[flatten(k, tensors, f"{path}/k{i}"), flatten(v, tensors, f"{path}/{i}")] for i, (k, v) in enumerate(obj.items())]
        return {"$dict": items}  # keys JSON cannot hold (the optimiser's parameter ids)
    if isinstance(obj, tuple):
        return {"$tuple": [flatten(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a training state")


def unflatten(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if isinstance(data, list):
        return [unflatten(v, tensors) for v in data]
    if not isinstance(data, dict):
        return data
    if "$tensor" in data:
        return tensors[data["$tensor"]]
    if "$ndarray" in data:
        return tensors[data["$ndarray"]].numpy()
    if "$tuple" in data:
        return tuple(unflatten(v, tensors) for v in data["$tuple"])
    if "$dict" in data:
        return {unflatten(k, tensors): unflatten(v, tensors) for k, v in data["$dict"]}
    return {k: unflatten(v, tensors) for k, v in data.items()}


def save_state(folder: str | Path, state: dict[str, Any]) -> None:
    """Write `state` as `training_state.json` + `training_state.safetensors` into `folder`."""
    tensors: dict[str, torch.Tensor] = {}
    tree = flatten(state, tensors)
    save_file(tensors, str(Path(folder) / STATE_TENSORS))
    write_text(Path(folder) / STATE_JSON, json.dumps(tree) + "\n")


def load_state(folder: str | Path) -> dict[str, Any]:
    """Read what `save_state` wrote.

    Raises:
        UnsafeCheckpoint: the folder holds a pickled state (an older format); it is not opened.
        MixmaError: no training state, or a damaged one.
    """
    folder = Path(folder)
    if not (folder / STATE_JSON).exists():
        if (folder / LEGACY_PICKLE).exists():
            raise UnsafeCheckpoint(
                f"{folder}: its training state is a Python pickle ({LEGACY_PICKLE}, an older mixma format), "
                "which can run code when loaded, so it is not opened; start a new run")
        raise MixmaError(f"{folder}: no training state ({STATE_JSON}): not a resumable checkpoint")
    try:
        tree = json.loads((folder / STATE_JSON).read_text())
        return unflatten(tree, load_file(str(folder / STATE_TENSORS)))
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        raise MixmaError(f"{folder}: damaged training state ({exc})") from None


# -- random generators ---------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every global random stream training draws from."""
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
