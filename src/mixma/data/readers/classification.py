"""Long-video classification: LVU, Breakfast, COIN (MA-LMM's annotation files).

The label is a class name (`VideoRecord.label`), as MA-LMM treats classification as generating
that name. Labels are kept as written; an integer class is kept as its decimal text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixma.data.annotations import VideoRecord
from mixma.data.readers._common import (
    Entry,
    Issues,
    JsonFile,
    VideoPath,
    check_objects,
    count_field,
    find_file,
    label_field,
    nothing_read,
    object_entries,
    require_object,
    seconds_field,
    string_set,
)
from mixma.errors import AnnotationError

LVU_TASKS = ("relationship", "way_speaking", "scene", "director", "genre", "writer", "year")
# Ids MA-LMM's dataset classes skip (hard-coded there, reason not given); pass them as `exclude`
# to reproduce its numbers.
MALMM_BREAKFAST_EXCLUDED = ("P28-cam01-P28_cereals", "P27-stereo-P27_milk_ch0", "P28-cam02-P28_cereals")
MALMM_COIN_EXCLUDED = ("AfiVmAjfTNs", "cjwtcDKTQM8")
# COIN's own files say "training"/"testing"; MA-LMM's compare `subset` with the split name.
_COIN_SUBSETS = {"train": ("train", "training"), "val": ("val", "validation"), "test": ("test", "testing")}


def _report(issues: Issues, jf: JsonFile, entry: Entry, exc: ValueError) -> None:
    issues.report(jf.path, f"{entry.label}: {exc}", jf.line(entry.offset))


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def lvu_windows(duration: float, window: float, stride: float) -> list[tuple[float, float]]:
    """MA-LMM's LVU windows: starts 0, stride, 2*stride, ... while a whole window fits.

    A video shorter than `window` gets one window covering all of it. Each window is
    `(start, min(start + window, duration))`. (MA-LMM's loader ends a window at
    `start + window - 1`; we keep the full `window` seconds.)
    """
    windows = [(0.0, min(window, duration))]
    k = 1
    while k * stride + window <= duration:
        windows.append((k * stride, k * stride + window))
        k += 1
    return windows


def read_lvu(
    root: Path,
    split: str,
    *,
    task: str,
    window: float | None = None,
    stride: float = 20.0,
    errors: list[AnnotationError] | None = None,
    video_path: str = "videos/{video}.mp4",
) -> list[VideoRecord]:
    """LVU (Wu & Krähenbühl 2021) as MA-LMM ships it, for one of its seven tasks.

    File under `root`: `annotation/{split}.json` or `{split}.json`, a dict keyed by YouTube id
    of `{subset, duration, num_frames, <task>: label, <task>_answer: "(a)"...}`. A video has
    labels for some tasks only; videos without a label for `task` are left out.

    Fields: `id` = the YouTube id, or "<id>_<start>" per window (MA-LMM's naming); `video` =
    `video_path` (default "videos/{video}.mp4"); `label` = the `<task>` value (e.g. "comedy",
    year classes "0".."8"); `start`/`end` = the window in seconds (None without windows);
    `meta` = `{task, duration, num_frames}`.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        task: one of `LVU_TASKS`.
        window: if given, one record per window of this many seconds (MA-LMM: 100), every
            `stride` seconds (MA-LMM: 20), as `lvu_windows` describes; needs `duration`.
        stride: seconds between window starts.
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        The records, in file order.

    Raises:
        ValueError: an unknown task, or a non-positive window or stride.
        AnnotationError: a missing file, invalid JSON, a file in another layout (see
            `object_entries`), no usable entry (no video labelled for `task`), or (without `errors`) a bad entry.
    """
    if task not in LVU_TASKS:
        raise ValueError(f"unknown LVU task {task!r}; choose one of {', '.join(LVU_TASKS)}")
    if window is not None and (window <= 0 or stride <= 0):
        raise ValueError("LVU window and stride must be positive seconds")
    template, issues = VideoPath(video_path), Issues(errors)
    jf = JsonFile(find_file(root, f"annotation/{split}.json", f"{split}.json"))
    records: list[VideoRecord] = []
    for entry in object_entries(jf, issues, "videos", keyed_by="YouTube id"):
        try:
            labelled = _lvu_video(require_object(entry.value), task, window)
        except ValueError as exc:
            _report(issues, jf, entry, exc)
            continue
        if labelled is None:
            continue
        label, duration, meta = labelled
        vid = str(entry.key)
        if window is None:
            records.append(VideoRecord(vid, template(vid, vid), split, label=label, meta=meta))
            continue
        for start, end in lvu_windows(duration, window, stride):
            rid = f"{vid}_{_format_seconds(start)}"
            window_record = VideoRecord(rid, template(vid, rid), split, start=start, end=end, label=label, meta=dict(meta))
            records.append(window_record)
    if not records:
        raise nothing_read(jf.path, issues, f"no video has a '{task}' label")
    return records


def _lvu_video(item: dict, task: str, window: float | None) -> tuple[str, float | None, dict[str, Any]] | None:
    """An LVU video's `(label, duration, meta)` for `task`, or None when it has no such label.

    Raises:
        ValueError: a malformed label, duration or frame count.
    """
    if task not in item:
        return None
    label = label_field(item, task)
    duration = seconds_field(item, "duration", required=window is not None)
    meta: dict[str, Any] = {"task": task, "duration": duration, "num_frames": count_field(item, "num_frames")}
    if window is not None and duration == 0:
        raise ValueError("'duration' is 0, so there is no window")
    return label, duration, meta


def read_breakfast(
    root: Path,
    split: str,
    *,
    exclude: Any = (),
    errors: list[AnnotationError] | None = None,
    video_path: str = "videos/{video}.mp4",
) -> list[VideoRecord]:
    """Breakfast (Kuehne et al. 2014): 10 breakfast activities, as MA-LMM ships it.

    Files under `root`: `annotation/{split}.json` or `{split}.json`, a dict keyed by video id
    (e.g. "P03-cam01-P03_cereals") of `{duration, frame_length, class_name, class_label}`.
    MA-LMM has train.json and val.json and evaluates on val, so split "test" reads `test.json`
    when present and otherwise `val.json`.

    MA-LMM skips three videos (`MALMM_BREAKFAST_EXCLUDED`); nothing is skipped unless the caller
    passes ids in `exclude`.

    Fields: `id` = the video id; `video` = `video_path` (default "videos/{video}.mp4");
    `label` = `class_name` (cereal, coffee, fried egg, juice, milk, pancake, salat, sandwich,
    scrambled egg, tea); `meta` = `{class_label, duration, frame_length}`.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        exclude: video ids to leave out (a list, or one comma-separated string).
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        The records, in file order.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout (see
            `object_entries`), no usable entry, or (without `errors`) a bad entry.
    """
    excluded = string_set(exclude, "exclude")
    template, issues = VideoPath(video_path), Issues(errors)
    names = [f"annotation/{split}.json", f"{split}.json"]
    if split == "test":
        names += ["annotation/val.json", "val.json"]
    jf = JsonFile(find_file(root, *names))
    records: list[VideoRecord] = []
    for entry in object_entries(jf, issues, "videos", keyed_by="video id"):
        vid = str(entry.key)
        if vid in excluded:
            continue
        try:
            item = require_object(entry.value)
            label = label_field(item, "class_name")
            meta = {
                "class_label": count_field(item, "class_label"),
                "duration": seconds_field(item, "duration", required=False),
                "frame_length": count_field(item, "frame_length"),
            }
        except ValueError as exc:
            _report(issues, jf, entry, exc)
            continue
        records.append(VideoRecord(vid, template(vid, vid), split, label=label, meta=meta))
    if not records:
        raise nothing_read(jf.path, issues, "no usable video" + (" (every other is excluded)" if excluded else ""))
    return records


def read_coin(
    root: Path,
    split: str,
    *,
    subset: str | None = None,
    exclude: Any = (),
    require_frames: bool = False,
    errors: list[AnnotationError] | None = None,
    video_path: str = "videos/{video}.mp4",
) -> list[VideoRecord]:
    """COIN (Tang et al. 2019): 180 tasks of instructional videos.

    File under `root`: `annotation/COIN.json` or `COIN.json`, either MA-LMM's dict keyed by
    YouTube id of `{subset, duration, target, num_frames_actual}` or COIN's own
    `{"database": {id: {subset, class, recipe_type, ...}}}`. Videos are kept whose `subset` is
    the split (train: "train"/"training", val: "val"/"validation", test: "test"/"testing"), or
    exactly `subset` when given.

    MA-LMM also skips two videos (`MALMM_COIN_EXCLUDED`) and every video without
    `num_frames_actual` (not downloaded); pass `exclude` and `require_frames=True` to do the same.

    Fields: `id` = the YouTube id; `video` = `video_path` (default "videos/{video}.mp4");
    `label` = `target` (MA-LMM's task name) or else `class`; `meta` = `{subset, duration,
    num_frames, recipe_type}` as given.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        subset: the `subset` value to keep, instead of the split's usual names.
        exclude: video ids to leave out (a list, or one comma-separated string).
        require_frames: leave out videos without `num_frames_actual`.
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        The records, in file order.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout (see
            `object_entries`), no usable entry (no video of the split's subset), or (without `errors`) a bad entry.
    """
    excluded = string_set(exclude, "exclude")
    wanted = (subset,) if subset is not None else _COIN_SUBSETS[split]
    template, issues = VideoPath(video_path), Issues(errors)
    jf = JsonFile(find_file(root, "annotation/COIN.json", "COIN.json"))
    records: list[VideoRecord] = []
    subsets: set[str] = set()  # what the file has, to name when nothing matches
    for entry in _coin_videos(jf, issues):
        vid = str(entry.key)
        if vid in excluded:
            continue
        try:
            item = require_object(entry.value)
            subsets.add(str(item.get("subset")))
            if item.get("subset") not in wanted:
                continue
            if require_frames and "num_frames_actual" not in item:
                continue
            label, meta = _coin_video(item)
        except ValueError as exc:
            _report(issues, jf, entry, exc)
            continue
        records.append(VideoRecord(vid, template(vid, vid), split, label=label, meta=meta))
    if not records:
        found = ", ".join(repr(s) for s in sorted(subsets)) or "none"
        reason = f"no usable video has \"subset\" {' or '.join(map(repr, wanted))} (subsets in the file: {found})"
        raise nothing_read(jf.path, issues, reason)
    return records


def _coin_videos(jf: JsonFile, issues: Issues) -> list[Entry]:
    """The video entries of either COIN layout (COIN's own nests them under 'database').

    Raises:
        AnnotationError: the file is in neither layout.
    """
    if jf.kind() == "list":
        raise AnnotationError(jf.path, "expected a JSON object keyed by YouTube id, got a list")
    entries = jf.entries(issues=issues)
    database = next((e for e in entries if e.key == "database"), None)
    if database is None:
        return check_objects(jf, entries, "videos")
    if not isinstance(database.value, dict):
        raise AnnotationError(jf.path, "'database' must be an object keyed by YouTube id", line=jf.line(database.offset))
    return check_objects(jf, jf.entries(database.offset, issues), "videos")


def _coin_video(item: dict) -> tuple[str, dict[str, Any]]:
    """A COIN video's `(label, meta)` (raises ValueError when malformed)."""
    label = label_field(item, "target" if "target" in item else "class")
    meta = {
        "subset": item["subset"],
        "duration": seconds_field(item, "duration", required=False),
        "num_frames": count_field(item, "num_frames_actual"),
    }
    if "recipe_type" in item:
        meta["recipe_type"] = item["recipe_type"]
    return label, meta
