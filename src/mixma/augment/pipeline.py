"""MAMA's caption augmentation over an annotation file: keyframes -> grid -> LVLM -> `augmented`.

For each record of a canonical annotation file (`mixma.data.annotations`), the video (resolved
against the file's folder, cut to `start`/`end` when given) yields K keyframes, the keyframes a
`rows x cols` mosaic, and the captioner one or more captions, which are added to the record's
`augmented` list (or replace it). The output file holds every record, in the input's order.

Resuming
--------
Each finished video is appended to a progress file beside the output (`OUT.progress`, JSON
lines: a header with the settings, then one line per video), flushed and fsynced before the
next video starts. A killed run leaves at most a torn last line, which is ignored. Running the
same command again skips the videos in the progress file and writes the same output as an
uninterrupted run would have: every video is sampled from its own seed (derived from the run's
seed and the record's id), so its captions do not depend on which videos ran before it. The
progress file records the settings (keyframes, grid, prompt, model, sampling, ...); continuing
with other settings is refused (`resume=False` starts over). It is deleted once every record of
the annotation file is done.

Bad videos
----------
A video that cannot be read (missing, not a video, damaged, a clip outside it) is skipped and
reported with its reason; the rest still runs. Skipped videos are not written to the progress
file, so a second run retries only them. A video whose samples all failed the caption filters is
done (reported, with no caption added). When at least one video got a caption the output is
written; when none did (every video failed or was filtered out), nothing is written and the
summary says why (`AugmentSummary.ok` is False; the CLI exits with code 1).
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mixma._atomic import atomic_open
from mixma.augment.captioner import DEFAULT_PROMPT, Captioner, resolve_prompt
from mixma.augment.grid import GridConfig, make_grid
from mixma.augment.keyframes import KeyframeConfig, Keyframes, extract_keyframes
from mixma.data.annotations import VideoRecord, read_records, write_records
from mixma.errors import MixmaError
from mixma.video.export import write_jpeg

PROGRESS_SUFFIX = ".progress"
_FORMAT = 1  # progress file format version


class ProgressError(MixmaError):
    """The progress file of an earlier run cannot be used (other settings, damaged)."""


@dataclass(frozen=True)
class AugmentConfig:
    """What the pipeline does per video; every default lives here (or in the nested configs)."""

    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    prompt: str = DEFAULT_PROMPT  # the instruction, or a preset name from `PROMPTS`
    captions_per_video: int = 1  # MAMA shows two generations per video; each needs a sample
    seed: int = 0  # run seed; each video's seed derives from it and the record id
    replace: bool = False  # `augmented` holds only this run's captions (default: appended to it)

    def __post_init__(self):
        if self.grid.cells != self.keyframes.num_keyframes:
            raise ValueError(
                f"a {self.grid.rows}x{self.grid.cols} grid holds {self.grid.cells} frames, "
                f"but num_keyframes is {self.keyframes.num_keyframes}"
            )
        if self.captions_per_video < 1:
            raise ValueError(f"captions_per_video must be at least 1, got {self.captions_per_video}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not resolve_prompt(self.prompt).strip():
            raise ValueError("the prompt is empty")


@dataclass(frozen=True)
class Failure:
    """A record whose video was skipped, and why."""

    id: str
    reason: str


@dataclass
class AugmentSummary:
    """What a run did.

    Attributes:
        output: the annotation file written (when `written`).
        progress_file: the progress file (kept while records remain to be done).
        records: records in scope (the first `limit` of the file, or all).
        captioned: of those, videos with at least one new caption (this run and earlier ones).
        resumed: of those done, how many an earlier run did.
        new_captions: captions added in all.
        uncaptioned: ids of videos where no sample passed the caption filters.
        short: ids of videos that got some captions but fewer than asked.
        failed: videos skipped, with the reason.
        written: whether the output file was written.
    """

    output: Path
    progress_file: Path
    records: int = 0
    captioned: int = 0
    resumed: int = 0
    new_captions: int = 0
    uncaptioned: list[str] = field(default_factory=list)
    short: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    written: bool = False

    @property
    def ok(self) -> bool:
        """Something was captioned, or there was nothing to caption."""
        return self.captioned > 0 or self.records == 0

    def lines(self) -> list[str]:
        """A human-readable report."""
        out = [
            f"captioned {self.captioned} of {self.records} video{'s' if self.records != 1 else ''}"
            + (f" ({self.resumed} done by an earlier run)" if self.resumed else "")
            + f", {self.new_captions} caption{'s' if self.new_captions != 1 else ''} added"
        ]
        if self.short:
            out.append(f"{len(self.short)} got fewer captions than asked (samples failed the filters): {_ids(self.short)}")
        if self.uncaptioned:
            out.append(f"{len(self.uncaptioned)} got no caption (every sample failed the filters): {_ids(self.uncaptioned)}")
        if self.failed:
            out.append(f"{len(self.failed)} skipped:")
            out.extend(f"  {f.id}: {f.reason}" for f in self.failed)
        if self.written:
            out.append(f"wrote {self.output}")
        else:
            out.append(f"nothing captioned: {self.output} not written")
        if self.progress_file.exists():
            out.append(f"progress kept in {self.progress_file}; run again to continue or retry the skipped videos")
        return out


def _ids(ids: list[str], most: int = 10) -> str:
    return ", ".join(ids[:most]) + (f" and {len(ids) - most} more" if len(ids) > most else "")


def video_seed(seed: int, record_id: str) -> int:
    """A record's own sampling seed: depends only on the run seed and the id, so a video's
    captions are the same whichever videos ran before it (resuming, `limit`)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(record_id.encode("utf-8"))]).generate_state(1)[0])


def progress_path(output: str | os.PathLike) -> Path:
    """The progress file of an output file: `OUT.progress` beside it."""
    output = Path(output)
    return output.with_name(output.name + PROGRESS_SUFFIX)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def grid_filename(record_id: str) -> str:
    """A file name for a record's grid image; ids with characters unsafe in file names get a
    checksum so two ids cannot map to one name."""
    safe = _UNSAFE.sub("_", record_id)
    safe = "_" + safe[1:] if safe.startswith(".") else safe  # no hidden files
    if safe != record_id:
        safe = f"{safe}-{zlib.crc32(record_id.encode('utf-8')):08x}"
    return f"{safe}.jpg"


# -- progress file --------------------------------------------------------------------------


def _normalise(settings: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(settings, sort_keys=True))  # tuples -> lists, as read back


def load_progress(path: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished videos by id from a progress file (empty when there is none).

    A torn last line (the run was killed while writing it) is dropped from the file.

    Raises:
        ProgressError: the file was made with other settings, or is damaged before its last line.
    """
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").split("\n")
    complete, tail = lines[:-1], lines[-1]  # text after the last newline was never finished
    entries: list[dict[str, Any]] = []
    torn = bool(tail)
    for number, line in enumerate(complete, start=1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(complete) and not tail:
                torn = True  # cut inside the final write
                break
            raise ProgressError(f"{path}:{number}: damaged progress file; delete it (or use --restart) to start over") from None
    if not entries or entries[0].get("format") != _FORMAT:
        raise ProgressError(f"{path}: not a progress file of this version; delete it (or use --restart) to start over")
    if entries[0].get("settings") != _normalise(settings):
        raise ProgressError(
            f"{path}: an earlier run with other settings left this progress file; rerun with the same "
            "settings to continue it, or start over with --restart"
        )
    if torn:  # rewrite without the torn line, so appends start on a line of their own
        with atomic_open(path) as f:
            f.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
    return {e["id"]: e for e in entries[1:]}


def _start_progress(path: Path, settings: dict[str, Any]) -> None:
    with atomic_open(path) as f:
        f.write(json.dumps({"format": _FORMAT, "settings": _normalise(settings)}, ensure_ascii=False) + "\n")


def _append_progress(path: Path, entry: dict[str, Any]) -> None:
    # one write of a whole line, then fsync: a kill leaves either the line or a torn tail
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


# -- the run -------------------------------------------------------------------------------------


def visual_input(keyframes: Keyframes, grid: np.ndarray, captioner: Captioner) -> np.ndarray:
    """What the captioner takes: the mosaic, or the keyframes themselves."""
    return keyframes.frames if captioner.input_kind == "frames" else grid


def augment_captions(
    annotations: str | os.PathLike,
    output: str | os.PathLike,
    captioner: Captioner,
    config: AugmentConfig = AugmentConfig(),
    *,
    save_grids: str | os.PathLike | None = None,
    limit: int | None = None,
    resume: bool = True,
    progress: bool = False,
) -> AugmentSummary:
    """Caption every video of an annotation file and write it out with the captions added.

    Args:
        annotations: the canonical JSONL annotation file; `video` paths are relative to its folder.
        output: the annotation file to write (may be `annotations` itself).
        captioner: the captioning backend (e.g. `LlavaCaptioner`).
        config: keyframes, grid, prompt, captions per video, seed, replace.
        save_grids: a folder to save each video's grid as `<id>.jpg`, for inspection.
        limit: process (and write) only the first `limit` records.
        resume: continue from the progress file of an earlier run; False starts over.
        progress: show a progress bar.

    Returns:
        An `AugmentSummary` (see the module docstring for when the output is written).

    Raises:
        AnnotationError: the annotation file is missing or malformed.
        ProgressError: the progress file was made with other settings or is damaged.
    """
    annotations, output = Path(annotations), Path(output)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    records = read_records(annotations)
    scope = records if limit is None else records[:limit]
    settings = {"augment": asdict(config), "prompt": resolve_prompt(config.prompt), "captioner": captioner.describe()}
    log = progress_path(output)
    if not resume and log.exists():
        log.unlink()
    done = load_progress(log, settings)
    summary = AugmentSummary(output=output, progress_file=log, records=len(scope))
    summary.resumed = sum(1 for r in scope if r.id in done)
    todo = [r for r in scope if r.id not in done]
    if todo and not log.exists():
        _start_progress(log, settings)
    grids = Path(save_grids) if save_grids is not None else None
    if grids is not None:
        grids.mkdir(parents=True, exist_ok=True)

    bar = tqdm(todo, desc="captioning", unit="video", disable=not progress)
    for record in bar:
        entry = _caption_one(record, annotations.parent, captioner, config, grids, summary)
        if entry is None:
            bar.set_postfix(skipped=len(summary.failed))
            continue
        _append_progress(log, entry)
        done[record.id] = entry
    out_records = [_with_captions(record, done.get(record.id), config, summary) for record in scope]
    if summary.ok:
        write_records(output, out_records)
        summary.written = True
    if log.exists() and all(r.id in done for r in records):
        log.unlink()
    return summary


def _caption_one(record: VideoRecord, root: Path, captioner: Captioner, config: AugmentConfig, grids: Path | None,
                 summary: AugmentSummary) -> dict[str, Any] | None:
    """One video's progress entry (its captions and keyframes), or None when it cannot be read."""
    try:
        keyframes = extract_keyframes(record.video_path(root), config.keyframes, clip=record.clip)
        grid = make_grid(keyframes.frames, config.grid)
    except (MixmaError, OSError, ValueError) as exc:
        summary.failed.append(Failure(record.id, str(exc)))
        return None
    if grids is not None:
        write_jpeg(grids / grid_filename(record.id), grid)
    [result] = captioner.caption_detailed(
        [visual_input(keyframes, grid, captioner)], resolve_prompt(config.prompt),
        config.captions_per_video, video_seed(config.seed, record.id),
    )
    return {"id": record.id, "captions": result.captions, "keyframes": keyframes.indices.tolist(),
            "rejected": [reason for _, reason in result.rejected]}


def _with_captions(record: VideoRecord, entry: dict | None, config: AugmentConfig, summary: AugmentSummary) -> VideoRecord:
    """The record as written: its augmented captions extended (or replaced) by this run's."""
    if entry is None:
        if config.replace:
            record.augmented = []  # only this run's captions, and a skipped video has none
        return record
    new = entry["captions"]
    record.augmented = list(new) if config.replace else record.augmented + list(new)
    summary.new_captions += len(new)
    if not new:
        summary.uncaptioned.append(record.id)
    else:
        summary.captioned += 1
        if len(new) < config.captions_per_video:
            summary.short.append(record.id)
    return record
