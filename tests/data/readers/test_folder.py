"""The `folder` reader: a user's own videos in nested folders, with a CSV or JSONL table of
annotations, bad rows located by line, and the result usable for training and evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixma import AnnotationError
from mixma.cli import main
from mixma.data.annotations import QA, VideoRecord, read_records
from mixma.data.readers import FOLDER_FIELDS, read_dataset
from mixma.data.records import load_records
from mixma.data.section import VideoDataSection
from mixma.video.reader import probe
from mixma.video.writer import write_video

# What the collection holds (written by `collection`), and the ids the reader must give them.
VIDEOS = {
    "beach.mp4": "beach",
    "trips/day1/market.MP4": "trips/day1/market",  # an upper-case extension is a video too
    "trips/day1/beach.mov": "trips/day1/beach",
    "trips/day2/kitchen.mp4": "trips/day2/kitchen",
    "clips/a.mp4": "clips/a.mp4",  # two videos differing only in their extension keep it in their ids
    "clips/a.mkv": "clips/a.mkv",
}
NOT_VIDEOS = [".frame_cache/abc/beach.mp4", ".hidden/secret.mp4", "trips/._market.mp4", "notes.txt", "trips/day1/cover.jpg"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """A folder of tiny real videos in sub-folders, beside files the reader must not take."""
    root = tmp_path_factory.mktemp("my_videos")
    for i, name in enumerate([*VIDEOS, *NOT_VIDEOS[:3]]):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        frames = [np.full((32, 48, 3), (25 * i + 10 * t) % 256, np.uint8) for t in range(5)]
        write_video(root / name, frames, fps=5)
    for name in NOT_VIDEOS[3:]:
        (root / name).write_text("not a video")
    return root


def copy(collection: Path, tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    shutil.copytree(collection, root)
    return root


def test_every_video_is_one_record(collection):
    records = read_dataset("folder", collection, "test")
    assert {r.video: r.id for r in records} == VIDEOS
    assert [r.video for r in records] == sorted(VIDEOS)
    assert all(r == VideoRecord(r.id, r.video, "test") for r in records)
    assert {r.split for r in read_dataset("folder", collection, "train")} == {"train"}  # any split asked for
    for record in records:  # the paths are relative to the root and name real videos
        assert probe(record.video_path(collection)).num_frames == 5


QA_CSV = """video,question,answer,options,type,caption,label
beach.mp4,what is the dog chasing?,a ball,,what,,
beach,where is this?,a beach,a beach|a park|a kitchen,where,,
trips/day1/market,,,,,people walk between fruit stalls,
market.mp4,,,,,a busy market,market
kitchen,how many onions?,3,,,,
"""

QA_JSONL = [
    {"video": "beach.mp4", "question": "what is the dog chasing?", "answer": "a ball", "type": "what"},
    {"video": "beach", "question": "where is this?", "answer": "a beach", "options": ["a beach", "a park", "a kitchen"], "type": "where"},
    {"video": "trips/day1/market", "caption": "people walk between fruit stalls"},
    {"video": "market.mp4", "caption": "a busy market", "label": "market"},
    {"video": "kitchen", "question": "how many onions?", "answer": 3},
]

EXPECTED = {  # by id: what the table's rows give each video (the others have nothing)
    "beach": ([QA("what is the dog chasing?", "a ball", "what"), QA("where is this?", "a beach", "where", ["a beach", "a park", "a kitchen"])], [], None),
    "trips/day1/market": ([], ["people walk between fruit stalls", "a busy market"], "market"),
    "trips/day2/kitchen": ([QA("how many onions?", "3")], [], None),
}


def write_table(root: Path, name: str, text_or_rows) -> Path:
    path = root / name
    if isinstance(text_or_rows, str):
        path.write_text(text_or_rows)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in text_or_rows))
    return path


@pytest.mark.parametrize("name, table", [("qa.csv", QA_CSV), ("qa.jsonl", QA_JSONL)])
def test_a_table_annotates_videos_by_name_or_path(collection, tmp_path, name, table):
    root = copy(collection, tmp_path)
    write_table(root, name, table)
    records = read_dataset("folder", root, "test", annotations=name)
    assert [r.id for r in records] == [VIDEOS[v] for v in sorted(VIDEOS)]  # unannotated videos are kept
    got = {r.id: (r.qa, r.captions, r.label) for r in records if r.qa or r.captions or r.label}
    assert got == EXPECTED
    # the same table given by its absolute path
    assert read_dataset("folder", root, "test", annotations=str(root / name)) == records


def test_bad_rows_are_skipped_with_their_lines_and_good_ones_kept(collection, tmp_path):
    root = copy(collection, tmp_path)
    bad = [
        ("holiday.mp4,what is this?,a boat,,,,", "no video 'holiday.mp4' under"),  # not downloaded, or a typo
        ("a,what is this?,a cat,,,,", "video 'a' is ambiguous (clips/a.mkv, clips/a.mp4): give its path in the folder"),
        ("beach,what colour is the sea?,,,,,", "a question needs an answer and an answer a question"),
        ("beach,which dog?,the red one,small|big,,,", "the answer 'the red one' is not one of the options"),
        ("market,,,,,,harbour", "label 'harbour' disagrees with 'market' on line 5"),
    ]
    text = QA_CSV + "".join(row + "\n" for row, _ in bad)
    path = write_table(root, "qa.csv", text)
    errors: list[AnnotationError] = []
    records = read_dataset("folder", root, "test", errors=errors, annotations="qa.csv")
    good = {r.id: (r.qa, r.captions, r.label) for r in records if r.qa or r.captions or r.label}
    assert good == EXPECTED  # every good row of the table, nothing from the bad ones
    lines = text.splitlines()
    assert [e.line for e in errors] == [lines.index(row) + 1 for row, _ in bad]
    for error, (_, reason) in zip(errors, bad):
        assert error.path == str(path) and reason in error.reason
    with pytest.raises(AnnotationError, match="qa.csv:7: no video 'holiday.mp4'"):
        read_dataset("folder", root, "test", annotations="qa.csv")


def test_bad_jsonl_rows(collection, tmp_path):
    root = copy(collection, tmp_path)
    lines = [json.dumps(QA_JSONL[0]), "{not json", '["a", "list"]', json.dumps({"video": "beach", "start": -2, "caption": "x"}), json.dumps(QA_JSONL[2])]
    write_table(root, "qa.jsonl", "\n".join(lines) + "\n")
    errors: list[AnnotationError] = []
    records = read_dataset("folder", root, "test", errors=errors, annotations="qa.jsonl")
    assert [(e.line, e.reason) for e in errors] == [
        (2, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (3, "a row must be a JSON object"),
        (4, "'start' must be a non-negative number of seconds, got -2"),
    ]
    assert sum(len(r.qa) + len(r.captions) for r in records) == 2


@pytest.mark.parametrize("table, line", [("video,questoin,answer\nbeach,q?,a\n", 1), ([QA_JSONL[0], {"video": "beach", "questoin": "q?"}], 2)])
def test_an_unknown_column_is_an_error_naming_it(collection, tmp_path, table, line):
    root = copy(collection, tmp_path)
    path = write_table(root, "qa.csv" if isinstance(table, str) else "qa.jsonl", table)
    for errors in (None, []):  # a misspelt column is never a skippable row
        with pytest.raises(AnnotationError) as info:
            read_dataset("folder", root, "test", errors=errors, annotations=path.name)
        assert (info.value.path, info.value.line) == (str(path), line)
        assert info.value.reason == f"unknown column 'questoin' (the columns are {', '.join(FOLDER_FIELDS)})"


def test_a_split_column_decides_and_the_rest_are_test(collection, tmp_path):
    root = copy(collection, tmp_path)
    write_table(root, "split.csv", "video,split,caption\nbeach,train,a dog runs\nbeach,,a dog barks\nkitchen,val,\nclips/a.mkv,,\n")
    split = lambda s: [r.id for r in read_dataset("folder", root, s, annotations="split.csv")]  # noqa: E731
    assert split("train") == ["beach"] and split("val") == ["trips/day2/kitchen"]
    assert split("test") == sorted(set(VIDEOS.values()) - {"beach", "trips/day2/kitchen"})
    assert read_dataset("folder", root, "train", annotations="split.csv")[0].captions == ["a dog runs", "a dog barks"]
    with pytest.raises(AnnotationError, match=r"split.csv: no video is in split 'meta' \(the table's split column puts 1 in train, 1 in val; the rest are in 'test'\)"):
        read_dataset("folder", root, "meta", annotations="split.csv")
    write_table(root, "split.csv", "video,split\nbeach,train\nbeach.mp4,test\n")
    errors: list[AnnotationError] = []
    read_dataset("folder", root, "train", errors=errors, annotations="split.csv")
    assert [(e.line, e.reason) for e in errors] == [(3, "split 'test' disagrees with 'train' on line 2")]


def test_rows_with_times_annotate_clips(collection, tmp_path):
    root = copy(collection, tmp_path)
    write_table(root, "clips.jsonl", [
        {"video": "trips/day2/kitchen", "start": 0, "end": 2.5, "caption": "he picks up a knife"},
        {"video": "trips/day2/kitchen", "start": 2.5, "end": 4, "caption": "he chops an onion"},
        {"video": "trips/day2/kitchen", "start": 0, "end": 2.5, "caption": "a man takes a knife"},
        {"video": "beach", "start": 1, "caption": "the dog comes back"},
    ])
    records = {r.id: r for r in read_dataset("folder", root, "test", annotations="clips.jsonl")}
    assert "trips/day2/kitchen" not in records  # a video the rows cut into clips is those clips
    first = records["trips/day2/kitchen_0-2.5"]
    assert (first.video, first.start, first.end, first.captions) == (
        "trips/day2/kitchen.mp4", 0.0, 2.5, ["he picks up a knife", "a man takes a knife"])
    assert records["trips/day2/kitchen_2.5-4"].captions == ["he chops an onion"]
    assert (records["beach_1-"].start, records["beach_1-"].end) == (1.0, None)


@pytest.mark.parametrize("name, text, reason", [
    ("qa.txt", "video\nbeach\n", "an annotation table must be a .csv or .jsonl file"),
    ("absent.csv", None, "no such file"),
    ("qa.csv", "question,answer\nq?,a\n", "missing column(s) video"),
])
def test_bad_tables(collection, tmp_path, name, text, reason):
    root = copy(collection, tmp_path)
    if text is not None:
        write_table(root, name, text)
    with pytest.raises(AnnotationError, match=f"{name}(:1)?: {reason}".replace("(s)", r"\(s\)")):
        read_dataset("folder", root, "test", errors=[], annotations=name)


def test_a_folder_without_videos(tmp_path):
    (tmp_path / ".frame_cache").mkdir()
    (tmp_path / ".frame_cache" / "x.mp4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(AnnotationError, match="no video files under it"):
        read_dataset("folder", tmp_path, "test")


def test_convert_then_train_and_evaluate_on_it(collection, tmp_path, capsys):
    root = copy(collection, tmp_path)
    write_table(root, "qa.csv", QA_CSV)
    out = tmp_path / "ann" / "my_videos.jsonl"
    code = main(["data", "convert", "folder", str(root), "--split", "test", "-o", str(out), "--set", "annotations=qa.csv"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.strip() == f"wrote {len(VIDEOS)} records (3 QA pairs, 2 captions) to {out}"  # no video missing
    records = read_records(out)
    assert [r.video_path(out.parent).resolve() for r in records] == [(root / v).resolve() for v in sorted(VIDEOS)]
    # a trainer or evaluator can read the folder directly too: every video opens, none left out
    section = VideoDataSection(dataset="folder", root=str(root), options={"annotations": "qa.csv"})
    loaded = load_records(section, "test", say=None)
    assert len(loaded.records) == len(VIDEOS) and not loaded.missing_videos and not loaded.unreadable_videos
