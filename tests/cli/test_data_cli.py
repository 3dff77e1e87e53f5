"""`mixma data`: conversion to canonical JSONL, the summary line, bad input as one error line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mixma.cli import main
from mixma.cli.data import parse_settings
from mixma.data.annotations import read_records
from mixma.data.readers import DATASETS

FIXTURES = Path(__file__).parents[1] / "data" / "fixtures"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_writes_canonical_jsonl(tmp_path, capsys):
    root = FIXTURES / "msrvtt_qa" / "malmm"
    out = tmp_path / "ann" / "msrvtt_qa_test.jsonl"
    code, _, err = run(capsys, "data", "convert", "msrvtt_qa", str(root), "--split", "test", "-o", str(out))
    assert code == 0
    # the fixture has annotations only: both videos are missing, a warning (exit code 0)
    first = os.path.normpath(out.parent / os.path.relpath(root / "videos" / "video7010.mp4", out.parent))
    assert err.strip() == f"wrote 2 records (3 QA pairs, 0 captions) to {out}; 2 records' videos are missing (not yet downloaded?), e.g. {first}"
    records = read_records(out)
    assert [r.id for r in records] == ["video7010", "video7011"]
    assert records[0].video_path(out.parent).resolve() == (root / "videos" / "video7010.mp4").resolve()


def test_convert_with_task_and_reader_options(tmp_path, capsys):
    out = tmp_path / "lvu.jsonl"
    code, _, err = run(
        capsys, "data", "convert", "lvu", str(FIXTURES / "lvu"), "--split", "val", "--task", "genre",
        "--set", "window=100", "--set", "stride=20", "--set", "video_path=frames/{video}", "-o", str(out),
    )
    assert code == 0, err
    records = read_records(out)
    assert [(r.id, r.start, r.end) for r in records][:2] == [("0Ij2veeSsE4_0", 0, 100), ("0Ij2veeSsE4_20", 20, 120)]
    assert len(records) == 5 and records[0].video.endswith("lvu/frames/0Ij2veeSsE4")


def _broken_breakfast(tmp_path: Path) -> Path:
    root = tmp_path / "breakfast"
    shutil.copytree(FIXTURES / "breakfast", root)
    path = root / "annotation" / "train.json"
    data = json.loads(path.read_text())
    del data["P28-cam01-P28_cereals"]["class_name"]
    path.write_text(json.dumps(data, indent=4))
    return root


def test_skip_bad_reports_and_keeps_the_rest(tmp_path, capsys):
    root = _broken_breakfast(tmp_path)
    out = tmp_path / "bf.jsonl"
    bad = root / "annotation" / "train.json"
    (root / "videos").mkdir()
    for name in ("P03-cam01-P03_cereals", "P03-cam01-P03_friedegg"):  # the two good ones' videos are there
        (root / "videos" / f"{name}.mp4").touch()
    code, _, err = run(capsys, "data", "convert", "breakfast", str(root), "-s", "train", "-o", str(out), "--skip-bad")
    assert code == 0
    assert err.strip() == (
        f"wrote 2 records (0 QA pairs, 0 captions) to {out}; skipped 1 bad entries: "
        f"{bad}:8: entry 'P28-cam01-P28_cereals': missing 'class_name'"
    )
    assert [r.id for r in read_records(out)] == ["P03-cam01-P03_cereals", "P03-cam01-P03_friedegg"]


def test_bad_entry_without_skip_is_one_error_line(tmp_path, capsys):
    root = _broken_breakfast(tmp_path)
    out = tmp_path / "bf.jsonl"
    code, _, err = run(capsys, "data", "convert", "breakfast", str(root), "-s", "train", "-o", str(out))
    assert code == 2
    assert err == f"error: {root / 'annotation' / 'train.json'}:8: entry 'P28-cam01-P28_cereals': missing 'class_name'\n"
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["msrvtt_qa", "{missing}", "-s", "test"], "no such file or directory"),
    (["msrvtt_qa", "{fixtures}/msrvtt_qa/malmm", "-s", "test", "--task", "genre"], "unknown option(s) task for msrvtt_qa"),
    (["msrvtt_qa", "{fixtures}/msrvtt_qa/malmm", "-s", "test", "--set", "novalue"], "--set takes KEY=VALUE"),
    (["lvu", "{fixtures}/lvu", "-s", "val"], "lvu needs the option(s) task"),
    (["webvid", "{fixtures}", "-s", "test"], "unknown dataset 'webvid'"),
])
def test_bad_invocations(tmp_path, capsys, argv, message):
    argv = [a.format(missing=tmp_path / "nope", fixtures=FIXTURES) for a in argv]
    code, _, err = run(capsys, "data", "convert", *argv, "-o", str(tmp_path / "x.jsonl"))
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_list_names_every_dataset(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    for name, spec in DATASETS.items():
        assert f"{name}  [{spec.task}" in out
    assert "files: annotation/qa_{split}.json" in out


def test_missing_videos_are_counted_as_a_warning(tmp_path, capsys):
    root = tmp_path / "msrvtt_qa"
    shutil.copytree(FIXTURES / "msrvtt_qa" / "malmm", root)
    (root / "videos").mkdir()
    (root / "videos" / "video7010.mp4").write_bytes(b"")  # video7011 is not downloaded
    out = root / "qa.jsonl"
    code, _, err = run(capsys, "data", "convert", "msrvtt_qa", str(root), "-s", "test", "-o", str(out))
    assert code == 0 and out.exists()
    assert err.strip() == (
        f"wrote 2 records (3 QA pairs, 0 captions) to {out}; 1 record's video is missing (not yet downloaded?), "
        f"e.g. {root / 'videos' / 'video7011.mp4'}"
    )


def test_set_values_are_yaml_as_the_help_shows(tmp_path, capsys):
    out = tmp_path / "lvu.jsonl"
    # the help text's own example, as a shell passes it when it is written inside double quotes
    code, _, err = run(
        capsys, "data", "convert", "lvu", str(FIXTURES / "lvu"), "--split", "val", "--task", "genre",
        "--set", "video_path='frames/{video}'", "--set", "window=100", "-o", str(out),
    )
    assert code == 0, err
    records = read_records(out)
    assert records[0].video.endswith("lvu/frames/0Ij2veeSsE4") and records[0].end == 100
    assert parse_settings([
        "window=100", "stride=2.5", "require-frames=true", "exclude=[a, b]", "subset='123'", "mapping=null",
        "video_path={video}.mp4", "video_path2={video}", "protocol=1k-A", "empty=",
    ]) == {
        "window": 100, "stride": 2.5, "require_frames": True, "exclude": ["a", "b"], "subset": "123", "mapping": None,
        # not YAML, or YAML for a mapping: kept as written
        "video_path": "{video}.mp4", "video_path2": "{video}", "protocol": "1k-A", "empty": "",
    }


def test_a_file_in_another_layout_fails_even_with_skip_bad(tmp_path, capsys):
    (tmp_path / "annotation").mkdir()
    path = tmp_path / "annotation" / "train.json"
    path.write_text('[{"class_name": "tea"}]')
    out = tmp_path / "x.jsonl"
    code, _, err = run(capsys, "data", "convert", "breakfast", str(tmp_path), "-s", "train", "-o", str(out), "--skip-bad")
    assert code == 2 and not out.exists()
    assert err == f"error: {path}: expected a JSON object keyed by video id, got a list\n"


def test_list_with_a_name_prints_the_readers_documentation(capsys):
    code, out, _ = run(capsys, "data", "list", "msrvtt_qa")
    assert code == 0
    assert out.startswith("msrvtt_qa  [qa; splits: train, val, test]\n\nMSRVTT-QA (Xu et al. 2017)")
    assert "video_path: where the videos are" in out
    code, out, _ = run(capsys, "data", "list", "folder")  # the table's schema, with an example
    assert code == 0 and "video,question,answer,options,caption,split\n" in out and "annotations: the annotation table" in out
    code, _, err = run(capsys, "data", "list", "kinetics")
    assert code == 2 and "unknown dataset 'kinetics'" in err
