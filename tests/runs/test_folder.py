"""Run folders: finding the checkpoint, paths that survive a move, strict loading, atomic folders."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mixma.runs.folder import (
    RunError,
    load_trained_into,
    read_trained,
    resolve_checkpoint,
    resolve_source,
    run_kind,
    run_root,
    save_folder,
    store_source,
)


def checkpoint(folder, tensors, config="kind: mama\n"):
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "trained.safetensors"))
    (folder / "config.yaml").write_text(config)
    return folder


def test_resolve_checkpoint_prefers_best_then_latest(tmp_path):
    run = tmp_path / "run"
    step = checkpoint(run / "checkpoints" / "step-00000004", {"w": torch.zeros(1)})
    (run / "checkpoints" / "latest").write_text("step-00000004\n")
    (run / "config.yaml").write_text("kind: mama\n")
    assert resolve_checkpoint(run) == step and run_root(step) == run
    best = checkpoint(run / "best", {"w": torch.ones(1)})
    assert resolve_checkpoint(run) == best and run_root(best) == run
    assert resolve_checkpoint(step) == step  # a checkpoint folder is itself
    assert run_kind(run) == "mama"


def test_resolve_checkpoint_errors(tmp_path):
    with pytest.raises(RunError, match="no such run"):
        resolve_checkpoint(tmp_path / "missing")
    (tmp_path / "started" / "checkpoints").mkdir(parents=True)
    with pytest.raises(RunError, match="no complete checkpoint yet"):
        resolve_checkpoint(tmp_path / "started")
    with pytest.raises(RunError, match="not a run folder"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(RunError, match="no config.yaml"):
        run_kind(tmp_path)


def test_sources_inside_the_run_are_relative_and_survive_a_move(tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "base").mkdir(parents=True)
    external = tmp_path / "pretrained"
    external.mkdir()
    monkeypatch.chdir(tmp_path)
    assert store_source(str(run / "base"), run) == "base"
    assert store_source("pretrained", run) == str(external)  # another local folder: absolute
    assert store_source("Salesforce/instructblip-vicuna-7b", run) == "Salesforce/instructblip-vicuna-7b"
    moved = tmp_path / "elsewhere" / "run"
    os.renames(run, moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert resolve_source("base", moved, "model.init") == str(moved / "base")
    assert resolve_source("Salesforce/instructblip-vicuna-7b", moved, "model.init") == "Salesforce/instructblip-vicuna-7b"
    with pytest.raises(RunError, match="model.init 'runs/old/base': no such folder .* not a Hugging Face hub id"):
        resolve_source("runs/old/base", moved, "model.init")


def test_only_a_config_being_trained_looks_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "mine" / "base").mkdir(parents=True)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(tmp_path / "mine")
    assert resolve_source("base", run, "model.init", allow_cwd=True) == str(tmp_path / "mine" / "base")
    with pytest.raises(RunError, match="no such folder"):  # a loaded run means one model wherever it is opened
        resolve_source("base", run, "model.init")
    (run / "base").mkdir()
    assert resolve_source("base", run, "model.init", allow_cwd=True) == str(run / "base")  # the run's own first


def test_load_trained_into_names_what_does_not_fit(tmp_path):
    model = nn.Linear(3, 2)
    good = checkpoint(tmp_path / "good", {"weight": torch.full((2, 3), 2.0), "loss.log_scale": torch.zeros(())})
    assert load_trained_into(model, good, skip_prefixes=("loss.",)) == ["weight"]
    assert torch.equal(model.weight, torch.full((2, 3), 2.0))
    with pytest.raises(RunError, match=r"not in the model: loss.log_scale"):
        load_trained_into(model, good)
    wrong = checkpoint(tmp_path / "wrong", {"weight": torch.zeros(3, 3)})
    with pytest.raises(RunError, match=r"of another shape: weight \(3, 3\) vs \(2, 3\)"):
        load_trained_into(model, wrong)
    assert read_trained(good, ["weight"]).keys() == {"weight"}


def test_save_folder_is_atomic(tmp_path):
    target = tmp_path / "base"
    save_folder(target, lambda tmp: (tmp / "a.txt").write_text("first"))

    def fails(tmp):
        (tmp / "a.txt").write_text("second")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_folder(target, fails)
    assert (target / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["base"]  # no temporary folder left
    save_folder(target, lambda tmp: (tmp / "b.txt").write_text("new"))
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]


def test_a_kill_between_the_two_renames_loses_nothing(tmp_path):
    """`save_folder` moves the old folder aside, then the new one in: killed in between, the old
    one is put back by the next `latest_checkpoint` (or `save_folder`)."""
    from mixma.runs.folder import latest_checkpoint

    step = checkpoint(tmp_path / "checkpoints" / "step-00000002", {"w": torch.ones(1)})
    (tmp_path / "checkpoints" / "latest").write_text("step-00000002\n")
    aside = tmp_path / "checkpoints" / ".step-00000002.old-123"
    os.replace(step, aside)  # the state a kill at that instant leaves
    assert latest_checkpoint(tmp_path) == step and step.exists() and not aside.exists()
    checkpoint(tmp_path / "checkpoints" / "step-00000001", {"w": torch.zeros(1)})
    (tmp_path / "checkpoints" / "latest").write_text("step-00000009\n")  # names a folder that is gone
    assert latest_checkpoint(tmp_path) == step  # the newest complete one
