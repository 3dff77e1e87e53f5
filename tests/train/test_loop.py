"""The training loop: exact resume, accumulation, schedule, checkpoints, several processes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from mixma.train import checkpoint as ckpt
from mixma.runs.config import OptimConfig, RunConfig
from mixma.train.distributed import Distributed
from mixma.train.loop import RunExists, TrainingJob, epoch_batches, fit
from mixma.train.state import save_state
from mixma.train.optim import learning_rate, parameter_groups


class Noisy(Dataset):
    """Regression data whose items use per-(epoch, index) randomness, like the video datasets."""

    def __init__(self, n=40):
        g = torch.Generator().manual_seed(0)
        self.x, self.w = torch.randn(n, 6, generator=g), torch.randn(6, 1, generator=g)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        rng = np.random.default_rng([1, self.epoch, i])
        x = self.x[i] + float(rng.normal(0, 0.1))  # augmentation
        return x, x @ self.w


def make_job(seed=0, evaluate=False):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, 1))  # dropout uses the global RNG
    dataset = Noisy()

    def collate(items):
        return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])

    def loss(batch, step, lr):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    def score():
        with torch.no_grad():
            return {"neg_mse": -float(((model(dataset.x) - dataset.x @ dataset.w) ** 2).mean())}

    return TrainingJob(model, dataset, collate, loss, evaluate=score if evaluate else None, metric="neg_mse")


def settings(tmp_path, **run):
    optim = OptimConfig(lr=0.05, warmup_steps=3, weight_decay=0.01, accumulate=run.pop("accumulate", 1))
    return optim, RunConfig(output_dir=str(tmp_path), epochs=3, batch_size=4, **run)


def weights(job):
    return {k: v.detach().clone() for k, v in job.model.state_dict().items()}


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight = make_job()
    fit(straight, *settings(tmp_path / "a"), "cfg", Distributed(), progress=False)

    first = make_job()
    optim, run = settings(tmp_path / "b", max_steps=13)  # stops inside the second epoch
    summary = fit(first, optim, run, "cfg", Distributed(), progress=False)
    assert summary["steps"] == 13 and ckpt.latest_checkpoint(tmp_path / "b").name == "step-00000013"
    torch.manual_seed(1234)  # whatever happened in between, resuming restores the random state
    resumed = make_job(seed=99)  # different init: resuming must overwrite it
    fit(resumed, *settings(tmp_path / "b"), "cfg", Distributed(), resume=True, progress=False)
    for key, value in weights(straight).items():
        torch.testing.assert_close(weights(resumed)[key], value, rtol=0, atol=0)


def test_training_time_adds_up_over_resumes(tmp_path):
    optim, run = settings(tmp_path, max_steps=5)
    fit(make_job(), optim, run, "cfg", Distributed(), progress=False)
    latest = ckpt.latest_checkpoint(tmp_path)
    state = ckpt.load_state(latest)
    state["seconds"] = 1000.0  # as if the first process had trained for a long time
    save_state(latest, state)
    summary = fit(make_job(), *settings(tmp_path), "cfg", Distributed(), resume=True, progress=False)
    assert 1000 <= summary["seconds"] < 1000 + 600  # rounded to 0.1 s: a fast machine trains the rest in less
    times = [e["time"] for e in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "time" in e]
    assert times[-1] >= 1000


def test_evaluating_does_not_change_training(tmp_path):
    """Evaluation that draws random numbers (sampling, a random subset) must not shift the
    training run's random stream: how often a run evaluates cannot change what it learns."""
    plain = make_job()
    fit(plain, *settings(tmp_path / "plain"), "cfg", Distributed(), progress=False)
    evaluated = make_job(evaluate=True)
    score = evaluated.evaluate

    def greedy_evaluation():
        torch.rand(3), np.random.rand(3), random.random()  # every global stream
        return score()

    evaluated.evaluate = greedy_evaluation
    optim, run = settings(tmp_path / "evaluated", eval_every=1)
    fit(evaluated, optim, run, "cfg", Distributed(), progress=False)
    assert (tmp_path / "evaluated" / "metrics.jsonl").read_text().count('"eval"') == 3  # once per epoch
    for key, value in weights(plain).items():
        torch.testing.assert_close(weights(evaluated)[key], value, rtol=0, atol=0)


def test_a_failed_evaluation_loses_no_training(tmp_path):
    straight = make_job(evaluate=True)
    fit(straight, *settings(tmp_path / "a", eval_every=1), "cfg", Distributed(), progress=False)

    failing = make_job(evaluate=True)
    score, calls = failing.evaluate, []

    def fails_in_the_second_epoch():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory in evaluation")
        return score()

    failing.evaluate = fails_in_the_second_epoch
    with pytest.raises(RuntimeError, match="out of memory"):
        fit(failing, *settings(tmp_path / "b", eval_every=1), "cfg", Distributed(), progress=False)
    assert ckpt.latest_checkpoint(tmp_path / "b").name == "step-00000020"  # the epoch's training is on disk
    assert ckpt.load_state(ckpt.latest_checkpoint(tmp_path / "b"))["pending_eval"]

    resumed = make_job(seed=7, evaluate=True)
    summary = fit(resumed, *settings(tmp_path / "b", eval_every=1), "cfg", Distributed(), resume=True, progress=False)
    assert [entry["step"] for entry in summary["history"]] == [10, 20, 30]  # the failed evaluation ran again
    for key, value in weights(straight).items():
        torch.testing.assert_close(weights(resumed)[key], value, rtol=0, atol=0)


def test_refuses_to_overwrite_a_run_without_resume(tmp_path):
    fit(make_job(), *settings(tmp_path, max_steps=2), "cfg", Distributed(), progress=False)
    with pytest.raises(RunExists, match="--resume"):
        fit(make_job(), *settings(tmp_path), "cfg", Distributed(), progress=False)


def test_accumulation_equals_a_bigger_batch(tmp_path):
    small = make_job()
    small.model[1].p = 0.0  # no dropout, so the comparison is exact up to rounding
    optim, run = settings(tmp_path / "acc", accumulate=2)
    run.batch_size = 2
    fit(small, optim, run, "cfg", Distributed(), progress=False)
    big = make_job()
    big.model[1].p = 0.0
    optim, run = settings(tmp_path / "big")
    fit(big, optim, run, "cfg", Distributed(), progress=False)
    for key, value in weights(big).items():
        torch.testing.assert_close(weights(small)[key], value, rtol=1e-5, atol=1e-6)


def test_best_checkpoint_and_pruning(tmp_path):
    optim, run = settings(tmp_path, keep_checkpoints=2, checkpoint_every=2)
    fit(make_job(evaluate=True), optim, run, "config: 1\n", Distributed(), progress=False)
    steps = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert len(steps) == 2 and steps[-1] == "step-00000030"
    best = (tmp_path / "best")
    assert (best / "metrics.json").exists() and (best / "config.yaml").read_text() == "config: 1\n"
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert sum('"eval"' in line for line in lines) == 3  # one evaluation per epoch


def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    optim, run = settings(tmp_path, max_steps=4)
    fit(make_job(), optim, run, "cfg", Distributed(), progress=False)
    before = ckpt.latest_checkpoint(tmp_path)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken)
    optim, run = settings(tmp_path, max_steps=8)
    with pytest.raises(OSError, match="disk full"):
        fit(make_job(), optim, run, "cfg", Distributed(), resume=True, progress=False)
    assert ckpt.latest_checkpoint(tmp_path) == before
    assert ckpt.load_state(before)["step"] == 4
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]  # nothing half-written


def test_schedule_warms_up_then_follows_a_cosine():
    cfg = OptimConfig(lr=1.0, warmup_steps=10, warmup_lr=0.0, min_lr=0.1)
    assert learning_rate(0, 110, cfg) == 0.0 and learning_rate(5, 110, cfg) == pytest.approx(0.5)
    assert learning_rate(10, 110, cfg) == pytest.approx(1.0)
    assert learning_rate(60, 110, cfg) == pytest.approx(0.55)  # half way: the mean of lr and min_lr
    assert learning_rate(110, 110, cfg) == pytest.approx(0.1)


def test_weight_decay_groups():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    model.register_parameter("query_tokens", nn.Parameter(torch.zeros(1, 2, 3)))
    decay, plain = parameter_groups(model.named_parameters(), 0.05, {"query_tokens"})
    assert [p.shape for p in decay["params"]] == [torch.Size([3, 3])]
    assert len(plain["params"]) == 4 and plain["weight_decay"] == 0


def test_epoch_batches_shard_the_same_permutation():
    single = epoch_batches(10, 4, seed=0, epoch=3, rank=0, world=1)
    ranks = [epoch_batches(10, 2, seed=0, epoch=3, rank=r, world=2) for r in range(2)]
    assert sorted(sum(single, [])) == list(range(10))
    assert sorted(ranks[0][0] + ranks[1][0]) == sorted(single[0])  # a global micro-batch is split across ranks
    assert epoch_batches(10, 4, 0, 4, 0, 1) != single  # a new order each epoch


WORKER = """
import sys, torch
sys.path.insert(0, {root!r})
from tests.train.test_loop import make_job, settings
from mixma.train.distributed import setup, teardown
from pathlib import Path
info = setup("cpu")
job = make_job()
job.model[1].p = 0.0
optim, run = settings(Path({out!r}))
run.batch_size = {batch}
fit_summary = __import__("mixma.train.loop", fromlist=["fit"]).fit(job, optim, run, "cfg", info, progress=False)
if info.is_main:
    torch.save(job.model.state_dict(), {out!r} + "/weights.pt")
teardown()
"""


def test_two_processes_equal_one_with_the_global_batch(tmp_path):
    root = str(Path(__file__).parents[2])
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=root, out=str(tmp_path / "ddp"), batch=2))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    single = make_job()
    single.model[1].p = 0.0
    fit(single, *settings(tmp_path / "one"), "cfg", Distributed(), progress=False)
    both = torch.load(tmp_path / "ddp" / "weights.pt")
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(both[key], value, rtol=1e-5, atol=1e-6)


RESUMING_WORKER = """
import sys, torch
sys.path.insert(0, {root!r})
from tests.train.test_loop import make_job, settings
from mixma.train.distributed import setup, teardown
from mixma.train.loop import fit
from pathlib import Path
info = setup("cpu")
job = make_job()
torch.manual_seed(100 + info.rank)  # the ranks' dropout draws differ, as after any rank-dependent draw
optim, run = settings(Path({out!r}), max_steps={max_steps})
run.batch_size = 2
fit(job, optim, run, "cfg", info, resume={resume}, progress=False)
if info.is_main:
    torch.save(job.model.state_dict(), {out!r} + "/weights.pt")
teardown()
"""


@pytest.mark.slow
def test_two_processes_resume_exactly_with_each_ranks_random_streams(tmp_path):
    root = str(Path(__file__).parents[2])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(out, max_steps=None, resume=False):
        script = tmp_path / "worker.py"
        script.write_text(RESUMING_WORKER.format(root=root, out=str(out), max_steps=max_steps, resume=resume))
        result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                 str(script)], capture_output=True, text=True, env=env, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
        return torch.load(out / "weights.pt")

    straight = torchrun(tmp_path / "straight")
    torchrun(tmp_path / "resumed", max_steps=13)  # stops inside the second epoch
    resumed = torchrun(tmp_path / "resumed", resume=True)
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)
