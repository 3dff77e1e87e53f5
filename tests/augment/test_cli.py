"""`mixma augment-captions` end to end with a tiny random LLaVA loaded from disk."""

from __future__ import annotations

import json

import pytest

from mixma.cli import main

from .conftest import write_annotations


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_captions_a_dataset_and_resumes(capsys, tmp_path, dataset, tiny_llava):
    out, grids = tmp_path / "out.jsonl", tmp_path / "grids"
    args = ["augment-captions", dataset, "--model", tiny_llava, "-o", out, "--grid", "2x3", "-n", 2,
            "--max-new-tokens", 8, "--save-grids", grids, "--device", "cpu"]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert "captioned 4 of 6 videos" in err and "2 skipped:" in err and "c: " in err and "no such file" in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(r["augmented"]) for r in records] == [3, 2, 0, 0, 2, 2]  # 'a' had one already
    assert all("image" not in c.lower().split() for r in records for c in r["augmented"])
    assert len(list(grids.glob("*.jpg"))) == 4
    first = out.read_bytes()
    code, _, err = run(capsys, *args)  # the skipped videos are retried, the rest comes from the progress file
    assert code == 0 and "(4 done by an earlier run)" in err and out.read_bytes() == first
    code, _, err = run(capsys, *args[:-4], "--device", "cpu", "--restart", "-o", tmp_path / "again.jsonl")
    assert code == 0 and (tmp_path / "again.jsonl").read_bytes() == first  # same seed, same captions


def test_mixed_keyframes_limit_and_length_tokenizer(capsys, tmp_path, dataset, tiny_llava, bert_tokenizer):
    out = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "augment-captions", dataset, "-m", tiny_llava, "-o", out, "--keyframes", "mixed",
                       "--grid", "2x2", "--limit", 2, "--length-tokenizer", bert_tokenizer.name_or_path,
                       "--max-caption-tokens", 12, "--max-new-tokens", 10, "--device", "cpu", "--replace")
    assert code == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b"]
    assert all(len(bert_tokenizer(c)["input_ids"]) <= 12 for r in records for c in r["augmented"])
    assert "an older caption" not in records[0]["augmented"]


def test_nothing_captioned_exits_1(capsys, tmp_path, tiny_llava):
    annotations = write_annotations(tmp_path / "bad.jsonl", [{"id": "x", "video": "missing.mp4"}])
    code, _, err = run(capsys, "augment-captions", annotations, "-m", tiny_llava, "-o", tmp_path / "o.jsonl", "--device", "cpu")
    assert code == 1 and "x: " in err and "no such file" in err and "not written" in err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["{ann}", "-m", "{model}", "-o", "{out}", "--grid", "3by4"], "--grid: a grid is ROWSxCOLS"),
        (["{ann}", "-m", "{model}", "-o", "{out}", "--num-keyframes", "8"], "does not fill a 3x4 grid"),
        (["{ann}", "-m", "{model}", "-o", "{out}", "-n", "2", "--temperature", "0"], "--temperature 0"),
        (["{ann}", "-m", "{model}", "-o", "{out}", "--keyframes", "peaks"], "--keyframes"),
        (["{missing}", "-m", "{model}", "-o", "{out}"], "no such file"),
        (["{ann}", "-m", "{missing}", "-o", "{out}"], "no such model folder"),
        (["{ann}", "-m", "{ann_dir}", "-o", "{out}"], "no config.json"),
        (["{ann}", "-m", "{model}", "-o", "{out}", "--length-tokenizer", "{missing}"], "--length-tokenizer"),
        (["{ann}", "-m", "{model}", "-o", "{out}", "--dtype", "float8"], "--dtype"),
        (["{ann}", "-m", "{model}", "-o", "{out}", "--seed", "1"], "other settings"),
        (["{ann}", "-o", "{out}"], "Missing option '--model'"),
    ],
)
def test_bad_input_is_one_error_line_exit_2(capsys, tmp_path, tiny_llava, args, message):
    annotations = write_annotations(tmp_path / "a.jsonl", [{"id": "x", "video": "missing.mp4"}])
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.progress").write_text(json.dumps({"format": 1, "settings": {}}) + "\n")
    paths = {"ann": annotations, "model": tiny_llava, "out": out, "missing": tmp_path / "nope", "ann_dir": tmp_path}
    code, _, err = run(capsys, "augment-captions", *[a.format(**paths) for a in args], "--device", "cpu")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not out.exists()


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "augment-captions" in out
    code, out, _ = run(capsys, "augment-captions", "--help")
    assert code == 0
    for flag in ("--model", "--keyframes", "--num-keyframes", "--grid", "--captions-per-video", "--prompt",
                 "--temperature", "--max-new-tokens", "--seed", "--save-grids", "--limit", "--restart"):
        assert flag in out


KILLED_AFTER = """
import os, signal, sys
from mixma.augment.captioner import Captioner
calls, original = [0], Captioner.caption_detailed

def caption_then_die(self, *args, **kwargs):
    if calls[0] == {after}:  # a real SIGKILL at a known point: {after} videos done and logged
        os.kill(os.getpid(), signal.SIGKILL)
    calls[0] += 1
    return original(self, *args, **kwargs)

Captioner.caption_detailed = caption_then_die
from mixma.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_process_killed_mid_run_resumes_to_the_same_file(tmp_path, cut_video, tiny_llava):
    """SIGKILL a real `mixma augment-captions` process after two videos, then finish the run."""
    import os
    import signal
    import subprocess
    import sys

    annotations = write_annotations(tmp_path / "a.jsonl", [{"id": f"v{i:02d}", "video": str(cut_video)} for i in range(6)])
    args = ["augment-captions", annotations, "-m", tiny_llava, "--device", "cpu", "--max-new-tokens", 4]
    full = tmp_path / "full.jsonl"
    assert main([str(a) for a in [*args, "-o", full]]) == 0
    out = tmp_path / "out.jsonl"
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AFTER.format(after=2))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script), *[str(a) for a in [*args, "-o", out]]], env=env,
                            capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL
    progress = (tmp_path / "out.jsonl.progress").read_text().splitlines()
    assert len(progress) == 3 and not out.exists()  # the header and the two videos done
    assert main([str(a) for a in [*args, "-o", out]]) == 0
    assert out.read_bytes() == full.read_bytes()
