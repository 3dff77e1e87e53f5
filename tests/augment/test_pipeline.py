"""The augmentation run: captions added per record, bad videos skipped and reported, resuming after a
kill gives the same file as an uninterrupted run, grids saved for inspection."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mixma.augment.captioner import CaptionConfig, round_seed
from mixma.augment.grid import GridConfig
from mixma.augment.keyframes import KeyframeConfig
from mixma.augment.pipeline import (
    AugmentConfig, ProgressError, augment_captions, grid_filename, progress_path, video_seed,
)
from mixma.errors import AnnotationError
from mixma.video.reader import VideoReader

from .conftest import CUTS, ScriptedCaptioner, write_annotations

SMALL = AugmentConfig(keyframes=KeyframeConfig(num_keyframes=6, frame_size=32), grid=GridConfig(rows=2, cols=3))


class Killed(Exception):
    """Stands in for the process dying."""


def killing(after: int) -> ScriptedCaptioner:
    """A captioner that dies on its `after + 1`-th call."""
    captioner = ScriptedCaptioner()
    generate = captioner.generate

    def dying(*args, **kwargs):
        if len(captioner.calls) == after:
            raise Killed
        return generate(*args, **kwargs)

    captioner.generate = dying  # type: ignore[method-assign]
    return captioner


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_captions_are_added_and_bad_videos_skipped_and_reported(dataset, tmp_path):
    out = tmp_path / "out.jsonl"
    captioner = ScriptedCaptioner()
    summary = augment_captions(dataset, out, captioner, SMALL)
    assert summary.ok and summary.written and summary.records == 6 and summary.captioned == 4
    assert [(f.id, f.reason.split(": ")[-1]) for f in summary.failed] == [
        ("c", "not a readable video (invalid data found when processing input)"), ("d", "no such file")]
    records = lines(out)
    assert [r["id"] for r in records] == ["a", "b", "c", "d", "e", "f/1"]  # every record, in order
    assert records[0]["augmented"][0] == "an older caption" and len(records[0]["augmented"]) == 2
    assert records[0]["captions"] == ["six coloured shots"] and records[5]["split"] == "val"  # the rest kept
    assert [len(r["augmented"]) for r in records[1:]] == [1, 0, 0, 1, 1]
    assert captioner.calls == [((64, 144, 3),)] * 4  # one 2x3 grid of 32x48 frames per readable video
    assert len(captioner.calls) == 4 and summary.new_captions == 4
    assert "2 skipped:" in summary.lines() and any("no such file" in line for line in summary.lines())
    # the skipped videos are not in the progress file, so a second run retries only them
    assert progress_path(out).exists() and [e["id"] for e in lines(progress_path(out))[1:]] == ["a", "b", "e", "f/1"]
    again = ScriptedCaptioner()
    second = augment_captions(dataset, out, again, SMALL)
    assert again.calls == [] and second.resumed == 4 and len(second.failed) == 2
    assert lines(out) == records


def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(dataset, tmp_path):
    full = tmp_path / "full.jsonl"
    augment_captions(dataset, full, ScriptedCaptioner(), SMALL)
    out = tmp_path / "out.jsonl"
    with pytest.raises(Killed):
        augment_captions(dataset, out, killing(after=2), SMALL)
    assert not out.exists()
    log = progress_path(out)
    assert [e["id"] for e in lines(log)[1:]] == ["a", "b"]
    with open(log, "a") as f:
        f.write('{"id": "e", "capt')  # killed in the middle of writing a line
    resumed = ScriptedCaptioner()
    summary = augment_captions(dataset, out, resumed, SMALL)
    assert len(resumed.calls) == 2 and summary.resumed == 2  # only e and f/1 were left
    assert out.read_bytes() == full.read_bytes()
    assert [e["id"] for e in lines(log)[1:]] == ["a", "b", "e", "f/1"]  # the torn line is gone


def test_captions_do_not_depend_on_the_other_records(dataset, tmp_path):
    out = tmp_path / "out.jsonl"
    augment_captions(dataset, out, ScriptedCaptioner(), SMALL)
    shuffled = write_annotations(dataset.with_name("shuffled.jsonl"), list(reversed(lines(dataset))))
    out2 = tmp_path / "out2.jsonl"
    captioner = ScriptedCaptioner()
    augment_captions(shuffled, out2, captioner, SMALL)
    assert {r["id"]: r["augmented"] for r in lines(out)} == {r["id"]: r["augmented"] for r in lines(out2)}
    assert captioner.seeds[0] == round_seed(video_seed(0, "f/1"), 0)  # f/1 came first; its own seed


def test_limit_then_full_run(dataset, tmp_path):
    full = tmp_path / "full.jsonl"
    augment_captions(dataset, full, ScriptedCaptioner(), SMALL)
    out = tmp_path / "out.jsonl"
    trial = augment_captions(dataset, out, ScriptedCaptioner(), SMALL, limit=2)
    assert trial.records == 2 and lines(out) == lines(full)[:2]
    rest = ScriptedCaptioner()
    augment_captions(dataset, out, rest, SMALL)
    assert len(rest.calls) == 2 and out.read_bytes() == full.read_bytes()


def test_other_settings_are_refused_unless_restarting(dataset, tmp_path):
    out = tmp_path / "out.jsonl"
    augment_captions(dataset, out, ScriptedCaptioner(), SMALL, limit=1)
    other = AugmentConfig(keyframes=SMALL.keyframes, grid=SMALL.grid, seed=1)
    with pytest.raises(ProgressError, match="other settings"):
        augment_captions(dataset, out, ScriptedCaptioner(), other)
    with pytest.raises(ProgressError, match="other settings"):  # the captioner's settings count too
        augment_captions(dataset, out, ScriptedCaptioner(config=CaptionConfig(temperature=0.7)), SMALL)
    fresh = ScriptedCaptioner()
    summary = augment_captions(dataset, out, fresh, other, resume=False)
    assert len(fresh.calls) == 4 and summary.resumed == 0


def test_a_damaged_progress_file_is_an_error(dataset, tmp_path):
    out = tmp_path / "out.jsonl"
    augment_captions(dataset, out, ScriptedCaptioner(), SMALL, limit=2)
    log = progress_path(out)
    text = log.read_text().splitlines()
    log.write_text("\n".join([text[0], "{broken", *text[1:]]) + "\n")
    with pytest.raises(ProgressError, match="damaged"):
        augment_captions(dataset, out, ScriptedCaptioner(), SMALL)


def test_progress_file_is_removed_when_everything_is_done(tmp_path, cut_video):
    annotations = write_annotations(tmp_path / "a.jsonl", [{"id": "x", "video": str(cut_video)}])
    summary = augment_captions(annotations, tmp_path / "out.jsonl", ScriptedCaptioner(), SMALL)
    assert summary.ok and not progress_path(tmp_path / "out.jsonl").exists()
    assert not any("progress kept" in line for line in summary.lines())


def test_replace(dataset, tmp_path):
    out = tmp_path / "out.jsonl"
    config = AugmentConfig(keyframes=SMALL.keyframes, grid=SMALL.grid, replace=True, captions_per_video=2)
    augment_captions(dataset, out, ScriptedCaptioner(), config)
    records = {r["id"]: r["augmented"] for r in lines(out)}
    assert len(records["a"]) == 2 and "an older caption" not in records["a"]
    assert records["c"] == [] and len(records["e"]) == 2


def test_nothing_captioned_writes_nothing(tmp_path, dataset):
    bad = write_annotations(tmp_path / "bad.jsonl", [r for r in lines(dataset) if r["id"] in ("c", "d")])
    bad.with_name("videos").symlink_to(dataset.parent / "videos")
    summary = augment_captions(bad, tmp_path / "out.jsonl", ScriptedCaptioner(), SMALL)
    assert not summary.ok and not summary.written and not (tmp_path / "out.jsonl").exists()
    assert len(summary.failed) == 2 and any("not written" in line for line in summary.lines())
    # every sample filtered out: the videos are done, but nothing was captioned either
    silent = augment_captions(dataset, tmp_path / "out2.jsonl", ScriptedCaptioner(lambda *a: "  ", CaptionConfig(max_retries=1)), SMALL)
    assert not silent.ok and silent.uncaptioned == ["a", "b", "e", "f/1"]


def test_fewer_captions_than_asked_are_reported(dataset, tmp_path):
    config = AugmentConfig(keyframes=SMALL.keyframes, grid=SMALL.grid, captions_per_video=3)
    summary = augment_captions(dataset, tmp_path / "o.jsonl", ScriptedCaptioner(lambda image, seed, k: f"cap {k % 2}"), config)
    assert summary.ok and summary.short == ["a", "b", "e", "f/1"] and summary.new_captions == 8


def test_an_empty_annotation_file(tmp_path):
    annotations = tmp_path / "empty.jsonl"
    annotations.write_text("")
    summary = augment_captions(annotations, tmp_path / "out.jsonl", ScriptedCaptioner(), SMALL)
    assert summary.ok and (tmp_path / "out.jsonl").read_text() == ""


def test_bad_annotation_files_fail_fast(tmp_path):
    with pytest.raises(AnnotationError, match="no such file"):
        augment_captions(tmp_path / "none.jsonl", tmp_path / "out.jsonl", ScriptedCaptioner())
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a"}\n')
    with pytest.raises(AnnotationError, match="video"):
        augment_captions(broken, tmp_path / "out.jsonl", ScriptedCaptioner())


def test_saved_grids_show_the_keyframes(dataset, tmp_path, cut_video):
    grids = tmp_path / "grids"
    augment_captions(dataset, tmp_path / "out.jsonl", ScriptedCaptioner(), SMALL, save_grids=grids)
    assert sorted(p.name for p in grids.iterdir()) == sorted(["a.jpg", "b.jpg", "e.jpg", grid_filename("f/1")])
    grid = cv2.cvtColor(cv2.imread(str(grids / "a.jpg")), cv2.COLOR_BGR2RGB)
    with VideoReader(cut_video) as video:
        shot_starts = video.read([0, *CUTS], 32)  # the six shots of the video, in order
    for i, frame in enumerate(shot_starts):
        r, c = divmod(i, 3)
        tile = grid[r * 32 : (r + 1) * 32, c * 48 : (c + 1) * 48].astype(float)
        assert np.abs(tile.mean((0, 1)) - frame.mean((0, 1))).max() < 4  # same picture, up to JPEG


def test_frames_captioners_get_the_keyframes(dataset, tmp_path):
    captioner = ScriptedCaptioner(input_kind="frames")
    augment_captions(dataset, tmp_path / "out.jsonl", captioner, SMALL)
    assert captioner.calls == [((6, 32, 48, 3),)] * 4


def test_grid_filenames_are_safe_and_distinct():
    names = [grid_filename(i) for i in ("a", "f/1", "f_1", "..", "x y")]
    assert names[0] == "a.jpg" and len(set(names)) == 5
    assert all("/" not in n and " " not in n and not n.startswith(".") for n in names)


def test_config_checks():
    with pytest.raises(ValueError, match="holds 12 frames"):
        AugmentConfig(keyframes=KeyframeConfig(num_keyframes=6))
    with pytest.raises(ValueError):
        AugmentConfig(captions_per_video=0)
    with pytest.raises(ValueError):
        AugmentConfig(prompt=" ")
