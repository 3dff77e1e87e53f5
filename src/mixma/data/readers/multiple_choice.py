"""Multiple-choice video QA: NExT-QA.

One record per video holds all its questions. Each `QA` keeps the candidate answers in their
order as `options`, and its `answer` is the text of the right one (`options[index]`), as the
canonical format wants; training with `data.task=multiple_choice` scores every option and
takes the right one's index as the label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixma.data.annotations import QA, VideoRecord
from mixma.data.readers._common import (
    Issues,
    JsonFile,
    VideoPath,
    csv_rows,
    find_file,
    first_existing,
    nothing_read,
)
from mixma.errors import AnnotationError

# NExT-QA's question types (Xiao et al. 2021): causal, temporal, descriptive groups. Its own
# evaluation counts TP (previous) with TN (next) as one group.
NEXTQA_TYPES = {
    "CW": "causal why", "CH": "causal how",
    "TN": "temporal next", "TP": "temporal previous", "TC": "temporal current",
    "DC": "descriptive count", "DL": "descriptive location", "DO": "descriptive other",
}
NEXTQA_OPTIONS = ("a0", "a1", "a2", "a3", "a4")
_NEXTQA_COLUMNS = ("video", "question", "answer", "qid", *NEXTQA_OPTIONS)
_NEXTQA_MAP = "map_vid_vidorID.json"


def _cell(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{name}' is empty")
    return value.strip()


def _count(row: dict[str, Any], name: str) -> int | None:
    """An optional non-negative integer cell (frame_count, width, height)."""
    value = (row.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"'{name}' must be a non-negative integer, got {value!r}")
    return int(value)


def _nextqa_question(row: dict[str, Any]) -> tuple[str, QA]:
    """One CSV row as `(video id, QA)`.

    Raises:
        ValueError: an empty cell, or an answer that is not the index 0-4 of an option.
    """
    video = _cell(row, "video")
    options = [_cell(row, name) for name in NEXTQA_OPTIONS]
    answer = _cell(row, "answer")
    if not (answer.isdigit() and int(answer) < len(options)):
        raise ValueError(f"'answer' must be the index 0-{len(options) - 1} of the right option, got {answer!r}")
    kind = (row.get("type") or "").strip() or None
    qa = QA(_cell(row, "question"), options[int(answer)], kind, options=options, id=f"{video}_{_cell(row, 'qid')}")
    return video, qa


def read_nextqa_map(path: Path, issues: Issues) -> dict[str, str]:
    """NExT-QA's `map_vid_vidorID.json`: video id -> its path in the VidOR layout ("1001/5000000001").

    Args:
        path: the file.
        issues: where malformed entries go.

    Returns:
        The mapping.

    Raises:
        AnnotationError: the file is missing, not JSON, not an object, or (without an error
            list) an entry is not a non-empty string.
    """
    jf = JsonFile(path)
    if jf.kind() != "object":
        raise AnnotationError(path, "expected a JSON object of video id -> 'folder/video id'")
    mapping: dict[str, str] = {}
    for entry in jf.entries(issues=issues):
        if isinstance(entry.value, str) and entry.value.strip():
            mapping[str(entry.key)] = entry.value.strip().removesuffix(".mp4")
        else:
            issues.report(path, f"{entry.label}: expected a path such as '1001/5000000001', got {entry.value!r}", jf.line(entry.offset))
    return mapping


def read_nextqa(
    root: Path,
    split: str,
    *,
    errors: list[AnnotationError] | None = None,
    mapping: bool | None = None,
    video_path: str = "videos/{video}.mp4",
) -> list[VideoRecord]:
    """NExT-QA (Xiao et al. 2021) multiple-choice QA, one record per video with all its questions.

    Files under `root` (or `root/nextqa`, `root/dataset/nextqa`, as the official repository
    unpacks them): `{split}.csv` with the columns `video, frame_count, width, height, question,
    answer, qid, type, a0, a1, a2, a3, a4`, where `answer` is the index 0-4 of the right option;
    and, optionally, `map_vid_vidorID.json` beside it (or in `root`), which maps a video id to
    its place in the VidOR video release, "<folder>/<video id>".

    Fields: `id` = the video id ("5000000001"); `video` = `video_path` with `{video}` the mapped
    path when the map is used ("1001/5000000001"), else the video id (default
    "videos/{video}.mp4"; the NExT-QA release unpacks to `NExTVideo/<folder>/<id>.mp4`, so set
    `video_path="NExTVideo/{video}.mp4"` with the map); `qa[i]` = `QA(question, answer =
    options[answer index], type, options = [a0, ..., a4] in order, id = "<video>_<qid>")` as
    NExT-QA's evaluation names questions; `type` is NExT-QA's code (`NEXTQA_TYPES`: CW, CH,
    TN, TP, TC, DC, DL, DO); `meta` = `{frame_count, width, height}`.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad rows here and skip them; None raises the first.
        mapping: use `map_vid_vidorID.json`: None uses it when present, True requires it,
            False names videos by their id.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        One record per video, in the order the videos first appear.

    Raises:
        AnnotationError: a missing file, a CSV without the columns above or without rows, no
            usable row, or (without `errors`) a bad row: an empty cell, an answer that is not
            an index 0-4, a repeated question id, a video absent from the map.
    """
    template, issues = VideoPath(video_path), Issues(errors)
    path = find_file(root, f"{split}.csv", f"nextqa/{split}.csv", f"dataset/nextqa/{split}.csv")
    table = _nextqa_table(root, path.parent, mapping, issues)
    videos: dict[str, tuple[str, list[QA], dict[str, Any]]] = {}
    seen: set[str] = set()
    for line, row in csv_rows(path, _NEXTQA_COLUMNS)[1]:
        try:
            vid, qa = _nextqa_question(row)
            if qa.id in seen:
                raise ValueError(f"question {qa.id!r} appears twice")
            if table is not None and vid not in table:
                raise ValueError(f"video {vid} is not in {_NEXTQA_MAP}")
            meta = {name: _count(row, name) for name in ("frame_count", "width", "height")}
        except ValueError as exc:
            issues.report(path, str(exc), line)
            continue
        seen.add(qa.id)
        name = table[vid] if table is not None else vid
        videos.setdefault(vid, (name, [], meta))[1].append(qa)
    if not videos:
        raise nothing_read(path, issues, "no usable question")
    return [VideoRecord(vid, template(name, vid), split, qa=qa, meta=meta) for vid, (name, qa, meta) in videos.items()]


def _nextqa_table(root: Path, folder: Path, mapping: bool | None, issues: Issues) -> dict[str, str] | None:
    """The video map to use, if any (see `read_nextqa`'s `mapping`)."""
    if mapping is False:
        return None
    path = first_existing(folder, _NEXTQA_MAP) or first_existing(root, _NEXTQA_MAP)
    if path is None:
        if mapping:
            find_file(folder, _NEXTQA_MAP)  # raises "no such file"
        return None
    return read_nextqa_map(path, issues)
