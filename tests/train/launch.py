"""Helpers the trainers' tests share: `mixma` under torchrun, and what a feature store holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mixma.data.annotations import read_records


def torchrun_mixma(args: list[str], processes: int = 2, timeout: int = 300) -> None:
    """Run `mixma ARGS` on `processes` gloo processes; fail with the end of its stderr."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "mixma", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]


def assert_each_video_encoded_once(cache: Path, bench: Path, splits: tuple[str, ...] = ("train", "val")) -> None:
    """The frozen tower's store holds one file per video of `splits`: no video twice, none missing."""
    encoded = {r.video for split in splits for r in read_records(bench / f"{split}.jsonl")}
    assert len(list((cache / "features").rglob("*.npy"))) == len(encoded)
