"""The canonical annotation format: round trips, and every kind of bad line reported precisely."""

from __future__ import annotations

import json

import pytest

from mixma import AnnotationError
from mixma.data.annotations import QA, VideoRecord, read_records, write_records


def test_round_trip(tmp_path):
    records = [
        VideoRecord("a", "videos/a.mp4", "train", label="cat", qa=[QA("what?", "cat", "what")], captions=["a cat"]),
        VideoRecord("b", "/abs/b.mp4", "meta", start=1.5, end=4.0, augmented=["maybe a dog"], meta={"fps": 25}),
        VideoRecord("c", "c.mp4", qa=[QA("which?", "b", options=["a", "b"], id="q7")]),
    ]
    path = tmp_path / "ann.jsonl"
    write_records(path, records)
    assert read_records(path) == records
    assert records[0].video_path(tmp_path) == tmp_path / "videos/a.mp4"
    assert str(records[1].video_path(tmp_path)) == "/abs/b.mp4"


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ('["a list"]', "must be a JSON object"),
    ('{"video": "v.mp4"}', "'id' must be a non-empty string"),
    ('{"id": "x"}', "'video' must be a non-empty string"),
    ('{"id": "x", "video": "v.mp4", "lable": "cat"}', "unknown field(s) lable"),
    ('{"id": "x", "video": "v.mp4", "split": "dev"}', "'split' must be one of"),
    ('{"id": "x", "video": "v.mp4", "start": 5, "end": 2}', "'end' must come after 'start'"),
    ('{"id": "x", "video": "v.mp4", "start": -1}', "non-negative"),
    ('{"id": "x", "video": "v.mp4", "captions": "one string"}', "'captions' must be a list of strings"),
    ('{"id": "x", "video": "v.mp4", "qa": [{"question": "q"}]}', "qa[0] needs a non-empty string 'answer'"),
    ('{"id": "x", "video": "v.mp4", "qa": [{"question": "q", "answer": "c", "options": ["a", "b"]}]}', "not one of its options"),
    ('{"id": "x", "video": "v.mp4", "meta": []}', "'meta' must be an object"),
]


@pytest.mark.parametrize("line, message", BAD_LINES)
def test_bad_line_raises_with_file_and_line(tmp_path, line, message):
    path = tmp_path / "ann.jsonl"
    path.write_text('{"id": "ok", "video": "ok.mp4"}\n\n' + line + "\n")
    with pytest.raises(AnnotationError) as info:
        read_records(path)
    assert info.value.line == 3 and message in info.value.reason
    assert str(info.value).startswith(f"{path}:3: ")


def test_skip_mode_reports_bad_lines_and_keeps_the_rest(tmp_path):
    path = tmp_path / "ann.jsonl"
    good = [json.dumps({"id": str(i), "video": f"{i}.mp4"}) for i in range(3)]
    path.write_text("\n".join([good[0], "{oops", good[1], good[1], good[2]]) + "\n")
    errors: list[AnnotationError] = []
    records = read_records(path, errors=errors)
    assert [r.id for r in records] == ["0", "1", "2"]
    assert [(e.line, e.reason.split(" (")[0]) for e in errors] == [(2, "not valid JSON"), (4, "duplicate id '1'")]


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(AnnotationError, match="no such file"):
        read_records(tmp_path / "missing.jsonl")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(AnnotationError, match="cannot read"):
        read_records(tmp_path / "binary.jsonl")


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ann.jsonl"
    write_records(path, [VideoRecord("a", "a.mp4")])

    class Boom(VideoRecord):
        def to_json(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_records(path, [VideoRecord("b", "b.mp4"), Boom("c", "c.mp4")])
    assert [r.id for r in read_records(path)] == ["a"]  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ann.jsonl"]  # no temporary left behind


def test_invalid_json_message_reads_cleanly(tmp_path):
    # json's own message ends with "at" here; the reason must not say "at at column"
    path = tmp_path / "ann.jsonl"
    path.write_text('{"id": "ok", "video": "ok.mp4"}\n{"id": "cut sho\n')
    with pytest.raises(AnnotationError) as info:
        read_records(path)
    column = path.read_text().splitlines()[1].index('"cut') + 1
    assert str(info.value) == f"{path}:2: not valid JSON (Unterminated string starting at column {column})"
    path.write_text('{"id": "x" "video": "v.mp4"}\n')
    with pytest.raises(AnnotationError) as info:
        read_records(path)
    assert info.value.reason == "not valid JSON (Expecting ',' delimiter at column 12)"


def test_a_video_given_as_an_annotation_file(tmp_path, indexed_video):
    with pytest.raises(AnnotationError, match="not a JSONL annotation file"):
        read_records(indexed_video)
    with pytest.raises(AnnotationError, match="a folder, not a JSONL annotation file"):
        read_records(tmp_path)
