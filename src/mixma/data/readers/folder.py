"""Your own videos: every video under a folder, with an optional table of annotations.

`read_folder` turns a folder of videos (and, if given, a CSV or JSONL table of questions,
captions, labels or clip times) into canonical records, so a collection can be evaluated,
fine-tuned on, captioned or indexed without writing a reader for it.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixma.data.annotations import QA, SPLITS, VideoRecord
from mixma.data.readers._common import (
    VIDEO_EXTENSIONS,
    Issues,
    csv_rows,
    json_problem,
    nothing_read,
    read_text,
    strip_video_extension,
)
from mixma.errors import AnnotationError
from mixma.video.files import find_videos

# The columns (CSV) or fields (JSONL) an annotation table may have; only `video` is required.
FOLDER_FIELDS = ("video", "question", "answer", "options", "type", "caption", "label", "split", "start", "end")
_UNSPLIT = "test"  # where a table with a `split` column puts the videos it gives no split


def video_ids(videos: list[str]) -> dict[str, str]:
    """Record ids for video paths: the path without its extension ("trips/day1/beach"), or
    the whole path where two videos differ only in their extension ("a/clip.mp4", "a/clip.avi")."""
    stems = Counter(strip_video_extension(v) for v in videos)
    return {v: strip_video_extension(v) if stems[strip_video_extension(v)] == 1 else v for v in videos}


class VideoLookup:
    """Finds a video by how a table names it: its path relative to the root or its file name,
    with or without the extension (the extension compared in any case)."""

    def __init__(self, root: Path, videos: list[str]):
        self.root = root
        self._maps: tuple[dict[str, list[str]], ...] = ({}, {}, {}, {})  # path, path stem, name, name stem
        for video in videos:
            stem, ext = os.path.splitext(video)
            base = stem.rsplit("/", 1)[-1]
            for index, key in enumerate((stem + ext.lower(), stem, base + ext.lower(), base)):
                self._maps[index].setdefault(key, []).append(video)

    def find(self, name: str) -> str:
        """The video `name` names.

        Raises:
            ValueError: no video, or several, go by that name.
        """
        key = name.strip().replace("\\", "/").removeprefix("./")
        if os.path.isabs(key):
            key = Path(os.path.relpath(key, self.root)).as_posix()
        stem, ext = os.path.splitext(key)
        with_extension = ext.lower() in VIDEO_EXTENSIONS
        key = stem + ext.lower() if with_extension else key
        maps = (self._maps[0], self._maps[2]) if with_extension else (self._maps[1], self._maps[3])
        for table in maps[:1] if "/" in key else maps:
            if key in table:
                if len(table[key]) > 1:
                    raise ValueError(f"video {name!r} is ambiguous ({', '.join(table[key])}): give its path in the folder")
                return table[key][0]
        raise ValueError(f"no video {name!r} under {self.root}")


@dataclass(frozen=True)
class TableRow:
    """One row of an annotation table, checked."""

    line: int
    video: str  # the video's path relative to the root
    question: str | None = None
    answer: str | None = None
    options: list[str] | None = None
    type: str | None = None
    caption: str | None = None
    label: str | None = None
    split: str | None = None
    start: float | None = None
    end: float | None = None


def _text(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"'{name}' must be text, got {value!r}")
    return str(value).strip() or None  # an empty cell is no value


def _options(raw: dict[str, Any]) -> list[str] | None:
    value = raw.get("options")
    if isinstance(value, str):  # CSV: "red|green|blue"
        value = value.split("|") if value.strip() else None
    if value is None:
        return None
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError("'options' must list at least two choices ('a|b|c' in CSV, a list in JSONL)")
    options = [_text({"option": v}, "option") for v in value]
    if None in options:
        raise ValueError("'options' has an empty choice")
    return options


def _seconds(raw: dict[str, Any], name: str) -> float | None:
    value = raw.get(name)
    if isinstance(value, str):
        value = value.strip() or None
        try:
            value = float(value) if value is not None else None
        except ValueError:
            raise ValueError(f"'{name}' must be a number of seconds, got {raw[name]!r}") from None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"'{name}' must be a non-negative number of seconds, got {raw[name]!r}")
    return float(value)


def parse_row(raw: dict[str, Any], line: int, index: VideoLookup) -> TableRow:
    """A table row (CSV cells or a JSONL object) as a `TableRow`.

    Raises:
        ValueError: no such video, a malformed value, or fields that do not go together.
    """
    video = _text(raw, "video")
    if video is None:
        raise ValueError("'video' is empty")
    texts = {name: _text(raw, name) for name in ("question", "answer", "type", "caption", "label", "split")}
    row = TableRow(line, index.find(video), options=_options(raw), start=_seconds(raw, "start"), end=_seconds(raw, "end"), **texts)
    if (row.question is None) != (row.answer is None):
        raise ValueError("a question needs an answer and an answer a question")
    if row.question is None and (row.options or row.type):
        raise ValueError("'options' and 'type' belong to a question")
    if row.options is not None and row.answer not in row.options:
        raise ValueError(f"the answer {row.answer!r} is not one of the options")
    if row.split is not None and row.split not in SPLITS:
        raise ValueError(f"'split' must be one of {', '.join(SPLITS)}, got {row.split!r}")
    if row.start is not None and row.end is not None and row.end <= row.start:
        raise ValueError(f"'end' ({row.end:g} s) must come after 'start' ({row.start:g} s)")
    return row


def _unknown_fields(path: Path, fields: list[str], line: int) -> None:
    unknown = [f for f in fields if f not in FOLDER_FIELDS]
    if unknown:
        raise AnnotationError(path, f"unknown column {unknown[0]!r} (the columns are {', '.join(FOLDER_FIELDS)})", line=line)


def read_table(path: Path, index: VideoLookup, issues: Issues) -> list[TableRow]:
    """A CSV or JSONL annotation table's rows (see `read_folder`); bad rows go to `issues`.

    Raises:
        AnnotationError: the file is missing, of another kind, without a `video` column, with
            an unknown column (or, in JSONL, field), or (without an error list) a bad row.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        columns, cells = csv_rows(path, ("video",))
        _unknown_fields(path, columns, 1)
        raw_rows = [(line, row) for line, row in cells]
    elif suffix == ".jsonl":
        raw_rows = _jsonl_rows(path, issues)
    else:
        raise AnnotationError(path, "an annotation table must be a .csv or .jsonl file")
    rows = []
    for line, raw in raw_rows:
        try:
            if None in raw:  # csv.DictReader files cells beyond the header under None
                raise ValueError("more cells than columns (quote a cell that holds a comma)")
            rows.append(parse_row(raw, line, index))
        except ValueError as exc:
            issues.report(path, str(exc), line)
    return rows


def _jsonl_rows(path: Path, issues: Issues) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, text in enumerate(read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            issues.report(path, f"not valid JSON ({json_problem(exc)})", line)
            continue
        if not isinstance(raw, dict):
            issues.report(path, "a row must be a JSON object", line)
            continue
        _unknown_fields(path, list(raw), line)
        rows.append((line, raw))
    return rows


@dataclass
class _Draft:
    """A record being gathered from the rows that name its video and clip."""

    id: str
    video: str
    start: float | None = None
    end: float | None = None
    split: str | None = None
    label: str | None = None
    lines: dict[str, int] = field(default_factory=dict)  # where split and label were given
    qa: list[QA] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)

    def add(self, row: TableRow) -> None:
        """Take the row's annotations (raises ValueError, changing nothing, when its split or
        label disagrees with an earlier row's)."""
        for name in ("split", "label"):
            new, old = getattr(row, name), getattr(self, name)
            if new is not None and old is not None and new != old:
                raise ValueError(f"{name} {new!r} disagrees with {old!r} on line {self.lines[name]}")
        for name in ("split", "label"):
            if getattr(row, name) is not None and getattr(self, name) is None:
                setattr(self, name, getattr(row, name))
                self.lines[name] = row.line
        if row.question is not None:
            self.qa.append(QA(row.question, row.answer, row.type, options=row.options))
        if row.caption is not None:
            self.captions.append(row.caption)


def _clip_id(video_id: str, start: float | None, end: float | None) -> str:
    """'trips/beach' and 12 s to 30.5 s -> 'trips/beach_12-30.5'."""
    return f"{video_id}_{'' if start is None else f'{start:g}'}-{'' if end is None else f'{end:g}'}"


def gather(videos: list[str], rows: list[TableRow], path: Path | None, issues: Issues) -> list[_Draft]:
    """One draft per video no row names, and one per (video, clip) the rows name, in video order.

    Raises:
        AnnotationError: (without an error list) a row that disagrees with an earlier one.
    """
    ids = video_ids(videos)
    taken = set(ids.values())
    drafts: dict[tuple[str, float | None, float | None], _Draft] = {}
    for row in rows:
        key = (row.video, row.start, row.end)
        draft = drafts.get(key)
        if draft is None:
            whole = row.start is None and row.end is None
            rid = ids[row.video] if whole else _clip_id(ids[row.video], row.start, row.end)
            if not whole and rid in taken:
                issues.report(path, f"the clip's id {rid!r} is the id of another video", row.line)
                continue
            draft = _Draft(rid, row.video, row.start, row.end)
        try:
            draft.add(row)
        except ValueError as exc:
            issues.report(path, str(exc), row.line)
            continue
        if key not in drafts:  # kept only once a row has gone in
            taken.add(draft.id)
            drafts[key] = draft
    named = {video for video, _, _ in drafts}
    result = [_Draft(ids[v], v) for v in videos if v not in named]
    result += drafts.values()
    order = {v: i for i, v in enumerate(videos)}
    return sorted(result, key=lambda d: order[d.video])  # stable: a video's clips keep row order


def read_folder(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, annotations: str | None = None
) -> list[VideoRecord]:
    """Your own videos: every video under the folder, with an optional annotation table.

    Videos: every file under `root`, in sub-folders too, whose extension (any case) is a video
    one (.mp4, .avi, .mkv, .webm, .mov, .m4v, .3gp, .flv, .mpg, .mpeg, .wmv). Hidden files and
    folders (a leading dot, as the frame cache `.frame_cache`) are skipped; links to folders
    are not followed.

    Fields: `id` = the video's path in the folder without its extension ("trips/day1/beach";
    the whole path, "a/clip.mp4", where two videos differ only in their extension; a clip of a
    video, see below, is "<id>_<start>-<end>", e.g. "trips/day1/beach_12-30.5"); `video` = the
    path in the folder; `split` = the split asked for; `qa`, `captions`, `label`, `start`,
    `end` from the table.

    Splits: when the table gives no split (or there is no table), every video is in whatever
    split is asked for (`--split test` to evaluate, caption or index a collection; `--split
    train` to fine-tune on it). When it gives some, they decide: a video (or clip) is in the
    split its rows give, and those it gives none (a blank cell, or not in the table) are in
    "test", so that no video is in two splits.

    The table (`annotations`: a .csv or .jsonl file, relative to `root` or absolute) has one
    row per annotation, with these columns (CSV) or fields (JSONL), of which only `video` is
    required:

        video     the video: its file name or its path in the folder, with or without the
                  extension ("beach", "beach.mp4", "trips/day1/beach.mp4")
        question  a question about the video, with its `answer`
        answer    the answer; with `options`, one of them (multiple choice)
        options   the choices of a multiple-choice question: "a|b|c" in CSV, a list in JSONL
        type      the question's type (for per-type scores)
        caption   a caption written by a person
        label     the video's class
        split     train, val, test or meta
        start     where a clip of the video starts, in seconds
        end       where it ends, in seconds (rows with a start or an end annotate that
                  clip; a video may have several clips)

    Several rows for a video (or clip) give it several QA pairs and captions; their label and
    split must agree. Videos no row names are kept, without annotations. For example, `qa.csv`
    (kitchen is a training video; the others, given no split, are test videos):

        video,question,answer,options,caption,split
        beach.mp4,what is the dog chasing?,a ball,,,
        trips/day1/market,how many stalls are open?,three,two|three|four,,
        trips/day1/market,,,,people walk between fruit stalls,
        kitchen,,,,a man chops onions,train

    or, as JSONL, one object per line:

        {"video": "trips/day1/market", "question": "how many stalls are open?", "answer": "three", "options": ["two", "three", "four"]}

    Args:
        root: the folder of videos.
        split: train, val, test or meta (see Splits).
        errors: collect bad rows here and skip them; None raises the first.
        annotations: the annotation table, if any.

    Returns:
        The records of `split`, in the order of their videos' paths.

    Raises:
        AnnotationError: no video under `root`; a table that is missing, not .csv/.jsonl,
            without a `video` column, or with an unknown column (the error names it); no
            video in `split`; or (without `errors`) a bad row: a video that is not in the
            folder, or ambiguous, a malformed value, a question without an answer, a label or
            split that disagrees with an earlier row's.
    """
    issues = Issues(errors)
    videos = find_videos(root)
    if not videos:
        raise AnnotationError(root, f"no video files under it (looked for {', '.join(VIDEO_EXTENSIONS)})")
    table = None if annotations is None else _table_path(root, annotations)
    rows = read_table(table, VideoLookup(root, videos), issues) if table is not None else []
    drafts = gather(videos, rows, table, issues)
    given = Counter(d.split for d in drafts if d.split is not None)
    records = [
        VideoRecord(d.id, d.video, split, start=d.start, end=d.end, label=d.label, qa=d.qa, captions=d.captions)
        for d in drafts
        if (d.split or (_UNSPLIT if given else split)) == split
    ]
    if not records:
        counts = ", ".join(f"{n} in {s}" for s, n in sorted(given.items()))
        reason = f"no video is in split {split!r} (the table's split column puts {counts}; the rest are in {_UNSPLIT!r})"
        raise nothing_read(table or root, issues, reason)
    return records


def _table_path(root: Path, annotations: str) -> Path:
    if not isinstance(annotations, str) or not annotations.strip():
        raise ValueError("annotations must be the path of a .csv or .jsonl table")
    path = Path(annotations).expanduser()
    return path if path.is_absolute() else root / path
