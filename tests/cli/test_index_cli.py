"""`mixma index` and `mixma search` end to end on the real sample clips, and their errors."""

from __future__ import annotations

import json

import pytest

from mixma.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_index_and_search_the_sample_clips(capsys, tmp_path, bikes, bunny):
    clips = tmp_path / "clips"
    clips.mkdir()
    for clip in (bikes, bunny):
        (clips / clip.name).symlink_to(clip)
    (clips / "notes.mp4").write_text("not a video")
    code, out, err = run(capsys, "index", str(clips), "-o", str(tmp_path / "idx"), "-q")
    assert code == 0 and "indexed 2 new" in out and "1 skipped" in out
    assert err.count("warning: skipped") == 1 and "notes.mp4" in err
    code, out, _ = run(capsys, "search", str(tmp_path / "idx"), "a bicycle", "--json", "-k", "3")
    hits = json.loads(out)
    assert code == 0 and hits[0]["path"].endswith("bikes.mp4") and hits[0]["end"] > hits[0]["start"]
    assert set(hits[0]) == {"video_id", "path", "start", "end", "score", "thumbnail"}
    code, out, _ = run(capsys, "search", str(tmp_path / "idx"), "a rabbit", "--videos", "--json")
    assert json.loads(out)[0]["path"].endswith("bigbuckbunny.mp4")
    code, out, _ = run(capsys, "search", str(tmp_path / "idx"), "a bicycle", "--explain", "-k", "1")
    assert out.startswith("query classes: ") and "mountain bike" in out.splitlines()[0]
    code, out, _ = run(capsys, "index", str(clips), "-o", str(tmp_path / "idx"), "-q")
    assert "0 new, 0 updated, 2 unchanged" in out


def test_errors_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "search", str(tmp_path), "a dog")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "not a mixma index" in err
    code, _, err = run(capsys, "index", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "idx"), "-q")
    assert code == 2 and "skipped" in err
    code, _, err = run(capsys, "index", str(tmp_path), "-o", str(tmp_path / "idx2"), "--model", "nowhere/run")
    assert code == 2 and err.startswith("error: ") and "nowhere" in err


def test_an_existing_index_keeps_its_own_options(capsys, tmp_path, monkeypatch):
    import mixma.index.build as build
    from tests.index.conftest import ColourModel, colour_video

    video = colour_video(tmp_path / "a.mp4", [("red", 2)])
    monkeypatch.setattr(build, "load_model", lambda name, **_: ColourModel())
    monkeypatch.setattr(build, "model_name", lambda spec: spec)  # the stand-in has no loadable name
    assert run(capsys, "index", str(video), "-o", str(tmp_path / "idx"), "--unit", "window", "--window", "1", "-q")[0] == 0
    desc = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert desc["options"]["unit"] == "window" and desc["options"]["moment_sec"] == 1.0
    code, out, _ = run(capsys, "index", str(video), "-o", str(tmp_path / "idx"), "-q")  # no options: the index's
    assert code == 0 and "1 unchanged" in out
    code, _, err = run(capsys, "index", str(video), "-o", str(tmp_path / "idx"), "--unit", "mixed", "-q")
    assert code == 2 and "unit='window'" in err
