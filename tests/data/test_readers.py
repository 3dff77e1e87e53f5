"""Dataset readers: hand-written expected records for small files in each real layout, both
layouts of a dataset agreeing, bad entries located by file and line, and the registry."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from mixma import AnnotationError
from mixma.data.annotations import QA, VideoRecord, read_records, write_records
from mixma.data.readers import (
    DATASETS,
    MALMM_BREAKFAST_EXCLUDED,
    MALMM_COIN_EXCLUDED,
    lvu_windows,
    read_dataset,
    relocate,
    write_dataset,
)

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str, root: str, split: str = "test", **options) -> list[VideoRecord]:
    return read_dataset(name, FIXTURES / root, split, **options)


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line containing `needle` (counted independently of the reader)."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def copy_fixture(tmp_path: Path, root: str) -> Path:
    target = tmp_path / root.replace("/", "_")
    shutil.copytree(FIXTURES / root, target)
    return target


# ---------------------------------------------------------------------------------------------
# QA


MSRVTT_QA_EXPECTED = [
    ("video7010", [("who is singing on the stage?", "man", "who"), ("what does the man play?", "guitar", "what")]),
    ("video7011", [("where is the woman cooking?", "kitchen", "where")]),
]


def qa_summary(records):
    return [(r.id, [(q.question, q.answer, q.type) for q in r.qa]) for r in records]


def test_msrvtt_qa_malmm_layout():
    records = read("msrvtt_qa", "msrvtt_qa/malmm")
    assert qa_summary(records) == MSRVTT_QA_EXPECTED
    assert [q.id for q in records[0].qa] == ["0000000", "0000001"]
    assert records[0] == VideoRecord(
        "video7010", "videos/video7010.mp4", "test",
        qa=[QA("who is singing on the stage?", "man", "who", id="0000000"), QA("what does the man play?", "guitar", "what", id="0000001")],
        meta={"frame_length": 152},
    )


def test_msrvtt_qa_original_layout_matches_malmm():
    records = read("msrvtt_qa", "msrvtt_qa/xu", video_path="frames/{video}")
    # types come from the first word, which here equals MA-LMM's answer_type
    assert qa_summary(records) == MSRVTT_QA_EXPECTED
    assert [q.id for q in records[0].qa] == ["0", "1"]
    assert records[0].video == "frames/video7010"
    assert records[1].meta == {"category": 15}


def test_msvd_qa_mapping_names_clips_like_malmm():
    malmm = read("msvd_qa", "msvd_qa/malmm")
    original = read("msvd_qa", "msvd_qa/xu")
    assert [r.id for r in original] == [r.id for r in malmm] == ["jfrrO5K_vKM_55_65", "jjl2ZMdFCsw_130_142"]
    assert qa_summary(original) == qa_summary(malmm)
    assert original[0].video == "YouTubeClips/jfrrO5K_vKM_55_65.avi"
    unmapped = read("msvd_qa", "msvd_qa/xu", mapping=False)
    assert [r.id for r in unmapped] == ["vid1201", "vid1202"]
    with pytest.raises(AnnotationError, match="no such file"):
        read("msvd_qa", "msvd_qa/malmm", mapping=True)


def test_msvd_qa_video_missing_from_mapping(tmp_path):
    root = copy_fixture(tmp_path, "msvd_qa/xu")
    mapping = root / "youtube_mapping.txt"
    mapping.write_text(mapping.read_text().replace("jjl2ZMdFCsw_130_142 vid1202\n", "not a mapping line\n"))
    errors: list[AnnotationError] = []
    records = read_dataset("msvd_qa", root, "test", errors=errors)
    assert [r.id for r in records] == ["jfrrO5K_vKM_55_65"]
    assert [(e.path, e.line) for e in errors] == [(str(mapping), 3), (str(root / "test_qa.json"), 1)]
    assert "expected '<clip name> vid<N>'" in errors[0].reason
    assert errors[1].reason == "item 2: vid1202 is not in youtube_mapping.txt"


def test_activitynet_qa_both_layouts_agree():
    malmm = read("activitynet_qa", "activitynet_qa/malmm")
    original = read("activitynet_qa", "activitynet_qa/original")
    expected = [
        ("1QIUV7WYKXg", [("is the athlete wearing trousers", "no", "yes_no"), ("what does the athlete do after jumping", "run", "motion")]),
        ("9eniCub7u60", [("how many people are in the video", "2", "number")]),
    ]
    assert qa_summary(malmm) == qa_summary(original) == expected
    assert [q.id for q in original[0].qa] == ["v_1QIUV7WYKXg_3", "v_1QIUV7WYKXg_0"]
    assert malmm[0].video == "videos/1QIUV7WYKXg.mp4" and original[0].video == "videos/v_1QIUV7WYKXg.mp4"
    assert malmm[1].meta == {"frame_length": 195}


def test_activitynet_qa_unmatched_questions_and_answers(tmp_path):
    root = copy_fixture(tmp_path, "activitynet_qa/original")
    a_path = root / "dataset" / "test_a.json"
    answers = json.loads(a_path.read_text())
    answers[2]["question_id"] = "v_somethingelse_1"
    a_path.write_text(json.dumps(answers, indent=1))
    errors: list[AnnotationError] = []
    records = read_dataset("activitynet_qa", root, "test", errors=errors)
    assert [r.id for r in records] == ["1QIUV7WYKXg"]
    assert [e.reason for e in errors] == [
        "item 2: no answer with question id 'v_9eniCub7u60_7' in test_a.json",
        "answer for question id 'v_somethingelse_1' has no question in test_q.json",
    ]
    assert errors[1].line == line_of(a_path, "v_somethingelse_1") - 3  # its "{" is 3 lines above (answer, type)


# ---------------------------------------------------------------------------------------------
# Classification


def test_lvu_one_record_per_labelled_video():
    records = read("lvu", "lvu", "val", task="director")
    assert [(r.id, r.label, r.start, r.end) for r in records] == [("0Ij2veeSsE4", "steven", None, None), ("6dDbnwQlCek", "martin", None, None)]
    assert records[0].meta == {"task": "director", "duration": 162.0, "num_frames": 1923}
    assert [r.label for r in read("lvu", "lvu", "val", task="year")] == ["4"]


def test_lvu_windows_of_100_s_every_20_s():
    records = read("lvu", "lvu", "val", task="genre", window=100, stride=20)
    # 162 s: windows start at 0, 20, 40, 60 (80 + 100 > 162); 42 s: one window over the whole video
    assert [(r.id, r.start, r.end, r.label) for r in records] == [
        ("0Ij2veeSsE4_0", 0, 100, "action"), ("0Ij2veeSsE4_20", 20, 120, "action"),
        ("0Ij2veeSsE4_40", 40, 140, "action"), ("0Ij2veeSsE4_60", 60, 160, "action"),
        ("5v5JjUZpAPk_0", 0, 42, "comedy"),
    ]
    assert {r.video for r in records[:4]} == {"videos/0Ij2veeSsE4.mp4"}


def test_lvu_window_starts_follow_malmm():
    for duration in range(1, 400):  # MA-LMM: start 0, then range(stride, duration - history + 1, stride)
        starts = [s for s, _ in lvu_windows(duration, 100, 20)]
        assert starts == [0] + list(range(20, duration - 100 + 1, 20)), duration


def test_lvu_rejects_unknown_task():
    with pytest.raises(ValueError, match="unknown LVU task 'plot'"):
        read("lvu", "lvu", "val", task="plot")


def test_breakfast_labels_exclusions_and_test_fallback():
    records = read("breakfast", "breakfast", "train")
    assert [(r.id, r.label, r.meta["class_label"]) for r in records] == [
        ("P03-cam01-P03_cereals", "cereal", 0), ("P28-cam01-P28_cereals", "cereal", 0), ("P03-cam01-P03_friedegg", "fried egg", 4),
    ]
    kept = read("breakfast", "breakfast", "train", exclude=list(MALMM_BREAKFAST_EXCLUDED))
    assert [r.id for r in kept] == ["P03-cam01-P03_cereals", "P03-cam01-P03_friedegg"]
    assert [r.id for r in read("breakfast", "breakfast", "train", exclude="P03-cam01-P03_cereals,P03-cam01-P03_friedegg")] == ["P28-cam01-P28_cereals"]
    test = read("breakfast", "breakfast", "test")
    assert [(r.id, r.label, r.split) for r in test] == [("P47-cam01-P47_coffee", "coffee", "test"), ("P47-cam01-P47_scrambledegg", "scrambled egg", "test")]


def test_coin_malmm_layout_subset_and_filters():
    records = read("coin", "coin/malmm", "train")
    assert [(r.id, r.label) for r in records] == [("-0og5AMGQ2o", "assemble sofa"), ("AfiVmAjfTNs", "make pizza"), ("1fVHHmEvy4k", "change car tire")]
    assert records[0].meta == {"subset": "train", "duration": 131.0, "num_frames": 1309}
    filtered = read("coin", "coin/malmm", "train", exclude=MALMM_COIN_EXCLUDED, require_frames=True)
    assert [r.id for r in filtered] == ["-0og5AMGQ2o"]
    assert [r.id for r in read("coin", "coin/malmm", "val")] == ["0i8HwZz8pVE"]
    assert [r.id for r in read("coin", "coin/malmm", "test", subset="val")] == ["0i8HwZz8pVE"]


def test_coin_original_layout():
    assert [(r.id, r.label, r.meta["recipe_type"]) for r in read("coin", "coin/original", "train")] == [("-0og5AMGQ2o", "AssembleSofa", 33)]
    assert [(r.id, r.label) for r in read("coin", "coin/original", "test")] == [("0i8HwZz8pVE", "MakePizza")]


# ---------------------------------------------------------------------------------------------
# Captioning


def test_msrvtt_captions_grouped_per_video():
    records = read("msrvtt_cap", "msrvtt_cap", "val")
    assert records == [
        VideoRecord("video6513", "videos/video6513.mp4", "val", captions=["a family is having a conversation", "a girl sings on the couch", "three people are sitting on a couch"], meta={"frame_length": 102}),
        VideoRecord("video6514", "videos/video6514.mp4", "val", captions=["a woman is surfing", "a man rides a dirt bike on a trail"], meta={"frame_length": 152}),
    ]


def test_msvd_captions():
    records = read("msvd_cap", "msvd_cap", "val")
    assert [(r.id, r.video, len(r.captions)) for r in records] == [
        ("bQJQGoJF7_k_162_169", "YouTubeClips/bQJQGoJF7_k_162_169.avi", 2), ("bSIjZ75a50s_286_304", "YouTubeClips/bSIjZ75a50s_286_304.avi", 1),
    ]


def test_youcook2_segments_from_both_layouts():
    malmm = read("youcook2", "youcook2/malmm", "val")
    assert malmm[0] == VideoRecord(
        "xHr8X2Wpmno_0047_0060", "videos/xHr8X2Wpmno.mp4", "val", start=47.0, end=60.0,
        captions=["pick the ends off the verdalago"], meta={"duration": 206.86, "frame_length": 2070, "recipe": "fattoush"},
    )
    # 199-210 s overshoots the 206.86 s video: clipped to its end
    assert (malmm[1].start, malmm[1].end) == (199.0, 206.86)
    original = read("youcook2", "youcook2/original", "val")
    summary = [(r.id, r.video, r.start, r.end, r.captions) for r in malmm]
    assert [(r.id, r.video, r.start, r.end, r.captions) for r in original] == summary
    assert original[2].meta == {"duration": 189.36, "recipe_type": "113"}
    assert [r.id for r in read("youcook2", "youcook2/original", "train")] == ["GLd3aX16zBg_0090_0102"]


def test_youcook2_test_split_has_blank_captions():
    [record] = read("youcook2", "youcook2/malmm", "test")
    assert (record.id, record.captions, record.meta["recipe"]) == ("mZwK0TBI1iY_0021_0032", [], "chicken parmesan")
    with pytest.raises(AnnotationError, match="no such file"):
        read("youcook2", "youcook2/original", "test")


# ---------------------------------------------------------------------------------------------
# Retrieval


def test_msrvtt_retrieval_9k_train_and_1ka_test():
    train = read("msrvtt_ret", "msrvtt_ret", "train")
    assert [(r.id, r.captions) for r in train] == [("video0", ["a car is shown", "a man drives a red car"]), ("video1", ["a woman talks about a dress"])]
    assert train[0].meta == {"category": 9, "url": "https://www.youtube.com/watch?v=9lZi22qLlEo", "source_start": 137.72, "source_end": 149.44}
    assert (train[0].start, train[0].end) == (None, None)
    test = read("msrvtt_ret", "msrvtt_ret", "test")
    assert [(r.id, len(r.captions), r.meta) for r in test] == [("video7579", 1, {"key": "ret0", "vid_key": "msr7579"}), ("video7725", 1, {"key": "ret1", "vid_key": "msr7725"})]
    assert test[0].captions == ["a girl wearing red top and black trouser is putting a sweater on a dog"]
    assert [r.id for r in read("msrvtt_ret", "msrvtt_ret", "train", protocol="7k")] == ["video1"]


def test_msrvtt_retrieval_full_protocol_and_no_val_in_1ka():
    assert [(r.id, r.captions) for r in read("msrvtt_ret", "msrvtt_ret", "val", protocol="full")] == [("video6513", ["people sit on a couch"])]
    assert [r.id for r in read("msrvtt_ret", "msrvtt_ret", "test", protocol="full")] == ["video7010"]
    with pytest.raises(ValueError, match="no val split"):
        read("msrvtt_ret", "msrvtt_ret", "val")


def _msvd_root(tmp_path: Path, captions: object) -> Path:
    root = copy_fixture(tmp_path, "msvd_ret")
    (root / "msvd_data" / "raw-captions.pkl").write_bytes(pickle.dumps(captions))
    return root


def test_msvd_retrieval_joins_tokens(tmp_path):
    root = _msvd_root(tmp_path, {
        "jfrrO5K_vKM_55_65": [["a", "man", "opens", "a", "box"], ["someone", "shows", "a", "rifle"]],
        "jjl2ZMdFCsw_130_142": [["a", "man", "twirls", "a", "sword"]],
        "-4wsuPCjDBc_5_15": [["a", "cat", "plays"]],
    })
    records = read_dataset("msvd_ret", root, "test")
    assert [(r.id, r.video, r.captions) for r in records] == [
        ("jfrrO5K_vKM_55_65", "YouTubeClips/jfrrO5K_vKM_55_65.avi", ["a man opens a box", "someone shows a rifle"]),
        ("jjl2ZMdFCsw_130_142", "YouTubeClips/jjl2ZMdFCsw_130_142.avi", ["a man twirls a sword"]),
    ]


def test_msvd_retrieval_refuses_pickled_code(tmp_path):
    root = _msvd_root(tmp_path, {"jfrrO5K_vKM_55_65": [shutil.rmtree]})
    with pytest.raises(AnnotationError, match="refusing to load shutil.rmtree"):
        read_dataset("msvd_ret", root, "test")


def test_msvd_retrieval_clip_without_captions(tmp_path):
    root = _msvd_root(tmp_path, {"jfrrO5K_vKM_55_65": [["a", "box"]]})
    errors: list[AnnotationError] = []
    assert [r.id for r in read_dataset("msvd_ret", root, "test", errors=errors)] == ["jfrrO5K_vKM_55_65"]
    assert [(Path(e.path).name, e.line, e.reason) for e in errors] == [("test_list.txt", 2, "clip 'jjl2ZMdFCsw_130_142': no captions in raw-captions.pkl")]


def test_didemo_paragraphs_in_temporal_order():
    records = read("didemo", "didemo")
    first = records[0]
    assert (first.id, first.video) == ("12090392@N02_13482799053_87ef417396", "videos/12090392@N02_13482799053_87ef417396.mp4")
    # annotation 102 (chunks 0-0/0-1/0-0/0-0: 0 s to (0.25 + 1) * 5 = 6.25 s) comes before 101 (10 s on)
    assert first.captions == ["a man walks on stage. the camera pans to the crowd."]
    assert first.meta == {
        "annotation_ids": [102, 101], "file": "12090392@N02_13482799053_87ef417396.mov",
        "sentences": ["a man walks on stage.", "the camera pans to the crowd."], "times": [[0.0, 6.25], [10.0, 16.25]],
    }
    assert records[1].meta["times"] == [[5.0, 11.25]]


def test_activitynet_captions_paragraphs():
    records = read("activitynet_captions", "activitynet_captions")
    assert [r.id for r in records] == ["QOlSCBRmfWY", "ehGHCYKzyZ8"]
    assert records[0].video == "videos/v_QOlSCBRmfWY.mp4"
    assert records[0].captions == ["A young woman is seen standing in a room. She then holds the leg in a stretch. She lifts her leg up and down."]
    assert records[0].meta["times"] == [[0.83, 19.86], [17.37, 60.81], [56.26, 79.42]]
    assert records[0].meta["duration"] == 82.73
    with pytest.raises(AnnotationError, match="val_2.json: no such file"):
        read("activitynet_captions", "activitynet_captions", "val")


def test_synthetic_reads_canonical_jsonl():
    records = read("synthetic", "synthetic")
    assert records == read_records(FIXTURES / "synthetic" / "test.jsonl")
    assert [r.label for r in records] == ["red circle", "blue star"]


# ---------------------------------------------------------------------------------------------
# Every reader's output is valid canonical JSONL


ALL_FIXTURES = [
    ("msrvtt_qa", "msrvtt_qa/malmm", "test", {}), ("msrvtt_qa", "msrvtt_qa/xu", "test", {}),
    ("msvd_qa", "msvd_qa/malmm", "test", {}), ("msvd_qa", "msvd_qa/xu", "test", {}),
    ("activitynet_qa", "activitynet_qa/malmm", "test", {}), ("activitynet_qa", "activitynet_qa/original", "test", {}),
    ("lvu", "lvu", "val", {"task": "genre", "window": 100}), ("breakfast", "breakfast", "val", {}),
    ("coin", "coin/malmm", "train", {}), ("coin", "coin/original", "train", {}),
    ("msrvtt_cap", "msrvtt_cap", "val", {}), ("msvd_cap", "msvd_cap", "val", {}),
    ("youcook2", "youcook2/malmm", "val", {}), ("youcook2", "youcook2/malmm", "test", {}), ("youcook2", "youcook2/original", "val", {}),
    ("msrvtt_ret", "msrvtt_ret", "train", {}), ("msrvtt_ret", "msrvtt_ret", "test", {}),
    ("didemo", "didemo", "test", {}), ("activitynet_captions", "activitynet_captions", "test", {}), ("synthetic", "synthetic", "test", {}),
    ("nextqa", "nextqa", "val", {}),
]


def test_fixtures_cover_every_dataset():
    # msvd_ret's pickle and folder's videos are written by their tests (readers/test_folder.py)
    assert {name for name, *_ in ALL_FIXTURES} | {"msvd_ret", "folder"} == set(DATASETS)


@pytest.mark.parametrize("name, root, split, options", ALL_FIXTURES)
def test_records_round_trip_through_jsonl(tmp_path, name, root, split, options):
    records = read(name, root, split, **options)
    assert records and len({r.id for r in records}) == len(records)
    write_records(tmp_path / "out.jsonl", records)
    assert read_records(tmp_path / "out.jsonl") == records


def test_write_dataset_makes_video_paths_relative_to_the_output(tmp_path):
    out = tmp_path / "ann" / "qa.jsonl"
    written = write_dataset("msrvtt_qa", FIXTURES / "msrvtt_qa" / "malmm", "test", out)
    [first, _] = read_records(out)
    assert first == written[0]
    assert first.video_path(out.parent).resolve() == (FIXTURES / "msrvtt_qa" / "malmm" / "videos" / "video7010.mp4").resolve()
    absolute = relocate([VideoRecord("a", "/data/a.mp4")], tmp_path, tmp_path / "x")
    assert absolute[0].video == "/data/a.mp4"


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_entry_is_named_by_file_and_line(tmp_path):
    root = copy_fixture(tmp_path, "msrvtt_qa/malmm")
    path = root / "annotation" / "qa_test.json"
    data = json.loads(path.read_text())
    del data["0000001"]["answer"]
    data["0000002"]["question"] = "   "
    path.write_text(json.dumps(data, indent=4))
    with pytest.raises(AnnotationError) as info:
        read_dataset("msrvtt_qa", root, "test")
    line = line_of(path, '"0000001": {')
    assert str(info.value) == f"{path}:{line}: entry '0000001': missing 'answer'"
    errors: list[AnnotationError] = []
    records = read_dataset("msrvtt_qa", root, "test", errors=errors)
    assert qa_summary(records) == [("video7010", [("who is singing on the stage?", "man", "who")])]
    assert [(e.line, e.reason) for e in errors] == [
        (line_of(path, '"0000001": {'), "entry '0000001': missing 'answer'"),
        (line_of(path, '"0000002": {'), "entry '0000002': 'question' must be a non-empty string, got '   '"),
    ]


def test_invalid_json_reports_the_line(tmp_path):
    path = tmp_path / "annotation" / "qa_test.json"
    path.parent.mkdir()
    path.write_text('{\n    "0": {"question": "q?", "answer": "a", "video": "v"},\n    "1": {"question": "q?" "answer": "a"}\n}\n')
    with pytest.raises(AnnotationError) as info:
        read_dataset("msrvtt_qa", tmp_path, "test", errors=[])
    assert info.value.line == 3 and "not valid JSON" in info.value.reason


def test_repeated_key_and_question_id(tmp_path):
    (tmp_path / "qa_test.json").write_text(
        '{\n "a": {"question": "q1?", "answer": "x", "video": "v1", "question_id": "a"},\n'
        ' "a": {"question": "q2?", "answer": "y", "video": "v1", "question_id": "a"}\n}\n'
    )
    errors: list[AnnotationError] = []
    records = read_dataset("msrvtt_qa", tmp_path, "test", errors=errors)
    assert [q.question for q in records[0].qa] == ["q1?"]
    assert [(e.line, e.reason) for e in errors] == [(3, "entry 'a' appears twice")]
    (tmp_path / "qa_test.json").write_text(json.dumps([
        {"question": "q1?", "answer": "x", "video_id": 1, "id": 7}, {"question": "q2?", "answer": "y", "video_id": 1, "id": 7},
    ]))
    with pytest.raises(AnnotationError, match="item 1: duplicate question id '7'"):
        read_dataset("msrvtt_qa", tmp_path, "test")


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(AnnotationError, match="no such file"):
        read_dataset("breakfast", tmp_path, "train")
    with pytest.raises(AnnotationError, match="no such file"):
        read_dataset("msrvtt_qa", tmp_path / "absent", "test")
    with pytest.raises(AnnotationError, match="test.jsonl: no such file"):
        read_dataset("synthetic", tmp_path, "test")


def test_registry_rejects_unknown_names_splits_and_options():
    with pytest.raises(ValueError, match="unknown dataset 'kinetics'"):
        read_dataset("kinetics", FIXTURES, "test")
    with pytest.raises(ValueError, match="splits train, val, test, not 'meta'"):
        read("msrvtt_qa", "msrvtt_qa/malmm", "meta")
    with pytest.raises(ValueError, match=r"unknown option\(s\) task for msrvtt_qa"):
        read("msrvtt_qa", "msrvtt_qa/malmm", task="genre")
    with pytest.raises(ValueError, match=r"lvu needs the option\(s\) task"):
        read("lvu", "lvu", "val")
    with pytest.raises(ValueError, match="may only use the fields"):
        read("msrvtt_qa", "msrvtt_qa/malmm", video_path="videos/{name}.mp4")


# ---------------------------------------------------------------------------------------------
# Nothing lost: one bad entry drops only itself, never the good entries beside it


def edit_json(root: Path, name: str, change) -> Path:
    """Rewrite the JSON file `root/name` with `change(data)` applied (indented, one key a line)."""
    path = root / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))
    return path


def fixture_json(root: str, name: str):
    return json.loads((FIXTURES / root / name).read_text())


def qa_count(records):
    return sum(len(r.qa) for r in records)


def test_qa_one_bad_pair_keeps_the_videos_other_pairs(tmp_path):
    # video7010 has two QA pairs; its first loses its answer
    root = copy_fixture(tmp_path, "msrvtt_qa/malmm")
    path = edit_json(root, "annotation/qa_test.json", lambda d: d["0000000"].pop("answer"))
    errors: list[AnnotationError] = []
    records = read_dataset("msrvtt_qa", root, "test", errors=errors)
    assert qa_count(records) == len(fixture_json("msrvtt_qa/malmm", "annotation/qa_test.json")) - 1 == 2
    assert qa_summary(records) == [("video7010", [MSRVTT_QA_EXPECTED[0][1][1]]), MSRVTT_QA_EXPECTED[1]]
    assert [(e.path, e.line, e.reason) for e in errors] == [(str(path), line_of(path, '"0000000"'), "entry '0000000': missing 'answer'")]


def test_qa_one_bad_answer_of_the_original_activitynet_files(tmp_path):
    root = copy_fixture(tmp_path, "activitynet_qa/original")
    edit_json(root, "dataset/test_a.json", lambda d: d[0].update(type=42))  # v_1QIUV7WYKXg_0
    errors: list[AnnotationError] = []
    records = read_dataset("activitynet_qa", root, "test", errors=errors)
    assert qa_count(records) == len(fixture_json("activitynet_qa/original", "dataset/test_q.json")) - 1 == 2
    assert [(r.id, [q.id for q in r.qa]) for r in records] == [("1QIUV7WYKXg", ["v_1QIUV7WYKXg_3"]), ("9eniCub7u60", ["v_9eniCub7u60_7"])]
    assert [e.reason for e in errors] == ["item 1: type must be 0-8, got 42"]


@pytest.mark.parametrize("name, root, split, options, file, bad_key", [
    ("lvu", "lvu", "val", {"task": "director"}, "annotation/val.json", "0Ij2veeSsE4"),
    ("breakfast", "breakfast", "train", {}, "annotation/train.json", "P28-cam01-P28_cereals"),
    ("coin", "coin/malmm", "train", {}, "COIN.json", "AfiVmAjfTNs"),
])
def test_classification_one_bad_video_keeps_the_others(tmp_path, name, root, split, options, file, bad_key):
    label = {"lvu": "director", "breakfast": "class_name", "coin": "target"}[name]
    expected = [r.id for r in read(name, root, split, **options) if r.id != bad_key]
    copy = copy_fixture(tmp_path, root)
    edit_json(copy, file, lambda d: d[bad_key].update({label: ["not", "a", "label"]}))
    errors: list[AnnotationError] = []
    records = read_dataset(name, copy, split, errors=errors, **options)
    assert [r.id for r in records] == expected and len(expected) >= 1
    assert [e.reason.split(":")[0] for e in errors] == [f"entry {bad_key!r}"]


def test_captioning_one_bad_caption_keeps_the_videos_other_captions(tmp_path):
    root = copy_fixture(tmp_path, "msrvtt_cap")
    edit_json(root, "annotation/cap_val.json", lambda d: d["1"].update(caption=""))  # video6513's second
    errors: list[AnnotationError] = []
    records = read_dataset("msrvtt_cap", root, "val", errors=errors)
    assert sum(len(r.captions) for r in records) == len(fixture_json("msrvtt_cap", "annotation/cap_val.json")) - 1 == 4
    assert [(r.id, r.captions) for r in records] == [
        ("video6513", ["a family is having a conversation", "three people are sitting on a couch"]),
        ("video6514", ["a woman is surfing", "a man rides a dirt bike on a trail"]),
    ]
    assert len(errors) == 1


def test_youcook2_one_bad_segment_keeps_the_videos_other_segments(tmp_path):
    root = copy_fixture(tmp_path, "youcook2/original")
    name = "youcookii_annotations_trainval.json"
    edit_json(root, name, lambda d: d["database"]["xHr8X2Wpmno"]["annotations"][0].update(segment=[60, 47]))
    errors: list[AnnotationError] = []
    records = read_dataset("youcook2", root, "val", errors=errors)
    database = fixture_json("youcook2/original", name)["database"]
    fixture_segments = sum(len(v["annotations"]) for v in database.values() if v["subset"] == "validation")
    assert len(records) == fixture_segments - 1 == 2
    assert [r.id for r in records] == ["xHr8X2Wpmno_0199_0210", "V53XmPeyjIU_0016_0026"]
    assert [e.reason for e in errors] == ["entry 'xHr8X2Wpmno': annotations[0]: the segment ends (47 s) before it starts (60 s)"]
    assert errors[0].line == line_of(root / name, '"xHr8X2Wpmno": {')


def test_activitynet_captions_one_bad_sentence_keeps_the_paragraphs_others(tmp_path):
    root = copy_fixture(tmp_path, "activitynet_captions")
    edit_json(root, "val_1.json", lambda d: d["v_QOlSCBRmfWY"]["timestamps"].__setitem__(0, "soon"))
    errors: list[AnnotationError] = []
    records = read_dataset("activitynet_captions", root, "test", errors=errors)
    fixture = fixture_json("activitynet_captions", "val_1.json")
    assert sum(len(r.meta["sentences"]) for r in records) == sum(len(v["sentences"]) for v in fixture.values()) - 1 == 4
    assert records[0].captions == ["A young woman is seen standing in a room. She lifts her leg up and down."]
    assert [e.reason for e in errors] == ["entry 'v_QOlSCBRmfWY': sentence 0: timestamps must be [start, end] in seconds"]


def test_didemo_one_bad_moment_keeps_the_videos_others(tmp_path):
    root = copy_fixture(tmp_path, "didemo")
    edit_json(root, "test_data.json", lambda d: d[0].update(times=[[4, 9]]))  # annotation 101
    errors: list[AnnotationError] = []
    records = read_dataset("didemo", root, "test", errors=errors)
    assert sum(len(r.meta["sentences"]) for r in records) == len(fixture_json("didemo", "test_data.json")) - 1 == 2
    assert records[0].meta["annotation_ids"] == [102]
    assert len(errors) == 1 and errors[0].reason.startswith("item 0: each of 'times'")


def test_msrvtt_retrieval_one_bad_sentence_keeps_the_videos_others(tmp_path):
    root = copy_fixture(tmp_path, "msrvtt_ret")
    def change(d):
        d["sentences"][0]["caption"] = " "  # video0's first of two
        d["sentences"][2]["caption"] = None  # video1's only one: video1 has no sentence left
    edit_json(root, "msrvtt_data/MSRVTT_data.json", change)
    errors: list[AnnotationError] = []
    records = read_dataset("msrvtt_ret", root, "train", errors=errors)
    assert [(r.id, r.captions) for r in records] == [("video0", ["a man drives a red car"])]
    assert [e.reason for e in errors] == [
        "item 0: 'caption' must be a non-empty string, got ' '",
        "item 2: 'caption' must be a non-empty string, got None",
        "video 'video1' has no sentences in MSRVTT_data.json",
    ]


def test_msvd_retrieval_one_bad_caption_keeps_the_clips_others(tmp_path):
    good = [["a", "man", "opens", "a", "box"], ["someone", "shows", "a", "rifle"]]
    root = _msvd_root(tmp_path, {"jfrrO5K_vKM_55_65": [good[0], 17, good[1]], "jjl2ZMdFCsw_130_142": [["a", "sword"]]})
    errors: list[AnnotationError] = []
    records = read_dataset("msvd_ret", root, "test", errors=errors)
    assert [(r.id, len(r.captions)) for r in records] == [("jfrrO5K_vKM_55_65", 2), ("jjl2ZMdFCsw_130_142", 1)]
    assert [(Path(e.path).name, e.line, e.reason) for e in errors] == [
        ("raw-captions.pkl", None, "clip 'jfrrO5K_vKM_55_65': caption 1: a caption must be a string or a list of tokens, got 17"),
    ]


# ---------------------------------------------------------------------------------------------
# Nothing silent: a file in another layout, or a split that selects nothing, is an error


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


LAYOUT_ERRORS = [
    # (dataset, split, options, file, text, line, reason)
    ("msrvtt_qa", "test", {}, "qa_test.json", '{"annotations": [{"question": "q", "answer": "a"}]}', 1,
     "expected QA entries (JSON objects), but no top-level member is one (entry 'annotations' is a list): is this the file this reader expects?"),
    ("msvd_qa", "test", {}, "qa_test.json", "[]", None, "no QA entries: the file's top-level list is empty"),
    ("activitynet_qa", "test", {}, "test_q.json", '{"questions": "see test_q.csv"}', 1,
     "expected question entries (JSON objects), but no top-level member is one (entry 'questions' is a string): is this the file this reader expects?"),
    ("lvu", "val", {"task": "genre"}, "val.json", '[{"genre": "comedy"}]', None, "expected a JSON object keyed by YouTube id, got a list"),
    ("lvu", "val", {"task": "scene"}, "val.json", '{"a": {"genre": "comedy"}}', None, "no video has a 'scene' label"),
    ("breakfast", "train", {}, "train.json", '[{"class_name": "tea"}]', None, "expected a JSON object keyed by video id, got a list"),
    ("coin", "val", {}, "COIN.json", '{"a": {"subset": "training", "target": "x"}}', None,
     "no usable video has \"subset\" 'val' or 'validation' (subsets in the file: 'training')"),
    ("coin", "train", {}, "COIN.json", '{"database": [{"subset": "training"}]}', 1, "'database' must be an object keyed by YouTube id"),
    ("msrvtt_cap", "val", {}, "cap_val.json", '["a caption", "another"]', 1,
     "expected caption entries (JSON objects), but no top-level member is one (item 0 is a string): is this the file this reader expects?"),
    ("youcook2", "val", {}, "youcookii_annotations_trainval.json", '{"videos": {}}', None, "expected a top-level 'database' object"),
    ("youcook2", "val", {}, "youcookii_annotations_trainval.json",
     '{"database": {"a": {"subset": "training", "annotations": []}}}', None, "no video has \"subset\": 'validation'"),
    ("msrvtt_ret", "train", {}, "MSRVTT_data.json", "[]", None, "expected a JSON object with 'videos' and 'sentences' lists, got a list"),
    ("msrvtt_ret", "test", {}, "MSRVTT_JSFUSION_test.csv", ",key,vid_key,video_id,sentence\n", None, "no rows below the header"),
    ("msrvtt_ret", "val", {"protocol": "full"}, "MSRVTT_data.json",
     '{"videos": [{"video_id": "video0", "split": "train"}], "sentences": [{"video_id": "video0", "caption": "c"}]}', None,
     "no video has \"split\": 'validate'"),
    ("didemo", "test", {}, "test_data.json", "{}", None, "no moment descriptions: the file's top-level object is empty"),
    ("activitynet_captions", "test", {}, "val_1.json", '[{"sentences": ["a"], "timestamps": [[0, 1]]}]', None,
     "expected a JSON object keyed by video name, got a list"),
    ("synthetic", "test", {}, "test.jsonl", "\n", None, "no records"),
]


@pytest.mark.parametrize("name, split, options, file, text, line, reason", LAYOUT_ERRORS)
def test_a_file_in_another_layout_is_an_error_naming_it(tmp_path, name, split, options, file, text, line, reason):
    path = _write(tmp_path, file, text)
    if name == "msrvtt_ret" and file != "MSRVTT_data.json":
        _write(tmp_path, "MSRVTT_data.json", '{"videos": [], "sentences": []}')
    if name == "activitynet_qa":
        _write(tmp_path, "test_a.json", '[{"answer": "no", "type": 3, "question_id": "q1"}]')
    for errors in (None, []):  # --skip-bad or not: the same error, never zero records
        with pytest.raises(AnnotationError) as info:
            read_dataset(name, tmp_path, split, errors=errors, **options)
        assert (info.value.path, info.value.line, info.value.reason) == (str(path), line, reason)


def test_msvd_retrieval_list_without_clips(tmp_path):
    root = _msvd_root(tmp_path, {"jfrrO5K_vKM_55_65": [["a", "box"]]})
    (root / "msvd_data" / "test_list.txt").write_text("\n\n")
    with pytest.raises(AnnotationError, match="test_list.txt: no listed clip has captions$"):
        read_dataset("msvd_ret", root, "test", errors=[])


def test_a_file_of_bad_entries_only_is_an_error_naming_the_first(tmp_path):
    root = copy_fixture(tmp_path, "breakfast")
    path = edit_json(root, "annotation/val.json", lambda d: [v.pop("class_name") for v in d.values()])
    errors: list[AnnotationError] = []
    with pytest.raises(AnnotationError) as info:
        read_dataset("breakfast", root, "val", errors=errors)
    line = line_of(path, '"P47-cam01-P47_coffee"')
    assert str(info.value) == (
        f"{path}: no usable video (2 bad entries skipped; the first: val.json:{line}: entry 'P47-cam01-P47_coffee': missing 'class_name')"
    )
    assert len(errors) == 2


# ---------------------------------------------------------------------------------------------
# Error messages read cleanly


def test_truncated_json_message(tmp_path):
    path = _write(tmp_path, "qa_test.json", '{\n  "0": {"question": "who is sing')
    column = path.read_text().splitlines()[1].index('"who') + 1  # 1-based, where the string starts
    with pytest.raises(AnnotationError) as info:
        read_dataset("msrvtt_qa", tmp_path, "test")
    assert str(info.value) == f"{path}:2: not valid JSON (Unterminated string starting at column {column})"
    _write(tmp_path, "qa_test.json", '{\n  "0": {"question": "q", "answer": "a", "video": "v"}\n')
    with pytest.raises(AnnotationError) as info:
        read_dataset("msrvtt_qa", tmp_path, "test")
    assert str(info.value) == f"{path}:3: not valid JSON (the file ends too soon: expected ',' or '}}')"
