"""The `mixma` command: outputs, help, and bad input as one `error:` line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mixma.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_frames_writes_frames_sheet_and_json(capsys, tmp_path, indexed_video):
    out = tmp_path / "out"
    code, _, err = run(capsys, "frames", indexed_video, "-n", 6, "--strategy", "mixed", "--mode", "strobe", "--size", 48, "-o", out)
    assert code == 0, err
    data = json.loads((out / "frames.json").read_text())
    assert data["strategy"] == "mixed" and data["options"]["mode"] == "strobe" and data["options"]["size"] == 48
    assert [f["file"] for f in data["frames"]] == [f"frame_{i:03d}.jpg" for i in range(6)]
    assert data["frames"][0]["span"][0] == 0 and data["frames"][-1]["span"][1] == 299
    assert cv2.imread(str(out / "frame_000.jpg")).shape == (48, 80, 3)
    assert cv2.imread(str(out / "sheet.jpg")) is not None


def test_rerun_with_fewer_frames_removes_stale_ones(capsys, tmp_path, indexed_video):
    out = tmp_path / "out"
    assert run(capsys, "frames", indexed_video, "-n", 5, "-o", out)[0] == 0
    (out / "notes.txt").write_text("mine")
    assert run(capsys, "frames", indexed_video, "-n", 2, "--strategy", "segment", "--seed", 1, "-o", out)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["frame_000.jpg", "frame_001.jpg", "frames.json", "notes.txt", "sheet.jpg"]
    assert json.loads((out / "frames.json").read_text())["options"]["seed"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["frames", "{missing}", "-o", "{out}"], "no such file"),
        (["frames", "{text}", "-o", "{out}"], "not a readable video"),
        (["frames", "{video}", "-o", "{out}", "--mode", "ema"], "--mode applies only to --strategy mixed"),
        (["frames", "{video}", "-o", "{out}", "-n", "0"], "--num-frames"),
        (["frames", "{video}", "-o", "{out}", "--strategy", "linspace"], "--strategy"),
        (["frames", "{video}", "-o", "{out}", "--size", "big"], "--size must be"),
        (["frames", "{video}", "-o", "{out}", "--strategy", "mixed", "--alpha", "2"], "alpha must be in (0, 1]"),
        (["frames", "{video}"], "Missing option '-o'"),
        (["bench", "make", "-o", "{out}", "--size", "33"], "size must be an even number"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_bad_input_is_one_error_line_exit_2(capsys, tmp_path, indexed_video, args, message):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    paths = {"missing": tmp_path / "nope.mp4", "text": text, "out": tmp_path / "o", "video": indexed_video}
    code, _, err = run(capsys, *[a.format(**paths) for a in args])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "o" / "frames.json").exists()


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "frames" in out and "bench" in out
    code, out, _ = run(capsys, "frames", "--help")
    assert code == 0 and "--strategy" in out and "--change-threshold" in out and "strobe" in out


def test_bench_make(capsys, tmp_path):
    code, _, err = run(capsys, "bench", "make", "-o", tmp_path, "--videos", 4, "--frames", 100, "--seed", 2, "--workers", 1)
    assert code == 0, err
    assert json.loads((tmp_path / "benchmark.json").read_text())["config"]["seed"] == 2
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 4


def test_installed_entry_point_exit_code_and_stderr(tmp_path):
    """Through a real process: no traceback reaches the user."""
    result = subprocess.run(
        [sys.executable, "-m", "mixma", "frames", str(tmp_path / "nope.mp4"), "-o", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.mp4'}: no such file"


def test_info_table_json_folders_globs_and_bad_files(capsys, tmp_path, indexed_video):
    folder = tmp_path / "clips" / "nested"
    folder.mkdir(parents=True)
    copy = folder / "copy.mp4"
    copy.write_bytes(indexed_video.read_bytes())
    (folder / "notes.txt").write_text("not a video, and not picked from a folder")
    code, out, err = run(capsys, "info", indexed_video, tmp_path / "clips")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["video", "frames", "fps"] and len(lines) == 3
    assert all(" 300 " in line and "160x96" in line for line in lines[1:])
    code, out, _ = run(capsys, "info", str(tmp_path / "clips" / "**" / "*.mp4"), "--json")
    [entry] = json.loads(out)
    assert entry["path"] == str(copy) and entry["num_frames"] == 300 and entry["rotation"] == 0
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    code, out, err = run(capsys, "info", indexed_video, bad, tmp_path / "missing.mp4")
    assert code == 2 and len(out.strip().splitlines()) == 2  # the good one is still shown
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors) and "missing.mp4" in err


def test_info_changes_reports_a_video_whose_frames_do_not_decode(capsys, tmp_path, indexed_video, monkeypatch):
    from mixma.errors import VideoError
    from mixma.video import sampling

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(indexed_video.read_bytes())
    code, out, err = run(capsys, "info", indexed_video, "--changes", "--json")
    assert code == 0, err
    [entry] = json.loads(out)
    expected = sampling.sample_frames(indexed_video, 1, "mixed").changes
    assert [c["frame"] for c in entry["changes"]] == [int(c) for c in expected]
    original = sampling.sample_frames

    def fails_on_broken(path, *args, **kwargs):
        if str(path) == str(broken):
            raise VideoError(broken, "frame 12 does not decode")
        return original(path, *args, **kwargs)

    monkeypatch.setattr(sampling, "sample_frames", fails_on_broken)
    code, out, err = run(capsys, "info", indexed_video, broken, "--changes")
    assert code == 2 and len(out.strip().splitlines()) == 2  # header + the good video
    assert err.strip().splitlines() == [f"error: {VideoError(broken, 'frame 12 does not decode')}"]


def test_frames_of_several_videos_a_folder_and_a_glob(capsys, tmp_path, indexed_video):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (clips / name).write_bytes(indexed_video.read_bytes())
    (clips / "broken.mp4").write_text("not a video")
    code, _, err = run(capsys, "frames", clips, str(tmp_path / "nothing*.mp4"), "-o", tmp_path / "out")
    assert code == 2 and "no file matches" in err  # refused before anything is decoded
    code, _, err = run(capsys, "frames", clips, "-n", 3, "-o", tmp_path / "out")
    assert code == 2 and "broken.mp4" in err and "2 of 3 videos written" in err  # the others are still written
    for name in ("a", "b"):
        assert len(json.loads((tmp_path / "out" / name / "frames.json").read_text())["frames"]) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "3"], "--seed applies only to --strategy segment"),
        (["--strategy", "mixed", "--alpha", "0.3"], "--alpha applies only to --mode ema (the mode is mean)"),
        (["--strategy", "mixed", "--mode", "ema", "--instances", "3"], "--instances applies only to --mode strobe"),
    ],
)
def test_options_that_do_not_apply_are_errors(capsys, tmp_path, indexed_video, args, message):
    code, _, err = run(capsys, "frames", indexed_video, "-o", tmp_path / "o", *args)
    assert code == 2 and message in err and not (tmp_path / "o").exists()


def test_frames_papercuts(capsys, tmp_path, indexed_video):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "frames", indexed_video, "-o", tmp_path / "file")
    assert code == 2 and "a file, not a folder" in err
    code, _, err = run(capsys, "frames", indexed_video, "-n", 500, "--size", 400, "-o", tmp_path / "many")
    assert code == 0 and "has 300 frames, fewer than -n 500: writing 300" in err and "frames are upscaled" in err
    assert len(json.loads((tmp_path / "many" / "frames.json").read_text())["frames"]) == 300
    assert cv2.imread(str(tmp_path / "many" / "sheet.jpg")).shape[1] <= 4096  # the sheet does not balloon
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    code, _, err = run(capsys, "frames", image, "-o", tmp_path / "img")
    assert code == 2 and "an image, not a video" in err
    code, out, _ = run(capsys)  # `mixma` alone: the help, and a failure (nothing was done)
    assert code == 2


def test_ask_says_when_the_model_generated_no_text(capsys):
    from types import SimpleNamespace

    from mixma.cli.ask import _show

    _show(SimpleNamespace(text="", beams=[""], scores=[-1.0]), beams=False)
    out, err = capsys.readouterr()
    assert out == "\n" and err.startswith("warning: the model generated no text")
    _show(SimpleNamespace(text="red", beams=["red", "blue"], scores=[-0.5, -1.25]), beams=True)
    out, err = capsys.readouterr()
    assert out.splitlines() == ["  -0.500  red", "  -1.250  blue"] and not err
