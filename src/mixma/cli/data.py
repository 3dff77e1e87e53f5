"""`mixma data`: convert standard datasets to the canonical JSONL annotation format."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import typer

from mixma.cli._common import fail
from mixma.data.readers import DATASETS, write_dataset
from mixma.errors import AnnotationError

_SHOWN_REASONS = 3


def parse_settings(settings: list[str] | None) -> dict[str, object]:
    """`KEY=VALUE` pairs -> reader options; a VALUE that parses as JSON (numbers, true/false,
    lists) is taken as such, anything else as a string. Dashes in keys become underscores."""
    options: dict[str, object] = {}
    for setting in settings or []:
        key, sep, value = setting.partition("=")
        if not sep or not key.strip():
            raise fail(f"--set takes KEY=VALUE, got {setting!r}")
        try:
            options[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip().replace("-", "_")] = value
    return options


def list_datasets() -> None:
    """List the registered datasets, their splits, options and the files each expects."""
    for spec in DATASETS.values():
        options = ", ".join(
            name if default is inspect.Parameter.empty else f"{name}={default!r}" for name, default in spec.options.items()
        )
        typer.echo(f"{spec.name}  [{spec.task}; splits: {', '.join(spec.splits)}]")
        typer.echo(f"    {spec.summary}")
        typer.echo(f"    files: {spec.files}")
        if options:
            typer.echo(f"    options: {options}")


def convert(
    dataset: str = typer.Argument(..., help="A dataset name (see `mixma data list`)."),
    root: Path = typer.Argument(..., help="The dataset folder holding its annotation files."),
    split: str = typer.Option(..., "--split", "-s", help="train, val or test (synthetic also: meta)."),
    output: Path = typer.Option(..., "-o", "--output", help="The JSONL file to write."),
    task: str | None = typer.Option(None, "--task", help="LVU task: relationship, way_speaking, scene, director, genre, writer or year."),
    settings: list[str] | None = typer.Option(None, "--set", help="A reader option KEY=VALUE, repeatable (e.g. window=100, video_path='frames/{video}')."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip malformed entries (and report them) instead of stopping at the first."),
):
    """Convert one split of DATASET under ROOT to canonical JSONL (written atomically).

    Video paths in the output are relative to the output file's folder.

    Examples:

      mixma data convert msrvtt_qa /data/msrvtt --split test -o ann/msrvtt_qa_test.jsonl

      mixma data convert lvu /data/lvu --split val --task genre --set window=100 --set stride=20 -o lvu_genre_val.jsonl
    """
    options = parse_settings(settings)
    if task is not None:
        options["task"] = task
    errors: list[AnnotationError] | None = [] if skip_bad else None
    records = write_dataset(dataset, root, split, output, errors=errors, **options)
    pairs = sum(len(r.qa) for r in records)
    captions = sum(len(r.captions) for r in records)
    summary = f"wrote {len(records)} records ({pairs} QA pairs, {captions} captions) to {output}"
    if errors:
        reasons = "; ".join(str(e) for e in errors[:_SHOWN_REASONS])
        more = f"; and {len(errors) - _SHOWN_REASONS} more" if len(errors) > _SHOWN_REASONS else ""
        summary += f"; skipped {len(errors)} bad entries: {reasons}{more}"
    typer.echo(summary, err=True)
