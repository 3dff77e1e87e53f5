"""Reading and writing model weights tensor by tensor (transformers' safetensors layout).

A 7B-parameter checkpoint does not fit in memory twice, and converting or creating one should not
need it even once: `read_index` lists a folder's tensors without loading them, `open_tensors`
reads them one at a time (memory-mapped), and `write_shards` writes shards from tensors produced
on demand, holding at most one shard's tensors at a time. The layout is transformers':
`model.safetensors`, or `model-0000i-of-0000n.safetensors` shards with
`model.safetensors.index.json` (`{"metadata": {"total_size": bytes}, "weight_map": {name: file}}`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mixma._atomic import write_json
from mixma.errors import MixmaError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


class WeightsError(MixmaError):
    """A model folder's weights are missing or unreadable."""


@dataclass(frozen=True)
class TensorInfo:
    """Where a stored tensor lives and what it is, without reading it."""

    file: str  # the file name within the folder
    shape: tuple[int, ...]
    dtype: torch.dtype


def read_index(directory: str | os.PathLike) -> dict[str, TensorInfo]:
    """Every tensor of a transformers model folder (safetensors, single file or shards), in the
    order stored.

    Raises:
        WeightsError: no safetensors weights in the folder (e.g. only `pytorch_model.bin`).
    """
    directory = Path(directory)
    if (directory / INDEX).exists():
        weight_map = json.loads((directory / INDEX).read_text())["weight_map"]
        files = list(dict.fromkeys(weight_map.values()))
    elif (directory / SINGLE).exists():
        files = [SINGLE]
    else:
        found = sorted(p.name for p in directory.glob("*.bin"))
        hint = f" (found {', '.join(found)}: convert them to safetensors first)" if found else ""
        raise WeightsError(f"{directory}: no {SINGLE} or {INDEX}{hint}")
    index = {}
    for file in files:
        with safe_open(directory / file, framework="pt") as f:
            for name in f.keys():
                part = f.get_slice(name)
                index[name] = TensorInfo(file, tuple(part.get_shape()), _DTYPES[part.get_dtype()])
    return index


@contextlib.contextmanager
def open_tensors(directory: str | os.PathLike, index: dict[str, TensorInfo]) -> Iterator[Callable[[str], torch.Tensor]]:
    """A `get(name) -> Tensor` reading one stored tensor at a time (files stay memory-mapped)."""
    with contextlib.ExitStack() as stack:
        handles = {file: stack.enter_context(safe_open(Path(directory) / file, framework="pt"))
                   for file in dict.fromkeys(info.file for info in index.values())}
        yield lambda name: handles[index[name].file].get_tensor(name)


def nbytes(shape: Sequence[int], dtype: torch.dtype) -> int:
    count = 1
    for n in shape:
        count *= n
    return count * torch.empty((), dtype=dtype).element_size()


def write_shards(directory: str | os.PathLike, entries: Sequence[tuple[str, tuple[int, ...], torch.dtype]],
                 produce: Callable[[str], torch.Tensor], max_shard_bytes: int = 2 << 30) -> list[str]:
    """Write tensors `entries` (name, shape, dtype; in this order) as safetensors shards, asking
    `produce(name)` for each tensor when its shard is written, so at most one shard is held.

    Returns:
        The files written (one `model.safetensors`, or shards and the index).
    """
    directory = Path(directory)
    shards: list[list[tuple[str, tuple[int, ...], torch.dtype]]] = [[]]
    size = 0
    for entry in entries:  # plan first: shard names carry the shard count
        bytes_ = nbytes(entry[1], entry[2])
        if shards[-1] and size + bytes_ > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += bytes_
    names = [SINGLE] if len(shards) == 1 else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for file, shard in zip(names, shards):
        tensors = {}
        for name, shape, dtype in shard:
            tensor = produce(name).contiguous()
            if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
                raise ValueError(f"{name}: produced {list(tensor.shape)} {tensor.dtype}, planned {list(shape)} {dtype}")
            tensors[name] = tensor
        save_file(tensors, directory / file, metadata={"format": "pt"})
        del tensors
    if len(shards) > 1:
        weight_map = {name: file for file, shard in zip(names, shards) for name, _, _ in shard}
        total = sum(nbytes(shape, dtype) for shard in shards for _, shape, dtype in shard)
        write_json(directory / INDEX, {"metadata": {"total_size": total}, "weight_map": weight_map})
        names.append(INDEX)
    return names
