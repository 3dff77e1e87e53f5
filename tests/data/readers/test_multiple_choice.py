"""The NExT-QA reader: options kept in order, the answer is the right option's text, bad rows
located by line, and the records train a multiple-choice task."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from mixma import AnnotationError
from mixma.data.readers import NEXTQA_TYPES, read_dataset
from mixma.data.samples import multiple_choice_items

FIXTURE = Path(__file__).parents[1] / "fixtures" / "nextqa"


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The fixture's rows as the csv module reads them (independent of the reader)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "nextqa"
    shutil.copytree(FIXTURE, root)
    return root


def test_options_in_order_and_the_answer_is_the_indexed_option():
    records = read_dataset("nextqa", FIXTURE, "val")
    rows = csv_rows(FIXTURE / "val.csv")
    # one record per video, first-seen order; a video's questions in file order
    assert [r.id for r in records] == ["5000000001", "5000000002"]
    questions = {qa.id: (r.id, qa) for r in records for qa in r.qa}
    assert list(questions) == ["5000000001_0", "5000000001_1", "5000000001_2", "5000000002_0"]
    assert len(questions) == len(rows)
    for row in rows:
        video, qa = questions[f"{row['video']}_{row['qid']}"]
        options = [row[f"a{i}"] for i in range(5)]
        assert video == row["video"] and qa.question == row["question"] and qa.type == row["type"]
        assert qa.options == options and qa.answer == options[int(row["answer"])]
    assert records[0].meta == {"frame_count": 420, "width": 640, "height": 480}
    assert {qa.type for _, qa in questions.values()} <= set(NEXTQA_TYPES)


def test_video_paths_follow_the_map_when_present():
    with_map = read_dataset("nextqa", FIXTURE, "val")
    mapping = json.loads((FIXTURE / "map_vid_vidorID.json").read_text())
    assert [r.video for r in with_map] == [f"videos/{mapping[r.id]}.mp4" for r in with_map]
    assert with_map[0].video == "videos/1001/5000000001.mp4"
    plain = read_dataset("nextqa", FIXTURE, "val", mapping=False, video_path="NExTVideo/{video}.mp4")
    assert [r.video for r in plain] == ["NExTVideo/5000000001.mp4", "NExTVideo/5000000002.mp4"]


def test_the_multiple_choice_label_is_the_csv_answer(tmp_path):
    items = multiple_choice_items(read_dataset("nextqa", FIXTURE, "val"), FIXTURE)
    rows = sorted(csv_rows(FIXTURE / "val.csv"), key=lambda r: (r["video"] != "5000000001", int(r["qid"])))
    assert [item.fields["label"] for item in items] == [int(r["answer"]) for r in rows]
    assert items[0].fields["options"] == tuple(rows[0][f"a{i}"] for i in range(5))


@pytest.mark.parametrize("answer", ["5", "-1", "two", ""])
def test_a_bad_answer_index_is_a_bad_entry(tmp_path, answer):
    root = copy_fixture(tmp_path)
    path = root / "val.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")  # the second question of 5000000001
    cells[5] = answer
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    errors: list[AnnotationError] = []
    records = read_dataset("nextqa", root, "val", errors=errors)
    assert sum(len(r.qa) for r in records) == len(csv_rows(FIXTURE / "val.csv")) - 1
    assert [q.id for q in records[0].qa] == ["5000000001_0", "5000000001_2"]  # its other questions kept
    reason = "'answer' is empty" if not answer else f"'answer' must be the index 0-4 of the right option, got {answer!r}"
    assert [(e.path, e.line, e.reason) for e in errors] == [(str(path), 3, reason)]
    with pytest.raises(AnnotationError, match=f"val.csv:3: {reason}"):
        read_dataset("nextqa", root, "val")


def test_bad_rows_and_map_entries(tmp_path):
    root = copy_fixture(tmp_path)
    (root / "map_vid_vidorID.json").write_text('{"5000000001": "1001/5000000001", "5000000002": 42}')
    with (root / "val.csv").open("a") as f:
        f.write("5000000002,900,640,360,how many slides are there,0,0,DC,one,two,three,four,five\n")  # qid 0 again
        f.write("5000000003,300,640,480,what is the cat doing,1,0,DO,sleeping,eating,,playing,jumping\n")
    errors: list[AnnotationError] = []
    records = read_dataset("nextqa", root, "val", errors=errors)
    assert [(r.id, len(r.qa)) for r in records] == [("5000000001", 3)]
    assert [(Path(e.path).name, e.line, e.reason) for e in errors] == [
        ("map_vid_vidorID.json", 1, "entry '5000000002': expected a path such as '1001/5000000001', got 42"),
        ("val.csv", 4, "video 5000000002 is not in map_vid_vidorID.json"),
        ("val.csv", 6, "video 5000000002 is not in map_vid_vidorID.json"),
        ("val.csv", 7, "'a2' is empty"),
    ]
    errors.clear()
    read_dataset("nextqa", root, "val", errors=errors, mapping=False)
    assert [(e.line, e.reason) for e in errors] == [(6, "question '5000000002_0' appears twice"), (7, "'a2' is empty")]


def test_files_in_another_layout(tmp_path):
    with pytest.raises(AnnotationError, match="no such file"):
        read_dataset("nextqa", FIXTURE, "train")
    shutil.copy(FIXTURE / "val.csv", tmp_path / "val.csv")  # without its map
    with pytest.raises(AnnotationError, match="map_vid_vidorID.json: no such file"):
        read_dataset("nextqa", tmp_path, "val", mapping=True)
    assert read_dataset("nextqa", tmp_path, "val")[0].video == "videos/5000000001.mp4"
    (tmp_path / "val.csv").write_text("video,question,answer,qid,a0,a1\n1,q?,0,0,x,y\n")  # NExT-OE-like, two options
    with pytest.raises(AnnotationError, match=r"val.csv:1: missing column\(s\) a2, a3, a4"):
        read_dataset("nextqa", tmp_path, "val", errors=[])
    nested = tmp_path / "dataset" / "nextqa"
    nested.mkdir(parents=True)
    shutil.copy(FIXTURE / "val.csv", nested / "val.csv")
    shutil.copy(FIXTURE / "map_vid_vidorID.json", nested / "map_vid_vidorID.json")
    (tmp_path / "val.csv").unlink()
    assert [r.video for r in read_dataset("nextqa", tmp_path, "val")] == ["videos/1001/5000000001.mp4", "videos/0042/5000000002.mp4"]
