"""load_records: what a split leaves out is kept and reported, never silently dropped."""

from __future__ import annotations

import json

import pytest

from mixma.data.records import load_records
from mixma.data.section import VideoDataSection
from mixma.errors import MixmaError


def write_split(root, video, rows):
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.jsonl").write_text("\n".join(rows) + "\n")


def test_missing_unreadable_and_bad_entries_are_counted_and_reported(tmp_path, indexed_video):
    (tmp_path / "broken.mp4").write_text("not a video")
    rows = [
        json.dumps({"id": "a", "video": str(indexed_video), "split": "test"}),
        json.dumps({"id": "b", "video": "later.mp4", "split": "test"}),  # not downloaded yet
        json.dumps({"id": "c", "video": "broken.mp4", "split": "test"}),
        '{"id": "d", "video": ',  # a bad line
        json.dumps({"id": "e", "video": str(indexed_video), "split": "test", "captions": ["x"]}),
    ]
    write_split(tmp_path, indexed_video, rows)
    said = []
    result = load_records(VideoDataSection(root=str(tmp_path)), "test", say=said.append)
    assert [r.id for r in result.records] == ["a", "e"]
    assert result.summary() == {"records": 2, "bad_entries": 1, "missing_videos": 1, "unreadable_videos": 1, "clips_outside": 0}
    assert any("missing video" in line and "later.mp4" in line for line in said)
    assert any("skipped video" in line and "broken.mp4" in line for line in said)
    assert any(line.startswith("skipped: ") and ":4:" in line for line in said)


def test_a_split_with_nothing_usable_is_an_error(tmp_path):
    write_split(tmp_path, None, [json.dumps({"id": "b", "video": "later.mp4", "split": "test"})])
    with pytest.raises(MixmaError, match="1 records, none with a readable video"):
        load_records(VideoDataSection(root=str(tmp_path)), "test", say=None)


def test_clips_that_start_after_their_video_are_reported(tmp_path, indexed_video):
    rows = [json.dumps({"id": "in", "video": str(indexed_video), "split": "test", "start": 1.0, "end": 3.0}),
            json.dumps({"id": "out", "video": str(indexed_video), "split": "test", "start": 500.0, "end": 510.0})]
    write_split(tmp_path, indexed_video, rows)
    said = []
    result = load_records(VideoDataSection(root=str(tmp_path)), "test", say=said.append)
    assert [r.id for r in result.records] == ["in"] and result.clips_outside == ["out"]
    assert any("skipped record out: its clip starts after its video ends" in line for line in said)
