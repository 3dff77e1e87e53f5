"""`mixma data`: conversion to canonical JSONL, the summary line, bad input as one error line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import mixma.cli.data  # noqa: F401  (registers `mixma data` until app.main imports it)
from mixma.cli import main
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
    assert err.strip() == f"wrote 2 records (3 QA pairs, 0 captions) to {out}"
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
    code, _, err = run(capsys, "data", "convert", "breakfast", str(root), "-s", "train", "-o", str(out), "--skip-bad")
    assert code == 0
    bad = root / "annotation" / "train.json"
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
