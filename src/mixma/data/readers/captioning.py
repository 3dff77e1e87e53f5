"""Video captioning: MSRVTT and MSVD captions, YouCook2 segments.

MA-LMM ships one JSON entry per caption; these readers gather the captions of a video (or
segment) into one record, whose `captions` are the references a generated caption is scored
against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixma.data.annotations import VideoRecord
from mixma.data.readers._common import (
    Issues,
    JsonFile,
    VideoPath,
    count_field,
    find_file,
    first_existing,
    nothing_read,
    object_entries,
    require_object,
    seconds_field,
    strip_video_extension,
    text_field,
)
from mixma.errors import AnnotationError

# YouCook2's own annotation file names its splits "training"/"validation".
_YOUCOOK2_SUBSETS = {"train": "training", "val": "validation"}


def _read_caption_entries(
    root: Path, split: str, errors: list[AnnotationError] | None, video_path: str
) -> list[VideoRecord]:
    template, issues = VideoPath(video_path), Issues(errors)
    jf = JsonFile(find_file(root, f"annotation/cap_{split}.json", f"cap_{split}.json"))
    videos: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for entry in object_entries(jf, issues, "caption entries"):
        try:
            item = require_object(entry.value)
            caption = text_field(item, "caption")
            video = strip_video_extension(text_field(item, "video" if "video" in item else "image_id"))
            frames = count_field(item, "frame_length")
        except ValueError as exc:
            issues.report(jf.path, f"{entry.label}: {exc}", jf.line(entry.offset))
            continue
        captions, meta = videos.setdefault(video, ([], {}))
        captions.append(caption)
        if frames is not None:
            meta.setdefault("frame_length", frames)
    if not videos:
        raise nothing_read(jf.path, issues, "no usable caption entry")
    return [
        VideoRecord(video, template(video, video), split, captions=captions, meta=meta)
        for video, (captions, meta) in videos.items()
    ]


def read_msrvtt_captions(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, video_path: str = "videos/{video}.mp4"
) -> list[VideoRecord]:
    """MSRVTT captioning (Xu et al. 2016) as MA-LMM ships it: one record per video.

    File under `root`: `annotation/cap_{split}.json` or `cap_{split}.json`, a dict (or list) with
    one entry per caption: `{image_id: "video6513.mp4", caption, id, video: "video6513",
    frame_length}`.

    Fields: `id` = the video name ("video6513"); `video` = `video_path` (default
    "videos/{video}.mp4"; MA-LMM frame folders: "frames/{video}"); `captions` = its captions in
    file order (about 20); `meta.frame_length` when given.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        The records, in file order.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout (see
            `object_entries`), no usable entry, or (without `errors`) a bad entry.
    """
    return _read_caption_entries(root, split, errors, video_path)


def read_msvd_captions(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, video_path: str = "YouTubeClips/{video}.avi"
) -> list[VideoRecord]:
    """MSVD captioning (Chen & Dolan 2011) as MA-LMM ships it: one record per clip.

    Same layout and fields as `read_msrvtt_captions`; `id` is the clip name
    ("bQJQGoJF7_k_162_169") and the default `video_path` is "YouTubeClips/{video}.avi".

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        The records, in file order.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout (see
            `object_entries`), no usable entry, or (without `errors`) a bad entry.
    """
    return _read_caption_entries(root, split, errors, video_path)


def _segment_id(video: str, start: float, end: float) -> str:
    if float(start).is_integer() and float(end).is_integer():
        return f"{video}_{int(start):04d}_{int(end):04d}"  # MA-LMM's segment names
    return f"{video}_{start:g}_{end:g}"


def _segment(start: float, end: float, duration: float | None) -> tuple[float, float]:
    if duration is not None and end > duration:
        end = duration  # annotated ends may overshoot the video by a little; MA-LMM clips them too
    if end <= start:
        raise ValueError(f"the segment ends ({end:g} s) before it starts ({start:g} s)")
    return start, end


def read_youcook2(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, video_path: str = "videos/{video}.mp4"
) -> list[VideoRecord]:
    """YouCook2 (Zhou et al. 2018) segment captioning: one record per annotated segment.

    Files under `root`: `annotation/cap_{split}.json` or `cap_{split}.json` (MA-LMM: a dict keyed
    by segment of `{video, segment: "<vid>_<start4>_<end4>", id, duration, start_time, end_time,
    frame_length, recipe, caption}`), else YouCook2's own
    `youcookii_annotations_trainval.json` (`{"database": {vid: {duration, subset, recipe_type,
    annotations: [{segment: [start, end], id, sentence}]}}}`; splits train and val).

    Fields: `id` = "<vid>_<start>_<end>" with 4-digit seconds (MA-LMM's segment name, the same
    from both layouts); `video` = `video_path` of the whole YouTube video (default
    "videos/{video}.mp4"); `start`/`end` = the segment in seconds (an end past `duration` is
    clipped to it); `captions` = `[caption]` (empty for MA-LMM's test split, whose captions are
    blank); `meta` = `{recipe (MA-LMM) or recipe_type (YouCook2), duration, frame_length}`.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        The records, in file order.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout (see
            `object_entries`), no usable entry (no video of the split's subset), or (without `errors`) a bad entry.
    """
    template, issues = VideoPath(video_path), Issues(errors)
    path = first_existing(root, f"annotation/cap_{split}.json", f"cap_{split}.json")
    if path is None and split in _YOUCOOK2_SUBSETS:
        path = first_existing(root, "youcookii_annotations_trainval.json")
        if path is not None:
            return _read_youcook2_original(JsonFile(path), split, issues, template)
    if path is None:  # raises "no such file", naming what was looked for
        original = ["youcookii_annotations_trainval.json"] if split in _YOUCOOK2_SUBSETS else []
        path = find_file(root, f"annotation/cap_{split}.json", f"cap_{split}.json", *original)
    return _read_youcook2_malmm(JsonFile(path), split, issues, template)


def _malmm_segment(item: dict, template: VideoPath, split: str) -> VideoRecord:
    """One of MA-LMM's YouCook2 entries as a record (raises ValueError when malformed)."""
    video = strip_video_extension(text_field(item, "video"))
    duration = seconds_field(item, "duration", required=False)
    start, end = _segment(seconds_field(item, "start_time"), seconds_field(item, "end_time"), duration)
    caption = item.get("caption", "")
    if not isinstance(caption, str):
        raise ValueError(f"'caption' must be a string, got {caption!r}")
    rid = _segment_id(video, item["start_time"], item["end_time"])
    meta: dict[str, Any] = {"duration": duration, "frame_length": count_field(item, "frame_length")}
    if isinstance(item.get("recipe"), str):
        meta["recipe"] = item["recipe"]
    captions = [caption.strip()] if caption.strip() else []
    return VideoRecord(rid, template(video, rid), split, start=start, end=end, captions=captions, meta=meta)


def _read_youcook2_malmm(jf: JsonFile, split: str, issues: Issues, template: VideoPath) -> list[VideoRecord]:
    records: list[VideoRecord] = []
    seen: set[str] = set()
    for entry in object_entries(jf, issues, "segment entries"):
        try:
            record = _malmm_segment(require_object(entry.value), template, split)
            if record.id in seen:
                raise ValueError(f"duplicate segment {record.id!r}")
        except ValueError as exc:
            issues.report(jf.path, f"{entry.label}: {exc}", jf.line(entry.offset))
            continue
        seen.add(record.id)
        records.append(record)
    if not records:
        raise nothing_read(jf.path, issues, "no usable segment entry")
    return records


def _original_segments(video: str, item: dict, duration: float | None, seen: set[str]) -> tuple[list, list[str]]:
    """A video's annotated segments `(id, start, end, sentence)`, and the problems of those
    left out (a malformed or repeated one drops only itself).

    Raises:
        ValueError: 'annotations' is not a list.
    """
    annotations = item.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError("'annotations' must be a list")
    segments, problems = [], []
    for i, ann in enumerate(annotations):
        try:
            ann = require_object(ann)
            bounds = ann.get("segment")
            if not (isinstance(bounds, list) and len(bounds) == 2):
                raise ValueError("'segment' must be [start, end]")
            start, end = seconds_field({"start": bounds[0]}, "start"), seconds_field({"end": bounds[1]}, "end")
            rid = _segment_id(video, bounds[0], bounds[1])
            if rid in seen:
                raise ValueError(f"duplicate segment {rid!r}")
            segments.append((rid, *_segment(start, end, duration), text_field(ann, "sentence")))
            seen.add(rid)
        except ValueError as exc:
            problems.append(f"annotations[{i}]: {exc}")
    return segments, problems


def _read_youcook2_original(jf: JsonFile, split: str, issues: Issues, template: VideoPath) -> list[VideoRecord]:
    if jf.kind() != "object":
        raise AnnotationError(jf.path, "expected a JSON object with a top-level 'database' object, got a list")
    database = next((e for e in jf.entries(issues=issues) if e.key == "database"), None)
    if database is None or not isinstance(database.value, dict):
        raise AnnotationError(jf.path, "expected a top-level 'database' object")
    records: list[VideoRecord] = []
    seen: set[str] = set()
    for entry in jf.entries(database.offset, issues):
        video, line = str(entry.key), jf.line(entry.offset)
        try:
            item = require_object(entry.value)
            if item.get("subset") != _YOUCOOK2_SUBSETS[split]:
                continue
            duration = seconds_field(item, "duration", required=False)
            segments, problems = _original_segments(video, item, duration, seen)
        except ValueError as exc:
            issues.report(jf.path, f"{entry.label}: {exc}", line)
            continue
        for problem in problems:
            issues.report(jf.path, f"{entry.label}: {problem}", line)
        meta = {"duration": duration, "recipe_type": item.get("recipe_type")}
        for rid, start, end, sentence in segments:
            record = VideoRecord(rid, template(video, rid), split, start=start, end=end, captions=[sentence], meta=dict(meta))
            records.append(record)
    if not records:
        raise nothing_read(jf.path, issues, f"no video has \"subset\": {_YOUCOOK2_SUBSETS[split]!r}")
    return records
