"""The synthetic long-video benchmark: real H.264 videos whose meaning hinges on brief events.

No public dataset can be downloaded on our machines, so mixma ships a procedural benchmark that
exercises every task end to end on a CPU in minutes, and on which the MixedFrame hypothesis can
be tested honestly: a small uniform frame budget misses most events, full information does not.

What a video shows
------------------
One to three *shots* separated by hard cuts. Each shot has a muted background with a slowly
drifting texture and a light-grey ball moving slowly across it. Over this, brief *events* happen:
a key object (a coloured shape) flashes one to three times, each time for 3 to 6 frames at a new
place, and in half of the videos a second object (another shape and colour) flashes once. Events
fall anywhere, so with several shots they happen on both sides of cuts.

What it is labelled with
------------------------
- `label`: the key object, e.g. "red circle" (16 classes).
- `qa`: what shape was the key object (what), which colour it was (which), how many times it
  appeared (how_many: one/two/three), and, with a second object, which appeared first (order):
  brief events, which a few evenly spaced frames miss; and about persistent content, which they
  see as well as any frames: how many shots there are (shots), the background at the end
  (background), and, when the first shot is long and its motion clear, which way its background
  moves (drift). Every question lists its `options` (the possible answers), for multiple-choice
  QA. `questions="events"` leaves out the persistent ones (the benchmark as it was before).
- `captions`: two reference captions. `augmented`: three captions in the style of a
  vision-language model; each is wrong (describes another colour, shape, count or background)
  with probability `wrong_fraction`, and `meta.augmented_correct` records which.
- splits: train / val / test, and `meta`: a clean held-out set for meta-learning whose augmented
  captions are all correct.

Every video is planned from its own seed spawned from the master seed, so the benchmark is the
same whatever the number of workers, and files are byte-identical across runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm.auto import tqdm

from mixma._atomic import write_json
from mixma.data.annotations import QA, SPLITS, VideoRecord, write_records
from mixma.video.writer import write_video

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = {"red": (225, 35, 35), "green": (40, 200, 50), "blue": (45, 90, 240), "yellow": (240, 220, 40)}
BACKGROUNDS = {  # muted, so events always stand out
    "dark blue": (30, 40, 85),
    "brown": (85, 58, 36),
    "grey": (92, 92, 92),
    "olive": (72, 78, 40),
    "purple": (66, 40, 82),
    "teal": (30, 78, 78),
}
BALL = (205, 205, 205)
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
TIMES_WORDS = {1: "once", 2: "twice", 3: "three times"}
EVENT_QUESTIONS = ("what", "which", "how_many", "order")  # about brief events: uniform sampling misses them
PERSISTENT_QUESTIONS = ("shots", "background", "drift")  # about what lasts: uniform sampling sees it
QUESTION_TYPES = EVENT_QUESTIONS + PERSISTENT_QUESTIONS


@dataclass(frozen=True)
class SyntheticConfig:
    """Benchmark parameters; every default lives here."""

    videos: int = 200
    frames: int = 300  # per video
    size: int = 128  # square frames
    fps: float = 25.0
    seed: int = 0
    wrong_fraction: float = 0.3  # chance that an augmented caption describes something else
    augmented_per_video: int = 3
    object_radius: tuple[float, float] = (0.11, 0.14)  # event shapes' radius, as a fraction of the frame
    split_fractions: tuple[float, float, float, float] = (0.7, 0.1, 0.1, 0.1)  # train, val, test, meta
    # "all": questions about brief events and about persistent content; "events": the brief-event
    # questions only (the benchmark before persistent questions were added, byte for byte)
    questions: Literal["all", "events"] = "all"

    def __post_init__(self):
        if self.videos < 1:
            raise ValueError("videos must be >= 1")
        if self.frames < 80:
            raise ValueError("frames must be >= 80 (room for up to four events 12 frames apart)")
        if self.size < 32 or self.size % 2:
            raise ValueError("size must be an even number >= 32")
        if not 0.03 <= self.object_radius[0] <= self.object_radius[1] <= 0.25:
            raise ValueError("object_radius must be an increasing pair within [0.03, 0.25]")
        if not 0 <= self.wrong_fraction <= 1:
            raise ValueError("wrong_fraction must be in [0, 1]")
        if self.questions not in ("all", "events"):
            raise ValueError(f"questions must be 'all' or 'events', got {self.questions!r}")
        if len(self.split_fractions) != 4 or abs(sum(self.split_fractions) - 1) > 1e-6 or min(self.split_fractions) < 0:
            raise ValueError("split_fractions must be four non-negative numbers summing to 1")


@dataclass(frozen=True)
class Event:
    shape: str
    colour: str
    start: int  # first frame
    length: int  # frames
    x: int  # centre
    y: int
    radius: int


@dataclass(frozen=True)
class Shot:
    start: int
    background: str
    drift: tuple[float, float]  # pixels per frame
    texture_seed: int


@dataclass(frozen=True)
class VideoPlan:
    """Every random decision about one video; rendering and labelling are pure functions of it."""

    id: str
    shots: tuple[Shot, ...]
    key: tuple[str, str]  # (colour, shape)
    count: int
    other: tuple[str, str] | None
    events: tuple[Event, ...]  # in time order
    ball: tuple[float, float, float, float, int]  # x, y, vx, vy, radius


# -- planning ----------------------------------------------------------------------------------


def _spread(rng: np.random.Generator, lengths: list[int], span: int, gap: int) -> list[int] | None:
    """Starts of items with these lengths in `[0, span)`, in order, at least `gap` apart.

    Uniform over all such placements ("stars and bars": the free room is split at sorted random
    points), so it never loops; None when they cannot fit.
    """
    free = span - sum(lengths) - gap * (len(lengths) - 1)
    if free < 0:
        return None
    offsets = np.sort(rng.integers(0, free + 1, size=len(lengths)))
    starts, used = [], 0
    for offset, length in zip(offsets, lengths):
        starts.append(int(offset) + used)
        used += length + gap
    return starts


def _shot_starts(rng: np.random.Generator, frames: int) -> list[int]:
    """First frame of each shot; every shot lasts at least 40 frames."""
    max_shots = min(3, 1 + max(0, frames - 60) // 100)  # 1 shot for 120 frames, 3 for 260 and more
    weights = np.array([0.4, 0.4, 0.2][:max_shots])
    count = int(rng.choice(np.arange(1, max_shots + 1), p=weights / weights.sum()))
    starts = _spread(rng, [40] * count, frames, 0)
    return [0, *starts[1:]]  # shot i runs from its start to the next shot's


def _event_times(rng: np.random.Generator, n: int, frames: int, cuts: list[int]) -> list[tuple[int, int]]:
    """Non-overlapping (start, length) pairs, 12 frames apart and 3 frames clear of any cut."""
    for _ in range(1000):
        lengths = [int(v) for v in rng.integers(3, 7, size=n)]
        starts = _spread(rng, lengths, frames - 14, 12)  # 4 frames of lead-in, 10 at the end
        if starts is None:
            raise ValueError(f"{frames} frames are too few for {n} events")
        starts = [s + 4 for s in starts]
        if all(not (c - 3 <= s + l and s <= c + 3) for s, l in zip(starts, lengths) for c in cuts):
            return list(zip(starts, lengths))
    raise ValueError(f"could not place {n} events clear of the cuts in {frames} frames")


def plan_video(video_id: str, seed: int, config: SyntheticConfig) -> VideoPlan:
    rng = np.random.default_rng(seed)
    size = config.size
    starts = _shot_starts(rng, config.frames)
    names = list(BACKGROUNDS)
    backgrounds: list[str] = []
    for _ in starts:  # consecutive shots look different
        backgrounds.append(str(rng.choice([b for b in names if not backgrounds or b != backgrounds[-1]])))
    shots = tuple(
        Shot(s, b, (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5))), int(rng.integers(2**31)))
        for s, b in zip(starts, backgrounds)
    )
    colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
    count = int(rng.integers(1, 4))
    other = None
    if rng.random() < 0.5:
        other = (str(rng.choice([c for c in COLOURS if c != colour])), str(rng.choice([s for s in SHAPES if s != shape])))
    kinds = [(colour, shape)] * count + ([other] if other else [])
    rng.shuffle(kinds)
    times = _event_times(rng, len(kinds), config.frames, starts[1:])
    margin = int(size * (config.object_radius[1] + 0.06))  # shapes stay inside the frame
    events = tuple(
        Event(k[1], k[0], s, length, int(rng.integers(margin, size - margin)), int(rng.integers(margin, size - margin)),
              int(round(size * rng.uniform(*config.object_radius))))
        for k, (s, length) in zip(kinds, times)
    )
    speed = size / 128
    ball = (float(rng.uniform(20, size - 20)), float(rng.uniform(20, size - 20)),
            float(rng.uniform(0.3, 0.8) * speed * rng.choice([-1, 1])), float(rng.uniform(0.3, 0.8) * speed * rng.choice([-1, 1])),
            int(round(size * 0.07)))
    return VideoPlan(video_id, shots, (colour, shape), count, other, events, ball)


# -- rendering ---------------------------------------------------------------------------------


def _texture(shot: Shot, size: int) -> np.ndarray:
    """A background that tiles seamlessly (integer frequencies), so drifting is a roll."""
    rng = np.random.default_rng(shot.texture_seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    field = np.zeros((size, size), np.float32)
    for _ in range(4):
        fx, fy = rng.integers(-3, 4, size=2)
        field += np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    field /= max(1e-6, float(np.abs(field).max()))
    base = np.array(BACKGROUNDS[shot.background], np.float32)
    tint = rng.uniform(0.6, 1.4, size=3).astype(np.float32)
    return np.clip(base + 22 * field[..., None] * tint, 0, 255).astype(np.uint8)


def _shape_points(shape: str, x: int, y: int, r: int) -> np.ndarray:
    if shape == "square":
        s = r * 0.85
        pts = [(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
    elif shape == "triangle":
        pts = [(x + r * math.cos(a), y - r * math.sin(a)) for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6)]
    else:  # star: five points, inner radius 0.45 r
        pts = [
            (x + (r if k % 2 == 0 else 0.45 * r) * math.cos(math.pi / 2 + k * math.pi / 5),
             y - (r if k % 2 == 0 else 0.45 * r) * math.sin(math.pi / 2 + k * math.pi / 5))
            for k in range(10)
        ]
    return np.round(np.array(pts) * 16).astype(np.int32)  # 4 fractional bits for smooth edges


def draw_shape(image: np.ndarray, shape: str, colour: tuple[int, int, int], x: int, y: int, r: int) -> None:
    if shape == "circle":
        cv2.circle(image, (x * 16, y * 16), r * 16, colour, -1, cv2.LINE_AA, shift=4)
    else:
        cv2.fillPoly(image, [_shape_points(shape, x, y, r)], colour, cv2.LINE_AA, shift=4)


def render_frames(plan: VideoPlan, config: SyntheticConfig):
    """Yield the video's RGB frames, `uint8 [size, size, 3]`."""
    size = config.size
    bx, by, vx, vy, br = plan.ball
    shot_ends = [s.start for s in plan.shots[1:]] + [config.frames]
    for shot, end in zip(plan.shots, shot_ends):
        texture = _texture(shot, size)
        for t in range(shot.start, end):
            age = t - shot.start
            frame = np.roll(texture, (round(age * shot.drift[1]), round(age * shot.drift[0])), axis=(0, 1))
            # the ball bounces off the walls: fold its free path back into the frame
            x = abs((bx + vx * t - br) % (2 * (size - 2 * br)) - (size - 2 * br)) + br
            y = abs((by + vy * t - br) % (2 * (size - 2 * br)) - (size - 2 * br)) + br
            cv2.circle(frame, (int(x * 16), int(y * 16)), br * 16, BALL, -1, cv2.LINE_AA, shift=4)
            for e in plan.events:
                if e.start <= t < e.start + e.length:
                    draw_shape(frame, e.shape, COLOURS[e.colour], e.x, e.y, e.radius)
            yield frame


# -- labelling ---------------------------------------------------------------------------------


def caption_templates(colour: str, shape: str, count: int, background: str, other: tuple[str, str] | None,
                      shots: int, style: str) -> list[str]:
    """Every caption a video with these facts can get: `reference` (plain) or `lvlm` (chattier,
    like a vision-language model's output)."""
    times = TIMES_WORDS[count]
    extra = f", and a {other[0]} {other[1]} shows up once" if other else ""
    scenes = f" across {COUNT_WORDS[shots]} scenes" if shots > 1 else ""
    if style == "reference":
        return [
            f"a {colour} {shape} flashes {times} over a {background} background{extra}",
            f"{times} a {colour} {shape} briefly appears{scenes}{extra}",
            f"a {background} scene where a {colour} {shape} blinks {times}{extra}",
        ]
    return [
        f"the video shows a {colour} {shape} that appears {times} on a {background} backdrop{extra}",
        f"in this video a {shape} colored {colour} pops up {times} while a grey ball drifts{extra}",
        f"a grey ball moves slowly as a {colour} {shape} flashes {times}{scenes}{extra}",
        f"against a {background} background, a {colour} {shape} is visible {times}{extra}",
    ]


def _wrong_version(rng: np.random.Generator, plan: VideoPlan) -> tuple[str, str, int, str]:
    """The key object's colour, shape or count changed (one or two of them), and sometimes the
    background too: a wrong caption is wrong about the key object whatever its template."""
    colour, shape = plan.key
    count, background = plan.count, plan.shots[0].background
    for what in rng.choice(["colour", "shape", "count"], size=int(rng.integers(1, 3)), replace=False):
        if what == "colour":
            colour = str(rng.choice([c for c in COLOURS if c != colour]))
        elif what == "shape":
            shape = str(rng.choice([s for s in SHAPES if s != shape]))
        else:
            count = int(rng.choice([c for c in (1, 2, 3) if c != count]))
    if rng.random() < 0.5:
        background = str(rng.choice([b for b in BACKGROUNDS if b != background]))
    return colour, shape, count, background


def persistent_questions(plan: VideoPlan, config: SyntheticConfig) -> list[QA]:
    """Questions about what lasts (shots, their backgrounds, their motion), which a few evenly
    spaced frames answer as well as any frames: the part of the benchmark where MixedFrame can
    only lose. No random draws: every other part of the benchmark stays as it was."""
    shots = plan.shots
    qa = [
        QA("how many shots does the video have?", COUNT_WORDS[len(shots)], "shots", list(COUNT_WORDS.values())),
        QA("what colour is the background at the end of the video?", shots[-1].background, "background", list(BACKGROUNDS)),
    ]
    first_length = (shots[1].start if len(shots) > 1 else config.frames) - shots[0].start
    dx, dy = shots[0].drift
    dominant, other = (abs(dx), abs(dy)) if abs(dx) >= abs(dy) else (abs(dy), abs(dx))
    # asked only when evenly spaced frames see the first shot at least twice and its motion is clear
    if first_length >= 100 and dominant >= 0.25 and dominant >= 2 * other:
        way = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")
        qa.append(QA("which way does the background move in the first shot?", way, "drift", ["left", "right", "up", "down"]))
    return qa


def annotate(plan: VideoPlan, split: str, config: SyntheticConfig, seed: int) -> VideoRecord:
    rng = np.random.default_rng([seed, 1])  # independent of the planning stream
    colour, shape = plan.key
    background = plan.shots[0].background
    qa = [  # every question lists its possible answers, so it also serves multiple-choice QA
        QA(f"what shape was the {colour} object?", shape, "what", list(SHAPES)),
        QA(f"which colour was the {shape}?", colour, "which", list(COLOURS)),
        QA(f"how many times did the {colour} {shape} appear?", COUNT_WORDS[plan.count], "how_many", list(COUNT_WORDS.values())),
    ]
    if plan.other:
        first_key = next(e.start for e in plan.events if (e.colour, e.shape) == plan.key)
        first_other = next(e.start for e in plan.events if (e.colour, e.shape) == plan.other)
        pair = [shape, plan.other[1]]
        rng.shuffle(pair)
        qa.append(QA(f"which appeared first, the {pair[0]} or the {pair[1]}?",
                     shape if first_key < first_other else plan.other[1], "order", list(pair)))
    if config.questions == "all":
        qa += persistent_questions(plan, config)
    shots = len(plan.shots)
    references = caption_templates(colour, shape, plan.count, background, plan.other, shots, "reference")
    captions = [references[i] for i in rng.choice(len(references), size=2, replace=False)]
    augmented, correct = [], []
    for _ in range(config.augmented_per_video):
        wrong = split != "meta" and rng.random() < config.wrong_fraction  # the meta split stays clean
        facts = (*_wrong_version(rng, plan), None) if wrong else (colour, shape, plan.count, background, plan.other)
        augmented.append(str(rng.choice(caption_templates(*facts, shots, "lvlm"))))
        correct.append(not wrong)
    meta = {
        "fps": config.fps,
        "num_frames": config.frames,
        "shots": [{"start": s.start, "background": s.background} for s in plan.shots],
        "events": [dataclasses.asdict(e) for e in plan.events],
        "augmented_correct": correct,
    }
    return VideoRecord(plan.id, f"videos/{plan.id}.mp4", split, label=f"{colour} {shape}", qa=qa,
                       captions=captions, augmented=augmented, meta=meta)


# -- the whole benchmark -----------------------------------------------------------------------


def split_of_each(config: SyntheticConfig) -> list[str]:
    """Deterministic split per video: a seeded shuffle cut by `split_fractions`."""
    n = config.videos
    counts = [int(n * f) for f in config.split_fractions]
    if n >= len(SPLITS):  # every split gets at least one video when there are enough
        counts = [max(1, c) if f > 0 else 0 for c, f in zip(counts, config.split_fractions)]
    counts[0] += n - sum(counts)
    labels = [s for s, c in zip(SPLITS, counts) for _ in range(c)]
    order = np.random.default_rng([config.seed, 2]).permutation(n)
    return [labels[int(i)] for i in np.argsort(order)]


def _build(job: tuple[int, int, str, str, SyntheticConfig]) -> dict[str, Any]:
    index, seed, split, out_dir, config = job
    video_id = f"{index:06d}"
    plan = plan_video(video_id, seed, config)
    write_video(Path(out_dir) / "videos" / f"{video_id}.mp4", render_frames(plan, config), fps=config.fps, crf=20,
                preset="veryfast", gop=100)
    return annotate(plan, split, config, seed).to_json()


def make_benchmark(
    out_dir: str | os.PathLike, config: SyntheticConfig = SyntheticConfig(), *, workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the benchmark: `videos/*.mp4`, `{train,val,test,meta}.jsonl` and `benchmark.json`.

    Args:
        out_dir: the output folder (created if needed; files are replaced).
        config: what to generate.
        workers: processes; default one per core. The output does not depend on it.
        progress: show a progress bar.

    Returns:
        The summary written to `benchmark.json`.
    """
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(config.seed).spawn(config.videos)]
    splits = split_of_each(config)
    jobs = [(i, seeds[i], splits[i], str(out), config) for i in range(config.videos)]
    workers = workers or os.cpu_count() or 1
    records: list[VideoRecord] = []
    bar = tqdm(total=config.videos, desc="benchmark", unit="video", disable=not progress)
    with bar:
        if workers == 1:
            results = map(_build, jobs)
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(_build, jobs, chunksize=2)
        try:
            for data in results:
                records.append(VideoRecord(**{**data, "qa": [QA(**q) for q in data["qa"]]}))
                bar.update()
        finally:
            if workers != 1:
                pool.shutdown(cancel_futures=True)
    for split in SPLITS:
        write_records(out / f"{split}.jsonl", [r for r in records if r.split == split])
    summary = summarize(records, config)
    write_json(out / "benchmark.json", summary)
    return summary


def summarize(records: list[VideoRecord], config: SyntheticConfig) -> dict[str, Any]:
    """Counts, vocabularies and majority baselines (what a model must beat)."""
    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    baselines: dict[str, float] = {}
    for qtype in QUESTION_TYPES:
        answers = Counter(q.answer for r in train for q in r.qa if q.type == qtype)
        tested = [q.answer for r in test for q in r.qa if q.type == qtype]
        if answers and tested:
            majority = answers.most_common(1)[0][0]
            baselines[qtype] = round(100 * sum(a == majority for a in tested) / len(tested), 2)
    flags = [c for r in records if r.split != "meta" for c in r.meta["augmented_correct"]]
    return {
        "format": "mixma/annotations-v1",
        "config": dataclasses.asdict(config),
        "splits": {s: sum(r.split == s for r in records) for s in SPLITS},
        "labels": sorted({r.label for r in records}),
        "answers": sorted({q.answer for r in records for q in r.qa}),
        "wrong_augmented_fraction": round(1 - sum(flags) / max(1, len(flags)), 4),
        "test_majority_accuracy": baselines,
    }


def load_summary(out_dir: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "benchmark.json").read_text())
