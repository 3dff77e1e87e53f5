"""`mixma data`: convert standard datasets to the canonical JSONL annotation format."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import typer

from mixma.cli._common import fail
from mixma.config import ConfigError, parse_value
from mixma.data.annotations import VideoRecord
from mixma.data.readers import DATASETS, get_dataset, write_dataset
from mixma.errors import AnnotationError

_SHOWN_REASONS = 3


def parse_settings(settings: list[str] | None) -> dict[str, object]:
    """`KEY=VALUE` pairs -> reader options, dashes in keys made underscores.

    VALUE is read as YAML, as config overrides are (`mixma.config.parse_value`): numbers,
    true/false, null, lists (`[a, b]`) and quoted strings (`'frames/{video}'`). Text YAML cannot
    read is kept as written, and so is text YAML reads as a mapping (no reader option takes
    one, and `{video}` alone is a mapping to YAML but a path template here).
    """
    options: dict[str, object] = {}
    for setting in settings or []:
        key, sep, text = setting.partition("=")
        if not sep or not key.strip():
            raise fail(f"--set takes KEY=VALUE, got {setting!r}")
        try:
            value = parse_value(text)
        except ConfigError:
            value = text
        options[key.strip().replace("-", "_")] = text if isinstance(value, dict) else value
    return options


def missing_videos(records: list[VideoRecord], folder: Path) -> tuple[int, str | None]:
    """How many records' videos (relative to `folder`) do not exist, and the first such path."""
    exists: dict[Path, bool] = {}
    missing, first = 0, None
    for record in records:
        path = record.video_path(folder)
        if path not in exists:
            exists[path] = path.exists()  # a file, or a folder of frames
        if not exists[path]:
            missing += 1
            first = first or os.path.normpath(path)  # shown: "ann/../videos/x.mp4" reads as "videos/x.mp4"
    return missing, first


def list_datasets(
    name: str | None = typer.Argument(None, help="A dataset: print its reader's whole documentation."),
) -> None:
    """List the registered datasets, their splits, options and the files each expects.

    With NAME, print that reader's documentation instead: the files it reads, how each record
    field is filled, and its options (e.g. `mixma data list folder` for your own videos).
    """
    if name is not None:
        spec = get_dataset(name)
        typer.echo(f"{spec.name}  [{spec.task}; splits: {', '.join(spec.splits)}]\n")
        typer.echo(inspect.cleandoc(spec.reader.__doc__ or spec.summary))
        return
    for spec in DATASETS.values():
        options = ", ".join(
            name if default is inspect.Parameter.empty else f"{name}={default!r}" for name, default in spec.options.items()
        )
        typer.echo(f"{spec.name}  [{spec.task}; splits: {', '.join(spec.splits)}]")
        typer.echo(f"    {spec.summary}")
        typer.echo(f"    files: {spec.files}")
        if options:
            typer.echo(f"    options: {options}")


def summary_line(records: list[VideoRecord], output: Path, errors: list[AnnotationError] | None) -> str:
    """What `convert` did, in one line: counts, records whose videos are missing, bad entries."""
    pairs = sum(len(r.qa) for r in records)
    captions = sum(len(r.captions) for r in records)
    summary = f"wrote {len(records)} records ({pairs} QA pairs, {captions} captions) to {output}"
    missing, first = missing_videos(records, output.parent)
    if missing:  # a warning: the annotations are fine, the videos may just not be downloaded yet
        whose = "1 record's video is" if missing == 1 else f"{missing} records' videos are"
        summary += f"; {whose} missing (not yet downloaded?), e.g. {first}"
    if errors:
        reasons = "; ".join(str(e) for e in errors[:_SHOWN_REASONS])
        more = f"; and {len(errors) - _SHOWN_REASONS} more" if len(errors) > _SHOWN_REASONS else ""
        summary += f"; skipped {len(errors)} bad entries: {reasons}{more}"
    return summary


def convert(
    dataset: str = typer.Argument(..., help="A dataset name (see `mixma data list`)."),
    root: Path = typer.Argument(..., help="The dataset folder holding its annotation files (for `folder`: your videos)."),
    split: str = typer.Option(..., "--split", "-s", help="train, val or test (synthetic and folder also: meta)."),
    output: Path = typer.Option(..., "-o", "--output", help="The JSONL file to write."),
    task: str | None = typer.Option(None, "--task", help="LVU task: relationship, way_speaking, scene, director, genre, writer or year."),
    settings: list[str] | None = typer.Option(None, "--set", help="A reader option KEY=VALUE, repeatable; VALUE is YAML (e.g. window=100, video_path='frames/{video}')."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip malformed entries (and report them) instead of stopping at the first."),
):
    """Convert one split of DATASET under ROOT to canonical JSONL (written atomically).

    Video paths in the output are relative to the output file's folder. The summary line counts
    the records, warns about records whose videos are missing (exit code 0: they may not be
    downloaded yet), and lists the bad entries skipped with --skip-bad.

    Examples:

      mixma data convert msrvtt_qa /data/msrvtt --split test -o ann/msrvtt_qa_test.jsonl

      mixma data convert lvu /data/lvu --split val --task genre --set window=100 --set stride=20 -o lvu_genre_val.jsonl

      mixma data convert folder ~/videos --split test --set annotations=qa.csv -o my_videos.jsonl
    """
    options = parse_settings(settings)
    if task is not None:
        options["task"] = task
    errors: list[AnnotationError] | None = [] if skip_bad else None
    records = write_dataset(dataset, root.expanduser(), split, output, errors=errors, **options)
    typer.echo(summary_line(records, output, errors), err=True)
