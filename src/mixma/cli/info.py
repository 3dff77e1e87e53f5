"""`mixma info`: what videos hold, as a table or JSON."""

from __future__ import annotations

import dataclasses
import glob
import json
from pathlib import Path

import typer

from mixma.cli._common import fail


def _table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def info(
    videos: list[Path] = typer.Argument(..., metavar="VIDEO...", help="Video files, folders (their videos, recursively) or glob patterns."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    changes: bool = typer.Option(False, "--changes", help="Also find the sudden changes (cuts, brief events) MixedFrame sees (decodes the videos)."),
):
    """Show what videos hold: frames, fps, duration, size, codec, rotation, variable frame rate,
    truncation and keyframe interval.

    Frame counts come from the packets themselves, not the container's header (which often
    lies); a header that disagrees is shown in brackets.

    Examples:

      mixma info clip.mp4

      mixma info ~/videos --json

      mixma info "footage/*.avi" --changes
    """
    from mixma.errors import VideoError
    from mixma.video.files import expand_paths
    from mixma.video.info import INFO_COLUMNS, info_rows
    from mixma.video.reader import probe

    files, unmatched = expand_paths(videos)
    failed = [f"{path}: " + ("no file matches" if glob.has_magic(path) else "no such file") for path in unmatched]
    infos, found = [], []
    for path in files:
        try:  # a file whose header reads but whose frames do not is reported like an unreadable one
            info, change = probe(path), _changes(path) if changes else None
        except VideoError as exc:
            failed.append(str(exc))
            continue
        infos.append(info)
        found.append(change)
    if infos:
        if as_json:
            typer.echo(json.dumps([{**dataclasses.asdict(i), **({"changes": c} if changes else {})}
                                   for i, c in zip(infos, found)], indent=2))
        else:
            rows = info_rows(infos)
            headers = INFO_COLUMNS
            if changes:
                headers, rows = (*headers, "changes"), [(*r, _short(c)) for r, c in zip(rows, found)]
            typer.echo(_table(rows, headers))
    for message in failed:
        typer.echo(f"error: {message}", err=True)
    if failed:
        raise typer.Exit(2)
    if not infos:
        raise fail("no video files found")


def _changes(path: Path) -> list[dict]:
    """The sudden changes MixedFrame detects (frame, time), for `--changes`."""
    from mixma.video.sampling import sample_frames

    sample = sample_frames(path, 1, "mixed")
    times = sample.info.fps
    return [{"frame": int(c), "time": round(int(c) / times, 3) if times else None} for c in sample.changes]


def _short(changes: list[dict]) -> str:
    shown = ", ".join(f"{c['time']:.2f}s" if c["time"] is not None else f"frame {c['frame']}" for c in changes[:6])
    return f"{len(changes)}: {shown}" + (", ..." if len(changes) > 6 else "") if changes else "0"
