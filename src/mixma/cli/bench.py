"""`mixma bench`: the synthetic long-video benchmark."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from mixma.cli._common import fail
from mixma.data.synthetic import SyntheticConfig, make_benchmark

_DEFAULTS = SyntheticConfig()


def make(
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write videos/, the split files and benchmark.json into."),
    videos: int = typer.Option(_DEFAULTS.videos, "--videos", min=1, help="How many videos."),
    seed: int = typer.Option(_DEFAULTS.seed, "--seed", help="Master seed: the same seed gives byte-identical files."),
    frames: int = typer.Option(_DEFAULTS.frames, "--frames", min=80, help="Frames per video."),
    size: int = typer.Option(_DEFAULTS.size, "--size", min=32, help="Frame side in pixels (square, even)."),
    fps: float = typer.Option(_DEFAULTS.fps, "--fps", min=1, help="Frame rate."),
    wrong_fraction: float = typer.Option(
        _DEFAULTS.wrong_fraction, "--wrong-fraction", min=0, max=1,
        help="Chance that an augmented (LVLM-style) caption describes something else; the meta split stays clean.",
    ),
    splits: str = typer.Option(
        ",".join(f"{f:g}" for f in _DEFAULTS.split_fractions), "--splits",
        help="Fractions of the videos in train, val, test and meta, comma-separated (they sum to 1).",
    ),
    questions: str = typer.Option(
        _DEFAULTS.questions, "--questions",
        help="all: questions about brief events and about persistent content (shots, backgrounds, motion); "
        "events: the brief-event questions only (the benchmark as it was before persistent ones were added).",
    ),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes (0: one per core). The output does not depend on it."),
):
    """Generate the synthetic long-video benchmark.

    H.264 videos whose meaning hinges on brief events (a coloured shape flashing for a few frames)
    between slow motion and hard cuts, with labels for classification, open-ended QA, captions,
    noisy augmented captions and a clean meta split.

    Writes OUTPUT/videos/*.mp4, OUTPUT/{train,val,test,meta}.jsonl (the canonical annotation format)
    and OUTPUT/benchmark.json (settings, vocabularies, majority-answer baselines).

    Example:

      mixma bench make -o bench/ --videos 200 --seed 0
    """
    try:
        fractions = tuple(float(f) for f in splits.split(","))
    except ValueError:
        raise fail(f"--splits must be four numbers like 0.7,0.1,0.1,0.1, got {splits!r}") from None
    config = SyntheticConfig(videos=videos, frames=frames, size=size, fps=fps, seed=seed, wrong_fraction=wrong_fraction,
                             split_fractions=fractions, questions=questions)
    start = time.perf_counter()
    summary = make_benchmark(output, config, workers=workers or None, progress=True)
    splits = ", ".join(f"{n} {s}" for s, n in summary["splits"].items())
    typer.echo(f"wrote {videos} videos ({splits}) to {output} in {time.perf_counter() - start:.1f} s", err=True)
