"""The synthetic benchmark: deterministic, and its labels are true to what the videos show."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest

from mixma import VideoReader, sample_frames
from mixma.data.annotations import read_records
from mixma.data.synthetic import (
    COLOURS,
    SyntheticConfig,
    annotate,
    caption_templates,
    make_benchmark,
    plan_video,
    split_of_each,
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    config = SyntheticConfig(videos=12, frames=160, seed=3)
    make_benchmark(out, config, workers=2)
    return out, config


def digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(bench, tmp_path):
    out, config = bench
    make_benchmark(tmp_path, config, workers=1)
    assert digest(tmp_path) == digest(out)


def test_different_seed_differs(bench, tmp_path):
    out, config = bench
    make_benchmark(tmp_path, SyntheticConfig(videos=12, frames=160, seed=4), workers=2)
    assert (tmp_path / "train.jsonl").read_text() != (out / "train.jsonl").read_text()


def test_files_and_summary(bench):
    out, config = bench
    records = [r for split in ("train", "val", "test", "meta") for r in read_records(out / f"{split}.jsonl")]
    assert sorted(r.id for r in records) == [f"{i:06d}" for i in range(12)]
    summary = json.loads((out / "benchmark.json").read_text())
    assert sum(summary["splits"].values()) == 12 and min(summary["splits"].values()) >= 1
    for r in records:
        assert (out / r.video).exists()
        info = VideoReader(out / r.video).info
        assert (info.num_frames, info.width, info.height, info.fps) == (160, 128, 128, 25.0)
        assert r.label in summary["labels"] and len(r.captions) == 2 and len(r.augmented) == 3


def test_events_are_visible_where_the_labels_say(bench):
    """Each event's shape shows its colour at its centre during its frames and not just before."""
    out, _ = bench
    for record in read_records(out / "train.jsonl"):
        events = record.meta["events"]
        with VideoReader(out / record.video) as video:
            for e in events:
                during, before = video.read([e["start"] + e["length"] // 2, e["start"] - 2])
                y, x = e["y"], e["x"]
                colour = np.array(COLOURS[e["colour"]])
                assert np.abs(during[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(0) - colour).max() < 30
                assert np.abs(before[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(0) - colour).max() > 30


def test_cuts_are_sudden_changes(bench):
    out, _ = bench
    records = read_records(out / "train.jsonl")
    assert any(len(r.meta["shots"]) > 1 for r in records)
    for record in records:
        cuts = [s["start"] for s in record.meta["shots"][1:]]
        sample = sample_frames(out / record.video, 8, "mixed", size=32, step=1)
        assert set(cuts) <= set(sample.changes)


@pytest.mark.parametrize("frames", [80, 120, 300, 1000])
def test_plans_fit_any_length(frames):
    config = SyntheticConfig(frames=frames)
    for i in range(100):
        plan = plan_video("x", i, config)
        shot_ends = [s.start for s in plan.shots[1:]] + [frames]
        assert all(end - s.start >= 40 for s, end in zip(plan.shots, shot_ends))
        assert all(0 < e.start and e.start + e.length < frames for e in plan.events)


def test_answers_follow_the_plan():
    config = SyntheticConfig()
    for i in range(200):
        plan = plan_video(f"{i:06d}", 1000 + i, config)
        record = annotate(plan, "train", config, 1000 + i)
        answers = {q.type: q.answer for q in record.qa}
        colour, shape = plan.key
        assert record.label == f"{colour} {shape}"
        assert answers["what"] == shape and answers["which"] == colour
        key_events = [e for e in plan.events if (e.colour, e.shape) == plan.key]
        assert answers["how_many"] == {1: "one", 2: "two", 3: "three"}[len(key_events)]
        if plan.other:
            first = min(plan.events, key=lambda e: e.start)
            assert answers["order"] == first.shape
        else:
            assert "order" not in answers
        starts = [e.start for e in plan.events]
        assert starts == sorted(starts)
        assert all(b.start - (a.start + a.length) >= 12 for a, b in zip(plan.events, plan.events[1:]))


@pytest.mark.parametrize("wrong_fraction", [0.0, 0.4, 1.0])
def test_wrong_augmented_fraction_is_controlled_and_meta_stays_clean(wrong_fraction):
    config = SyntheticConfig(wrong_fraction=wrong_fraction)
    flags, meta_flags = [], []
    for i in range(300):
        split = "meta" if i % 10 == 0 else "train"
        record = annotate(plan_video(f"{i:06d}", i, config), split, config, i)
        (meta_flags if split == "meta" else flags).extend(record.meta["augmented_correct"])
        plan = plan_video(f"{i:06d}", i, config)
        truths = caption_templates(*plan.key, plan.count, plan.shots[0].background, plan.other, len(plan.shots), "lvlm")
        for text, correct in zip(record.augmented, record.meta["augmented_correct"]):
            assert (text in truths) == correct, text  # a wrong caption never reads like a true one
    assert all(meta_flags)
    assert abs((1 - np.mean(flags)) - wrong_fraction) < 0.06


def test_splits_follow_fractions():
    splits = split_of_each(SyntheticConfig(videos=200))
    assert Counter(splits) == {"train": 140, "val": 20, "test": 20, "meta": 20}
    assert split_of_each(SyntheticConfig(videos=200)) == splits  # deterministic
    assert set(split_of_each(SyntheticConfig(videos=5))) == {"train", "val", "test", "meta"}


@pytest.mark.parametrize("radius", [(0.11, 0.14), (0.2, 0.25), (0.05, 0.05)])
def test_shapes_have_the_asked_radius_and_stay_inside_the_frame(radius):
    config = SyntheticConfig(size=128, object_radius=radius)
    for i in range(100):
        for e in plan_video("x", i, config).events:
            assert round(128 * radius[0]) <= e.radius <= round(128 * radius[1])
            assert e.radius <= min(e.x, e.y, 128 - e.x, 128 - e.y)


@pytest.mark.parametrize("kwargs", [{"videos": 0}, {"frames": 10}, {"size": 31}, {"wrong_fraction": 1.5},
                                    {"split_fractions": (0.5, 0.5, 0.5, 0)}, {"object_radius": (0.2, 0.1)},
                                    {"object_radius": (0.1, 0.3)}])
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        SyntheticConfig(**kwargs)


def test_persistent_questions_are_answered_by_the_pictures(tmp_path):
    """Independent of the generator's bookkeeping: shots and backgrounds from the metadata the
    records carry, the drift's direction from the shift that best maps one decoded frame of the
    first shot onto a later one (an exhaustive search)."""
    from mixma.data.annotations import read_records
    from mixma.data.synthetic import PERSISTENT_QUESTIONS, SyntheticConfig, make_benchmark
    from mixma.video.reader import VideoReader

    make_benchmark(tmp_path, SyntheticConfig(videos=16, frames=300, seed=3), workers=1)
    records = read_records(tmp_path / "train.jsonl") + read_records(tmp_path / "test.jsonl")
    drifts = 0
    for record in records:
        asked = {q.type: q for q in record.qa if q.type in PERSISTENT_QUESTIONS}
        shots = record.meta["shots"]
        assert asked["shots"].answer == ["one", "two", "three"][len(shots) - 1]
        assert asked["background"].answer == shots[-1]["background"]
        if "drift" in asked:
            drifts += 1
            with VideoReader(tmp_path / record.video) as video:
                a, b = video.read([5, 25])  # inside the first shot (>= 100 frames when asked); 20 frames move
                # the texture by 5-10 px, well within the shortest period of its tiling (128/3 px)
            a, b = a.astype(np.float32), b.astype(np.float32)
            errors = {(dx, dy): float(np.median(np.abs(np.roll(a, (dy, dx), axis=(0, 1)) - b)))  # robust to the ball
                      for dx in range(-12, 13) for dy in range(-12, 13)}
            dx, dy = min(errors, key=errors.get)  # the textures tile, so a drift is exactly a roll
            seen = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")
            assert asked["drift"].answer == seen, (record.id, dx, dy)
    assert drifts >= 2


def test_event_questions_only_is_the_same_benchmark_without_the_persistent_ones(tmp_path):
    from mixma.data.annotations import read_records
    from mixma.data.synthetic import EVENT_QUESTIONS, SyntheticConfig, make_benchmark

    make_benchmark(tmp_path / "all", SyntheticConfig(videos=8, frames=120, seed=4), workers=1)
    make_benchmark(tmp_path / "events", SyntheticConfig(videos=8, frames=120, seed=4, questions="events"), workers=1)
    for video in (tmp_path / "all" / "videos").iterdir():
        assert video.read_bytes() == (tmp_path / "events" / "videos" / video.name).read_bytes()
    for split in ("train", "test"):
        full, events = read_records(tmp_path / "all" / f"{split}.jsonl"), read_records(tmp_path / "events" / f"{split}.jsonl")
        for a, b in zip(full, events, strict=True):
            assert [q for q in a.qa if q.type in EVENT_QUESTIONS] == b.qa
            assert (a.captions, a.augmented, a.meta) == (b.captions, b.augmented, b.meta)
