"""Two real processes on gloo: the gathered loss equals the single-process loss on the joined batch."""

from __future__ import annotations

import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mixma.losses.contrastive import AngularMarginConfig, AngularMarginLoss

CONFIG = AngularMarginConfig(margin=0.1)
SPLITS = {"equal": (4, 4), "unequal": (3, 5)}  # samples held by rank 0 and rank 1


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)


def local_step(loss: AngularMarginLoss, video: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample losses and the gradients of their sum."""
    video, text = video.clone().requires_grad_(True), text.clone().requires_grad_(True)
    loss.zero_grad()
    losses = loss(video, text)
    losses.sum().backward()
    return {"losses": losses.detach(), "video": video.grad, "text": text.grad, "log_scale": loss.log_scale.grad.clone()}


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=timedelta(seconds=60)
    )
    try:
        video, text = batch()
        loss = AngularMarginLoss(CONFIG)
        results = {}
        for name, sizes in SPLITS.items():
            lo = sum(sizes[:rank])
            results[name] = local_step(loss, video[lo : lo + sizes[rank]], text[lo : lo + sizes[rank]])
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_match_one_process_on_the_joined_batch(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    video, text = batch()
    single = local_step(AngularMarginLoss(CONFIG), video, text)  # no process group here
    for name, sizes in SPLITS.items():
        per_rank = [ranks[r][name] for r in range(2)]
        assert [len(p["losses"]) for p in per_rank] == list(sizes)
        for key in ("losses", "video", "text"):
            torch.testing.assert_close(torch.cat([p[key] for p in per_rank]), single[key], msg=f"{name} {key}")
        # the shared log-scale: the ranks' gradients add up to the global one (what DDP's
        # all-reduce of parameter gradients sums before averaging)
        torch.testing.assert_close(sum(p["log_scale"] for p in per_rank), single["log_scale"])
