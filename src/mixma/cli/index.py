"""`mixma index` and `mixma search`: index your own videos down to the moment, and search them by text."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path

import typer

from mixma.cli._common import fail, quiet_transformers, warn
from mixma.index.options import POOLS, UNITS, IndexOptions

_DEFAULTS = IndexOptions()
Unit = Enum("Unit", {u: u for u in UNITS}, type=str)
Pool = Enum("Pool", {p: p for p in POOLS}, type=str)


def index(
    paths: list[str] = typer.Argument(..., metavar="PATH...", help="Video files, folders (their videos, recursively) or glob patterns."),
    output: Path = typer.Option(..., "-o", "--output", help="The index folder (created, or updated in place)."),
    model: str = typer.Option(None, "--model", "-m", help=f"concepts (ImageNet concept bank, no training), mama:RUN (a `mixma train mama` run) or clip:FOLDER (a transformers CLIP checkpoint). [default: {_DEFAULTS.model}; an existing index: its own]"),
    unit: Unit = typer.Option(None, "--unit", help=f"What a moment is: mixed (MixedFrame segments: cuts and brief events kept apart), window (fixed windows), video (whole videos). [default: {_DEFAULTS.unit}]"),
    window: float = typer.Option(None, "--window", min=0.1, help=f"Seconds: a window's length (--unit window), the mean moment length (--unit mixed). [default: {_DEFAULTS.moment_sec:g}]"),
    fps: float = typer.Option(None, "--fps", min=0.01, help=f"Frames per second the model sees. [default: {_DEFAULTS.frame_rate:g}]"),
    pool: Pool = typer.Option(None, "--pool", help=f"concepts: pool a moment's class probabilities over its frames by max or mean. [default: {_DEFAULTS.pool}]"),
    workers: int = typer.Option(_DEFAULTS.workers, "--workers", "-j", min=1, help="Processes embedding videos in parallel (under torchrun: per rank)."),
    verify: bool = typer.Option(_DEFAULTS.verify, "--verify", help="Find changed files by content hash, not size + mtime alone."),
    every_file: bool = typer.Option(_DEFAULTS.every_file, "--all", help="Folders: try every file, not only names with a video extension."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Index videos for text search, down to the moment.

    Each video is cut into moments (MixedFrame segments by default) and each moment is embedded
    by the model, with its start, end and a thumbnail; the vectors go into a faiss index, the rest
    into SQLite, in the folder -o. Running it again embeds only new or changed files, drops
    deleted ones, and continues an interrupted run; unreadable files are skipped and listed.
    Options not given on the command line are the existing index's own.
    Several machines: the same command under torchrun (every rank takes a share).

    Examples:

      mixma index ~/videos -o idx
      mixma index clips/ more.mp4 -o idx --unit window --window 4
      mixma index ~/videos -o idx-mama --model mama:runs/mama
      torchrun --nproc_per_node 2 -m mixma index ~/videos -o idx
    """
    from mixma.index import build_index  # noqa: PLC0415

    quiet_transformers()
    given = {"model": model, "unit": unit and unit.value, "moment_sec": window, "frame_rate": fps,
             "pool": pool and pool.value}
    stored = _stored_options(output)  # options not given: an existing index's own, else the defaults
    chosen = {k: v if v is not None else stored.get(k, getattr(_DEFAULTS, k)) for k, v in given.items()}
    extra = {k: v for k, v in stored.items() if k in ("chunk_sec", "thumb_width")}
    try:
        options = IndexOptions(**chosen, **extra, workers=workers, verify=verify, every_file=every_file)
    except ValueError as exc:
        raise fail(str(exc)) from None
    summary = build_index(paths, output, options, progress=not quiet)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 merged the shards and reports
    for path, reason in summary.skipped:
        warn(f"skipped {path}: {reason}")
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
    else:
        typer.echo(f"{summary.line()}; index in {output}")
    if summary.skipped and not (summary.added or summary.updated or summary.unchanged):
        raise typer.Exit(2)  # nothing could be indexed


def _stored_options(folder: Path) -> dict:
    """The options an existing index was built with ({} for a new folder)."""
    descriptor = folder / "index.json"
    if not descriptor.is_file():
        return {}
    try:
        return dict(json.loads(descriptor.read_text()).get("options", {}))
    except (OSError, ValueError):
        return {}  # build_index says what is wrong with it


def search(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="An index folder (mixma index)."),
    text: str = typer.Argument(..., metavar="TEXT", help="What to look for, in words."),
    k: int = typer.Option(10, "-k", min=1, help="How many results."),
    videos: bool = typer.Option(False, "--videos", help="Rank whole videos instead of moments."),
    per_video: int = typer.Option(3, "--per-video", min=1, help="At most this many moments of one video."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as a JSON list."),
    explain: bool = typer.Option(False, "--explain", help="concepts model: also show the ImageNet classes the query weighs."),
):
    """Search an index by text: the best moments (or --videos), best first.

    Hits of one video that touch are merged into one moment. Each line: score, video, start-end
    in seconds (m:ss), thumbnail.

    Examples:

      mixma search idx "a red car"
      mixma search idx "a dog" -k 5 --per-video 1
      mixma search idx "a cyclist" --videos --json
    """
    from mixma.index import VideoIndex  # noqa: PLC0415

    quiet_transformers()
    idx = VideoIndex.open(index_dir)
    hits = idx.search(text, k, videos=videos, per_video=per_video)
    if as_json:
        typer.echo(json.dumps([h.to_json() for h in hits], indent=2))
        return
    if explain and hasattr(idx.model, "explain"):
        shown = ", ".join(f"{name} {w:.2f}" for name, w in idx.model.explain(text))
        typer.echo(f"query classes: {shown}")
    if not hits:
        typer.echo("no results (the index is empty)")
    for hit in hits:
        typer.echo(f"{hit.score:.4f}  {hit.path}  {_clock(hit.start)}-{_clock(hit.end)}  {hit.thumbnail or ''}")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"
