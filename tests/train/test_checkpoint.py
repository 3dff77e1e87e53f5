"""Checkpoint writing: folders in place atomically, the newest kept, `latest` always complete."""

from __future__ import annotations

import pickle

import pytest
import torch

from mixma.train import checkpoint as ckpt
from mixma.train.state import LEGACY_PICKLE, STATE_JSON, UnsafeCheckpoint


def trained(value: float) -> dict[str, torch.Tensor]:
    weight = torch.nn.Parameter(torch.full((2, 2), float(value)))
    return {"w": weight, "shared": weight}  # shared storage must still save (each is copied)


def test_checkpoints_are_pruned_and_latest_points_at_the_newest(tmp_path):
    for step in (1, 2, 3):
        ckpt.save_checkpoint(tmp_path, step, trained(step), {"step": step}, "cfg: 1\n", keep=2)
    steps = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert steps == ["step-00000002", "step-00000003"]
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest.name == "step-00000003" and (latest / "config.yaml").read_text() == "cfg: 1\n"
    state = ckpt.load_state(latest)
    assert state["step"] == 3 and set(state["rng"]) >= {"python", "numpy", "torch"}
    assert not (latest / LEGACY_PICKLE).exists() and (latest / STATE_JSON).exists()


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path, 1, trained(1.0), {"step": 1}, "cfg", keep=2)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_state", broken)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, 2, trained(2.0), {"step": 2}, "cfg", keep=2)
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000001"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


def test_best_holds_tensors_config_and_metrics(tmp_path):
    best = ckpt.save_best(tmp_path, trained(4.0), "cfg", {"top1": 50.0, "step": 7})
    assert sorted(p.name for p in best.iterdir()) == ["config.yaml", "metrics.json", "trained.safetensors"]
    ckpt.save_best(tmp_path, trained(5.0), "cfg", {"top1": 60.0, "step": 9})
    assert '"top1": 60.0' in (best / "metrics.json").read_text()


def test_resuming_a_run_with_a_pickled_state_refuses_it(tmp_path):
    """A run folder from elsewhere with a crafted pickle: resuming fails clearly and runs nothing."""
    from tests.train.test_loop import make_job, settings
    from mixma.train.distributed import Distributed
    from mixma.train.loop import fit

    optim, run = settings(tmp_path, max_steps=2)
    fit(make_job(), optim, run, "cfg", Distributed(), progress=False)
    latest = ckpt.latest_checkpoint(tmp_path)
    marker = tmp_path / "executed"
    for name in ("training_state.json", "training_state.safetensors"):
        (latest / name).unlink()
    with open(latest / LEGACY_PICKLE, "wb") as f:
        pickle.dump(Exploit(str(marker)), f)
    with pytest.raises(UnsafeCheckpoint, match="not opened"):
        fit(make_job(), *settings(tmp_path), "cfg", Distributed(), resume=True, progress=False)
    assert not marker.exists()


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
