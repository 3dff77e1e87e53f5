"""build_index with a model that sees colours: what is found, incremental updates, resuming,
bad files, and an index that refuses what does not match it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import numpy as np
import pytest

from mixma.errors import MixmaError
from mixma.index import IndexOptions, VideoIndex, build_index
from mixma.index.store import IndexFolder
from tests.index.conftest import ColourModel, colour_video

OPTIONS = IndexOptions(moment_sec=2.0, frame_rate=2.0)


def build(paths, out, model=None, options=OPTIONS):
    return build_index(paths, out, options, progress=False, model=model or ColourModel())


def test_search_finds_the_moment_and_the_video(tmp_path, colour_videos):
    summary = build([colour_videos], tmp_path / "idx")
    assert (summary.added, summary.updated, summary.skipped) == (3, 0, [])
    idx = VideoIndex.open(tmp_path / "idx", model=ColourModel())
    assert len(idx) == summary.moments and {v.path.name for v in idx.videos()} == {"a.mp4", "b.mp4", "c.mp4"}
    hits = idx.search("red", k=3)
    best = hits[0]
    assert best.path.name == "a.mp4" and best.start == 0.0 and best.end == pytest.approx(4.0, abs=0.11)
    assert best.thumbnail.is_file() and best.thumbnail.is_relative_to(idx.path)
    assert all(h.score <= best.score for h in hits)
    # blue is in a (4-8 s) and c (0-3 s): one merged moment each, nothing of b
    blue = idx.search("blue", k=2, per_video=1)
    assert {(h.path.name, round(h.start), round(h.end)) for h in blue} == {("a.mp4", 4, 8), ("c.mp4", 0, 3)}
    videos = idx.search("green", videos=True)
    assert [h.path.name for h in videos][0] == "b.mp4" and videos[0].end == pytest.approx(6.0, abs=0.11)
    db = sqlite3.connect(IndexFolder(idx.path).db_path)
    for hit in videos:  # each video's thumbnail is its middle moment's, looked up one by one here
        (num,) = db.execute("SELECT num_moments FROM videos WHERE video_id = ?", (hit.video_id,)).fetchone()
        (thumb,) = db.execute("SELECT thumbnail FROM moments WHERE video_id = ? AND n = ?",
                              (hit.video_id, num // 2)).fetchone()
        assert hit.thumbnail == idx.path / thumb
    db.close()
    assert idx.video(best.video_id).path == best.path
    with pytest.raises(KeyError):
        idx.video("0" * 16)
    assert json.loads(json.dumps(best.to_json()))["path"] == str(best.path)


def test_rerun_embeds_only_what_changed(tmp_path, colour_videos):
    out = tmp_path / "idx"
    build([colour_videos], out)
    model = ColourModel()
    again = build([colour_videos], out, model)
    assert (again.added, again.updated, again.unchanged, model.calls) == (0, 0, 3, [])
    os.utime(colour_videos / "b.mp4", (1e9, 1e9))  # touched, same bytes: kept without embedding
    touched = build([colour_videos], out, model)
    assert (touched.unchanged, model.calls) == (3, [])
    colour_video(colour_videos / "b.mp4", [("red", 5)])  # new content
    (colour_videos / "c.mp4").unlink()
    changed = build([colour_videos], out, model)
    assert (changed.added, changed.updated, changed.removed, changed.unchanged) == (0, 1, 1, 1)
    assert [p.endswith("b.mp4") for p in model.calls] == [True]
    idx = VideoIndex.open(out, model=ColourModel())
    assert {h.path.name for h in idx.search("red", k=10)} == {"a.mp4", "b.mp4"}
    assert {v.path.name for v in idx.videos()} == {"a.mp4", "b.mp4"}
    assert idx.num_videos() == 2  # the count follows removals
    assert not any(h.path.name == "c.mp4" for h in idx.search("blue", k=10))


def test_verify_catches_a_change_that_keeps_size_and_mtime(tmp_path):
    video = colour_video(tmp_path / "v.mp4", [("red", 2)])
    out = tmp_path / "idx"
    build([video], out)
    stat = video.stat()
    data = bytearray(video.read_bytes())
    data[-1] ^= 0xFF  # same size; then the old mtime back
    video.write_bytes(bytes(data))
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert build([video], out).unchanged == 1
    verified = build([video], out, options=IndexOptions(moment_sec=2.0, frame_rate=2.0, verify=True))
    assert verified.updated == 1


def test_bad_files_are_skipped_and_listed_and_the_rest_indexed(tmp_path, colour_videos):
    (colour_videos / "broken.mp4").write_bytes(b"not a video at all")
    (colour_videos / "empty.mkv").write_bytes(b"")
    summary = build([colour_videos, tmp_path / "missing.mp4"], tmp_path / "idx")
    assert summary.added == 3
    reasons = dict(summary.skipped)
    assert set(reasons) == {str(colour_videos / "broken.mp4"), str(colour_videos / "empty.mkv"),
                            str(tmp_path / "missing.mp4")}
    assert all(r and "\n" not in r for r in reasons.values())
    # they are tried again next time (nothing about them was stored)
    assert len(build([colour_videos], tmp_path / "idx").skipped) == 2


def test_an_interrupted_run_keeps_what_it_finished_and_resumes(tmp_path, colour_videos):
    out = tmp_path / "idx"
    with pytest.raises(KeyboardInterrupt):
        build([colour_videos], out, ColourModel(interrupt_on="b.mp4"))
    idx = VideoIndex.open(out, model=ColourModel())  # the engine is stale: rebuilt from SQLite on open
    assert [v.path.name for v in idx.videos()] == ["a.mp4"]
    assert idx.num_videos() == 1
    assert idx.search("red", k=1)[0].path.name == "a.mp4"
    model = ColourModel()
    resumed = build([colour_videos], out, model)
    assert (resumed.added, resumed.unchanged) == (2, 1)
    assert sorted(os.path.basename(p) for p in model.calls) == ["b.mp4", "c.mp4"]


def test_add_indexes_new_files_with_the_index_own_options(tmp_path, colour_videos):
    out = tmp_path / "idx"
    build([colour_videos / "a.mp4"], out)
    idx = VideoIndex.open(out, model=ColourModel())
    summary = idx.add([colour_videos / "b.mp4"])
    assert summary.added == 1 and idx.search("green", k=1)[0].path.name == "b.mp4"


def test_the_folder_describes_itself_and_refuses_what_does_not_match(tmp_path, colour_videos):
    out = tmp_path / "idx"
    build([colour_videos / "a.mp4"], out)
    desc = json.loads((out / "index.json").read_text())
    assert desc["model"] == "colour" and desc["fingerprint"] == "colour-v1" and desc["dim"] == 3
    assert desc["options"]["unit"] == "mixed" and desc["options"]["moment_sec"] == 2.0
    with pytest.raises(MixmaError, match="moment_sec"):
        build([colour_videos], out, options=IndexOptions(moment_sec=3.0, frame_rate=2.0))

    class OtherWeights(ColourModel):
        def fingerprint(self):
            return "colour-v2"

    with pytest.raises(MixmaError, match="colour-v1"):
        VideoIndex.open(out, model=OtherWeights())
    with pytest.raises(MixmaError, match="built with model colour"):
        VideoIndex.open(out, model="concepts")
    with pytest.raises(MixmaError, match="not a mixma index"):
        VideoIndex.open(tmp_path / "videos")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(MixmaError, match="not a mixma index"):
        build([colour_videos], tmp_path / "junk")
    desc["version"] = 99
    (out / "index.json").write_text(json.dumps(desc))
    with pytest.raises(MixmaError, match="version 99"):
        VideoIndex.open(out)


def test_the_engine_file_matches_the_store(tmp_path, colour_videos):
    out = tmp_path / "idx"
    build([colour_videos], out)
    folder = IndexFolder(out)
    info = json.loads(folder.faiss_info_path.read_text())
    idx = VideoIndex.open(out, model=ColourModel())
    assert info["count"] == len(idx) and info["factory"] == "IDMap2,Flat"
    # exact search: every moment's score is its vector . query, and the top is the numpy argmax
    import sqlite3

    with sqlite3.connect(folder.db_path) as db:
        rows = db.execute("SELECT start, vector FROM moments").fetchall()
    query = ColourModel().encode_text(["green"])[0]
    scores = [np.frombuffer(v, np.float32) @ query for _, v in rows]
    assert idx.search("green", k=1)[0].score == pytest.approx(max(scores), abs=1e-6)
    shutil.rmtree(folder.thumbs)  # thumbnails are not needed to search
    assert idx.search("green", k=1)


def test_the_index_folder_inside_the_paths_is_not_indexed(tmp_path, colour_videos):
    out = colour_videos / "idx"
    build([colour_videos], out)
    summary = build_index([colour_videos], out, IndexOptions(moment_sec=2.0, frame_rate=2.0, every_file=True),
                          progress=False, model=ColourModel())
    assert summary.skipped == [] and summary.unchanged == 3


@pytest.mark.slow
def test_workers_give_the_vectors_one_process_gives(tmp_path, colour_videos):
    import sqlite3

    def vectors(out):
        with sqlite3.connect(out / "meta.sqlite") as db:
            return db.execute("SELECT v.path, m.start, m.end, m.vector FROM moments m JOIN videos v USING (video_id) "
                              "ORDER BY v.path, m.n").fetchall()

    one = IndexOptions(frame_rate=2.0)
    build_index([colour_videos], tmp_path / "one", one, progress=False)
    two = build_index([colour_videos], tmp_path / "two", IndexOptions(frame_rate=2.0, workers=2), progress=False)
    assert two.added == 3
    a, b = vectors(tmp_path / "one"), vectors(tmp_path / "two")
    assert [r[:3] for r in a] == [r[:3] for r in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.frombuffer(x[3], np.float32), np.frombuffer(y[3], np.float32), atol=1e-5)
