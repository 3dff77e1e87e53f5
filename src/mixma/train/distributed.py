"""One process or many: reading torchrun's environment and keeping replicas in step.

Training runs the same code under `python` and under `torchrun --nproc_per_node N`: the process
group (gloo on CPU, NCCL on CUDA) is set up when torchrun's variables are present.

Replicas are kept identical by broadcasting the trainable parameters from rank 0 at the start
and averaging gradients after every backward pass (one flat all-reduce per dtype), rather than by
wrapping the model in DistributedDataParallel. DDP synchronises only gradients that flow from
the wrapper's own `forward`, and MAMA's meta-weighting computes losses through
`torch.func.functional_call` on the bare module; averaging explicitly is correct for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Distributed:
    """Initialise the process group if launched by torchrun; choose the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("run.device is cuda but no CUDA device is available")
    chosen = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, world, local, chosen)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: Distributed) -> None:
    if info.active:
        dist.barrier()


def broadcast_parameters(params: list[torch.Tensor], info: Distributed) -> None:
    """Make every replica start from rank 0's values."""
    if info.active:
        for p in params:
            dist.broadcast(p.data, src=0)


def average_gradients(params: list[torch.nn.Parameter], info: Distributed) -> None:
    """Average `.grad` over replicas, in one all-reduce per dtype; missing grads count as zero."""
    if not info.active:
        return
    by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat)
        flat /= info.world_size
        for p, chunk in zip(group, flat.split([p.numel() for p in group])):
            p.grad.copy_(chunk.view_as(p.grad))


def mean_over_ranks(value: float, info: Distributed) -> float:
    if not info.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / info.world_size


def gather_objects(value, info: Distributed) -> list:
    """Every rank's `value`, in rank order (on every rank); `[value]` in one process."""
    if not info.active:
        return [value]
    out = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out
