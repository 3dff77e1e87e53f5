"""Open-ended video QA: MSRVTT-QA, MSVD-QA, ActivityNet-QA.

Each reader returns one record per video holding all of that video's QA pairs (question ids kept
in `QA.id`), in the order the videos first appear in the file. Two layouts are accepted, found by
file name under the dataset root:

- MA-LMM / LAVIS: `annotation/qa_{split}.json` or `qa_{split}.json`, a dict keyed by question id
  (or a list) of `{question, answer, question_id, video, answer_type, frame_length}`; `video` is
  already the clip's name and `frame_length` counts the frames MA-LMM extracted at 10 fps.
- the original releases: Xu et al.'s `{split}_qa.json` lists of `{question, answer, id,
  video_id}` for MSRVTT-QA / MSVD-QA, and ActivityNet-QA's `{split}_q.json` + `{split}_a.json`
  joined by `question_id`.

Text is kept as written (stripped of surrounding spaces); normalisation belongs to the metrics.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from mixma.data.annotations import QA, VideoRecord
from mixma.data.readers._common import (
    Issues,
    JsonFile,
    VideoPath,
    count_field,
    find_file,
    first_existing,
    label_field,
    nothing_read,
    object_entries,
    read_text,
    require_object,
    strip_video_extension,
    text_field,
    youtube_id,
)
from mixma.errors import AnnotationError

# Xu et al. (2017) type MSRVTT-QA / MSVD-QA questions by their first word.
QUESTION_WORDS = ("what", "who", "how", "when", "where")
# ActivityNet-QA's integer `type` (Yu et al. 2019): 0-2 question types, 3-8 answer types of free questions.
ACTIVITYNET_QA_TYPES = ("motion", "spatial", "temporal", "yes_no", "color", "object", "location", "number", "other")


def question_type(question: str) -> str:
    """The question's first word if it is one of `QUESTION_WORDS`, else "other"."""
    words = question.lower().split()
    return words[0] if words and words[0] in QUESTION_WORDS else "other"


# A QA item to read: (dict key or list index, the decoded value, its line number on demand).
_Item = tuple[str | int, Any, Callable[[], int]]


class _VideoGroups:
    """QA pairs gathered per video, in first-seen order."""

    def __init__(self) -> None:
        self.videos: dict[str, tuple[str, list[QA], dict[str, Any]]] = {}

    def add(self, record_id: str, video: str, qa: QA, meta: dict[str, Any]) -> None:
        if record_id not in self.videos:
            self.videos[record_id] = (video, [], meta)
        self.videos[record_id][1].append(qa)

    def records(self, split: str, video_path: VideoPath) -> list[VideoRecord]:
        return [
            VideoRecord(id=rid, video=video_path(video, rid), split=split, qa=qa, meta=meta)
            for rid, (video, qa, meta) in self.videos.items()
        ]


def _question_id(item: dict, fallback: str | int) -> str | None:
    for name in ("question_id", "id"):
        if name in item:
            value = item[name]
            if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
                raise ValueError(f"'{name}' must be a string or an integer, got {value!r}")
            return str(value)
    return fallback if isinstance(fallback, str) else None  # a dict's key is the question id


def _video_meta(item: dict) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    frames = count_field(item, "frame_length")
    if frames is not None:
        meta["frame_length"] = frames
    category = item.get("category_id")  # MSRVTT-QA (Xu): the video's MSRVTT category
    if isinstance(category, int) and not isinstance(category, bool):
        meta["category"] = category
    return meta


def _read_pairs(
    path: Path,
    items: list[_Item],
    issues: Issues,
    video_of: Callable[[dict], tuple[str, str]],
    type_of: Callable[[dict, str], str | None],
) -> _VideoGroups:
    """Turn QA items into per-video groups, reporting bad ones."""
    groups = _VideoGroups()
    seen: set[str] = set()
    for key, value, line in items:
        try:
            item = require_object(value)
            question = text_field(item, "question")
            answer = label_field(item, "answer")
            qid = _question_id(item, key)
            if qid is not None and qid in seen:
                raise ValueError(f"duplicate question id {qid!r}")
            record_id, video = video_of(item)
            qa = QA(question, answer, type_of(item, question), id=qid)
            meta = _video_meta(item)
        except ValueError as exc:
            where = f"entry {key!r}" if isinstance(key, str) else f"item {key}"
            issues.report(path, f"{where}: {exc}", line())
            continue
        if qid is not None:
            seen.add(qid)
        groups.add(record_id, video, qa, meta)
    if not groups.videos:
        raise nothing_read(path, issues, "no usable QA entry")
    return groups


def _json_items(jf: JsonFile, issues: Issues) -> list[_Item]:
    return [(e.key, e.value, partial(jf.line, e.offset)) for e in object_entries(jf, issues, "QA entries")]


def _named_type(item: dict, question: str) -> str:
    value = item.get("answer_type")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return question_type(question)


def _numbered_video(item: dict, prefix: str, lookup: Callable[[str], str] | None = None) -> tuple[str, str]:
    """`video` (a clip name) or `video_id` (an integer N naming `prefix`N)."""
    if "video" in item:
        name = strip_video_extension(text_field(item, "video"))
        return name, name
    value = item.get("video_id")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise ValueError("needs 'video' (a clip name) or 'video_id'")
    name = f"{prefix}{value}" if isinstance(value, int) else strip_video_extension(value.strip())
    if lookup is not None and isinstance(value, int):
        name = lookup(name)
    return name, name


def read_msrvtt_qa(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, video_path: str = "videos/{video}.mp4"
) -> list[VideoRecord]:
    """MSRVTT-QA (Xu et al. 2017), one record per video with all its QA pairs.

    Files under `root`: `annotation/qa_{split}.json` or `qa_{split}.json` (MA-LMM/LAVIS), else
    `{split}_qa.json` (original list of `{question, answer, id, video_id, category_id}`).

    Fields: `id` = `video` name, e.g. "video7010" (original `video_id` 7010 becomes "video7010");
    `video` = `video_path` with `{video}` filled in (default "videos/{video}.mp4"; MA-LMM's 10 fps
    frame folders: "frames/{video}"); `qa` = `QA(question, answer, type, id=question id)` where
    `type` is MA-LMM's `answer_type`, or the question's first word (what/who/how/when/where,
    else "other") as Xu et al. define the types; `meta.frame_length` (MA-LMM) and
    `meta.category` (original `category_id`) when given.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        One record per video, in the order the videos first appear.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout (see
            `object_entries`), no usable entry, or (without `errors`) a bad entry.
    """
    template = VideoPath(video_path)
    path = find_file(root, f"annotation/qa_{split}.json", f"qa_{split}.json", f"{split}_qa.json")
    issues = Issues(errors)
    items = _json_items(JsonFile(path), issues)
    groups = _read_pairs(path, items, issues, lambda item: _numbered_video(item, "video"), _named_type)
    return groups.records(split, template)


def read_youtube_mapping(path: Path, issues: Issues) -> dict[str, str]:
    """MSVD's `youtube_mapping.txt`: lines "<clip name> vid<N>" -> {"vid<N>": clip name}."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not re.fullmatch(r"vid\d+", parts[1]):
            issues.report(path, f"expected '<clip name> vid<N>', got {line.strip()!r}", number)
        elif parts[1] in mapping:
            issues.report(path, f"{parts[1]} is mapped twice", number)
        else:
            mapping[parts[1]] = parts[0]
    return mapping


def read_msvd_qa(
    root: Path,
    split: str,
    *,
    errors: list[AnnotationError] | None = None,
    mapping: bool | None = None,
    video_path: str = "YouTubeClips/{video}.avi",
) -> list[VideoRecord]:
    """MSVD-QA (Xu et al. 2017), one record per video with all its QA pairs.

    Files under `root`: `annotation/qa_{split}.json` or `qa_{split}.json` (MA-LMM/LAVIS; `video`
    is the clip name), else `{split}_qa.json` (original list of `{question, answer, id,
    video_id}`, where `video_id` N means "vidN") with `youtube_mapping.txt` (lines
    "<clip name> vid<N>") to name the clips as the MSVD videos are named
    (`YouTubeClips/<clip name>.avi`).

    Fields: `id` = the clip name, e.g. "-4wsuPCjDBc_5_15" ("vidN" when no mapping is used);
    `video` = `video_path` (default "YouTubeClips/{video}.avi"); `qa` and `meta` as for
    MSRVTT-QA.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        mapping: use `youtube_mapping.txt` for original `video_id`s: None uses it when present,
            True requires it, False names videos "vidN".
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        One record per video, in the order the videos first appear.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout, no usable
            entry, or (without `errors`) a bad entry,
            including a `video_id` absent from the mapping.
    """
    template = VideoPath(video_path)
    issues = Issues(errors)
    path = find_file(root, f"annotation/qa_{split}.json", f"qa_{split}.json", f"{split}_qa.json")
    table: dict[str, str] | None = None
    if mapping or (mapping is None and (root / "youtube_mapping.txt").is_file()):
        mapping_file = find_file(root, "youtube_mapping.txt")
        table = read_youtube_mapping(mapping_file, issues)

    def clip(vid: str) -> str:
        if vid not in table:
            raise ValueError(f"{vid} is not in {mapping_file.name}")
        return table[vid]

    lookup = clip if table is not None else None
    items = _json_items(JsonFile(path), issues)
    groups = _read_pairs(path, items, issues, lambda item: _numbered_video(item, "vid", lookup), _named_type)
    return groups.records(split, template)


def _activitynet_type(item: dict, question: str) -> str | None:
    value = item.get("answer_type", item.get("type"))
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(ACTIVITYNET_QA_TYPES):
            raise ValueError(f"type must be 0-{len(ACTIVITYNET_QA_TYPES) - 1}, got {value}")
        return ACTIVITYNET_QA_TYPES[value]
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"type must be an integer 0-8 or a name, got {value!r}")


def _activitynet_video(item: dict) -> tuple[str, str]:
    name = strip_video_extension(text_field(item, "video"))
    return youtube_id(name), name


def _joined_activitynet_items(q_path: Path, a_path: Path, issues: Issues) -> list[_Item]:
    """ActivityNet-QA's question and answer lists joined by `question_id` into MA-LMM-like items."""
    a_file = JsonFile(a_path)
    answers: dict[str, tuple[dict, int]] = {}  # question id -> (answer item, offset in the file)
    for entry in object_entries(a_file, issues, "answer entries"):
        try:
            item = require_object(entry.value)
            qid = _question_id(item, entry.key)
            if qid is None:
                raise ValueError("missing 'question_id'")
            if qid in answers:
                raise ValueError(f"duplicate question id {qid!r}")
        except ValueError as exc:
            issues.report(a_path, f"{entry.label}: {exc}", a_file.line(entry.offset))
            continue
        answers[qid] = (item, entry.offset)
    q_file = JsonFile(q_path)
    items: list[_Item] = []
    for entry in object_entries(q_file, issues, "question entries"):
        line = partial(q_file.line, entry.offset)
        value = entry.value
        if isinstance(value, dict):
            qid = value.get("question_id")
            answer = answers.pop(str(qid), None) if isinstance(qid, (str, int)) else None
            if answer is None:
                issues.report(q_path, f"{entry.label}: no answer with question id {qid!r} in {a_path.name}", line())
                continue
            value = {**value, "answer": answer[0].get("answer"), "answer_type": answer[0].get("type")}
            if "video_name" in value:
                value["video"] = value.pop("video_name")
        items.append((entry.key, value, line))
    for qid, (_, offset) in answers.items():
        issues.report(a_path, f"answer for question id {qid!r} has no question in {q_path.name}", a_file.line(offset))
    return items


def read_activitynet_qa(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, video_path: str = "videos/{video}.mp4"
) -> list[VideoRecord]:
    """ActivityNet-QA (Yu et al. 2019), one record per video with all its QA pairs.

    Files under `root`: `annotation/qa_{split}.json` or `qa_{split}.json` (MA-LMM: `video` is
    the YouTube id), else the original `{split}_q.json` (`{video_name, question, question_id}`)
    and `{split}_a.json` (`{answer, type, question_id}`), in `root` or `root/dataset`, joined by
    `question_id`.

    Fields: `id` = the YouTube id (a "v_" prefix is dropped, so both layouts give the same ids);
    `video` = `video_path` with `{video}` the name as the file gives it (default
    "videos/{video}.mp4"); `qa[i].type` = the integer type named by `ACTIVITYNET_QA_TYPES`
    (0 motion, 1 spatial, 2 temporal, 3 yes_no, 4 color, 5 object, 6 location, 7 number,
    8 other); `meta.frame_length` (MA-LMM) when given.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        One record per video, in the order the videos first appear.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout, no usable
            entry, or (without `errors`) a bad entry, such
            as a question without an answer or an answer without a question.
    """
    template = VideoPath(video_path)
    issues = Issues(errors)
    malmm = first_existing(root, f"annotation/qa_{split}.json", f"qa_{split}.json")
    if malmm is not None:
        path, items = malmm, _json_items(JsonFile(malmm), issues)
    else:
        folder = root / "dataset" if (root / "dataset" / f"{split}_q.json").is_file() else root
        try:
            path = find_file(folder, f"{split}_q.json")
        except AnnotationError:
            raise AnnotationError(
                root / f"qa_{split}.json",
                f"no such file (looked for annotation/qa_{split}.json, qa_{split}.json, "
                f"{split}_q.json + {split}_a.json and dataset/{split}_q.json in {root})",
            ) from None
        items = _joined_activitynet_items(path, find_file(folder, f"{split}_a.json"), issues)
    groups = _read_pairs(path, items, issues, _activitynet_video, _activitynet_type)
    return groups.records(split, template)
