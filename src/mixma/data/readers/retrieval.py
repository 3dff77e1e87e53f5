"""Text-video retrieval: MSRVTT (9k / 1k-A), MSVD, and paragraph retrieval on DiDeMo and
ActivityNet Captions.

Each record is a video; its `captions` are the texts that should retrieve it. For DiDeMo and
ActivityNet Captions all sentences of a video are joined, in temporal order, into one paragraph
(the paragraph-to-video protocol of CLIP4Clip and CLIP-ViP); the sentences and their times are
kept in `meta`.
"""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path
from typing import Any

from mixma.data.annotations import VideoRecord
from mixma.data.readers._common import (
    Entry,
    Issues,
    JsonFile,
    VideoPath,
    find_file,
    read_text,
    require_object,
    seconds_field,
    strip_video_extension,
    text_field,
    youtube_id,
)
from mixma.errors import AnnotationError

MSRVTT_PROTOCOLS = ("1k-A", "7k", "full")
DIDEMO_CHUNK_SECONDS = 5.0  # DiDeMo marks moments in 5-second chunks 0..5
_MSRVTT_FULL_SPLITS = {"train": "train", "val": "validate", "test": "test"}
# ActivityNet Captions: val_1 is the usual test set of paragraph retrieval; val_2 serves as val.
_ACTIVITYNET_FILES = {"train": "train.json", "val": "val_2.json", "test": "val_1.json"}


def _report(issues: Issues, jf: JsonFile, entry: Entry, exc: ValueError) -> None:
    issues.report(jf.path, f"{entry.label}: {exc}", jf.line(entry.offset))


def _nested(jf: JsonFile, top: list[Entry], name: str, issues: Issues) -> list[Entry]:
    """The entries of the top-level member `name` (a list), with their line numbers."""
    member = next((e for e in top if e.key == name), None)
    if member is None or not isinstance(member.value, list):
        raise AnnotationError(jf.path, f"expected a top-level '{name}' list")
    return jf.entries(member.offset, issues)


def _csv_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """CSV rows with the line each ends on.

    Raises:
        AnnotationError: the file is missing, not valid CSV, or lacks a required column.
    """
    reader = csv.DictReader(io.StringIO(read_text(path)))
    try:
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise AnnotationError(path, f"missing column(s) {', '.join(missing)}", line=1)
        return [(reader.line_num, row) for row in reader]  # line_num: the line the row ends on
    except csv.Error as exc:
        raise AnnotationError(path, f"not valid CSV ({exc})", line=reader.line_num) from None


def _msrvtt_sentences(jf: JsonFile, top: list[Entry], issues: Issues) -> dict[str, list[str]]:
    captions: dict[str, list[str]] = {}
    for entry in _nested(jf, top, "sentences", issues):
        try:
            item = require_object(entry.value)
            captions.setdefault(text_field(item, "video_id"), []).append(text_field(item, "caption"))
        except ValueError as exc:
            _report(issues, jf, entry, exc)
    return captions


def _msrvtt_videos(jf: JsonFile, top: list[Entry], issues: Issues) -> dict[str, tuple[dict[str, Any], Entry]]:
    videos: dict[str, tuple[dict[str, Any], Entry]] = {}
    for entry in _nested(jf, top, "videos", issues):
        try:
            item = require_object(entry.value)
            vid = text_field(item, "video_id")
            meta = {
                "category": item.get("category"),
                "url": item.get("url"),
                # the clip's place in its YouTube source; the clip files are already cut
                "source_start": seconds_field(item, "start time", required=False),
                "source_end": seconds_field(item, "end time", required=False),
            }
        except ValueError as exc:
            _report(issues, jf, entry, exc)
            continue
        videos[vid] = ({k: v for k, v in meta.items() if v is not None}, entry)
    return videos


def read_msrvtt_retrieval(
    root: Path,
    split: str,
    *,
    protocol: str = "1k-A",
    errors: list[AnnotationError] | None = None,
    video_path: str = "videos/{video}.mp4",
) -> list[VideoRecord]:
    """MSRVTT text-video retrieval (CLIP4Clip's files), one record per video.

    Files under `root` (or `root/msrvtt_data`): `MSRVTT_data.json` (the official
    `{"videos": [{video_id, category, url, "start time", "end time", split}], "sentences":
    [{video_id, caption, sen_id}]}`), `MSRVTT_train.9k.csv` / `MSRVTT_train.7k.csv` (column
    `video_id`) and `MSRVTT_JSFUSION_test.csv` (columns `key, vid_key, video_id, sentence`).

    Protocols: "1k-A" (default): train = the 9k videos with all their captions (about 20 each),
    test = the 1,000 JSFusion videos with the one caption each that the csv pairs with it.
    "7k": the same with the 7k training list. "full": the official split field (train 6,513 /
    validate 497 / test 2,990) with all captions. 1k-A and 7k have no val split.

    Fields: `id` = the video name ("video7010"); `video` = `video_path` (default
    "videos/{video}.mp4"); `captions`; `meta` = `{category, url, source_start, source_end}`
    from MSRVTT_data.json (source_* locate the clip in its YouTube video; the clip files are
    already cut, so `start`/`end` stay None), or `{key, vid_key}` for the JSFusion test rows.

    Args:
        root: the dataset folder.
        split: "train", "val" (full protocol only) or "test".
        protocol: one of `MSRVTT_PROTOCOLS`.
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Raises:
        ValueError: an unknown protocol, or val with 1k-A/7k.
        AnnotationError: a missing file, invalid JSON/CSV, or (without `errors`) a bad entry,
            such as a listed video without captions.
    """
    if protocol not in MSRVTT_PROTOCOLS:
        raise ValueError(f"unknown MSRVTT protocol {protocol!r}; choose one of {', '.join(MSRVTT_PROTOCOLS)}")
    if protocol != "full" and split == "val":
        raise ValueError(f"MSRVTT {protocol} has no val split: use train or test, or protocol='full'")
    template, issues = VideoPath(video_path), Issues(errors)
    folder = root / "msrvtt_data" if (root / "msrvtt_data").is_dir() else root
    if protocol != "full" and split == "test":
        path = find_file(folder, "MSRVTT_JSFUSION_test.csv")
        records, seen = [], set()
        for line, row in _csv_rows(path, ("video_id", "sentence")):
            vid, sentence = (row.get("video_id") or "").strip(), (row.get("sentence") or "").strip()
            if not vid or not sentence:
                issues.report(path, "empty video_id or sentence", line)
            elif vid in seen:
                issues.report(path, f"video {vid!r} appears twice", line)
            else:
                seen.add(vid)
                meta = {k: row[k] for k in ("key", "vid_key") if row.get(k)}
                records.append(VideoRecord(vid, template(vid, vid), split, captions=[sentence], meta=meta))
        return records
    jf = JsonFile(find_file(folder, "MSRVTT_data.json"))
    top = jf.entries(issues=issues)
    captions, videos = _msrvtt_sentences(jf, top, issues), _msrvtt_videos(jf, top, issues)
    records = []
    if protocol == "full":
        wanted = _MSRVTT_FULL_SPLITS[split]
        for vid, (meta, entry) in videos.items():
            if entry.value.get("split") != wanted:
                continue
            if vid not in captions:
                _report(issues, jf, entry, ValueError(f"video {vid!r} has no sentences"))
                continue
            records.append(VideoRecord(vid, template(vid, vid), split, captions=captions[vid], meta=meta))
        return records
    path = find_file(folder, "MSRVTT_train.9k.csv" if protocol == "1k-A" else "MSRVTT_train.7k.csv")
    seen = set()
    for line, row in _csv_rows(path, ("video_id",)):
        vid = (row.get("video_id") or "").strip()
        if not vid or vid in seen:
            issues.report(path, f"empty or repeated video_id {vid!r}", line)
        elif vid not in captions:
            issues.report(path, f"video {vid!r} has no sentences in {jf.path.name}", line)
        else:
            seen.add(vid)
            meta = videos[vid][0] if vid in videos else {}
            records.append(VideoRecord(vid, template(vid, vid), split, captions=captions[vid], meta=meta))
    return records


class _DataOnly(pickle.Unpickler):
    """Unpickles plain containers and strings only: a captions file needs no classes, and
    refusing them means a tampered file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}; expected only dicts, lists and strings")


def _msvd_captions(path: Path) -> dict[str, list[str]]:
    try:
        data = _DataOnly(io.BytesIO(path.read_bytes()), encoding="utf-8").load()
    except FileNotFoundError:
        raise AnnotationError(path, "no such file") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, f"cannot read the pickle ({exc})") from None
    if not isinstance(data, dict):
        raise AnnotationError(path, "expected a dict of video name -> captions")
    return data


def _caption_text(caption: Any) -> str:
    """CLIP4Clip stores each MSVD caption as a list of tokens."""
    if isinstance(caption, list) and all(isinstance(t, str) for t in caption):
        caption = " ".join(caption)
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"a caption must be a string or a list of tokens, got {caption!r}")
    return caption.strip()


def read_msvd_retrieval(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, video_path: str = "YouTubeClips/{video}.avi"
) -> list[VideoRecord]:
    """MSVD text-video retrieval (CLIP4Clip's `msvd_data`), one record per clip with all captions.

    Files under `root` (or `root/msvd_data`): `raw-captions.pkl` (a pickled dict of clip name ->
    captions, each a list of tokens; only plain data is unpickled) and `{split}_list.txt` (one
    clip name per line; 1,200 / 100 / 670 clips).

    Fields: `id` = the clip name; `video` = `video_path` (default "YouTubeClips/{video}.avi");
    `captions` = the clip's captions, tokens joined by spaces (about 40 each).

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Raises:
        AnnotationError: a missing or unreadable file, or (without `errors`) a listed clip
            without captions or with a malformed one.
    """
    template, issues = VideoPath(video_path), Issues(errors)
    folder = root / "msvd_data" if (root / "msvd_data").is_dir() else root
    captions_path = find_file(folder, "raw-captions.pkl")
    captions = _msvd_captions(captions_path)
    path = find_file(folder, f"{split}_list.txt")
    records: list[VideoRecord] = []
    seen: set[str] = set()
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        clip = strip_video_extension(line.strip())
        if not clip:
            continue
        try:
            if clip in seen:
                raise ValueError("listed twice")
            if clip not in captions:
                raise ValueError(f"no captions in {captions_path.name}")
            texts = captions[clip]
            if not isinstance(texts, list) or not texts:
                raise ValueError(f"captions in {captions_path.name} must be a non-empty list")
            texts = [_caption_text(c) for c in texts]
        except ValueError as exc:
            issues.report(path, f"clip {clip!r}: {exc}", number)
            continue
        seen.add(clip)
        records.append(VideoRecord(clip, template(clip, clip), split, captions=texts))
    return records


def _paragraph_record(
    rid: str, video: str, split: str, template: VideoPath, sentences: list[tuple[float, float, str]], meta: dict[str, Any]
) -> VideoRecord:
    """One record whose caption is the sentences, in the order given, joined into a paragraph."""
    texts = [text for _, _, text in sentences]
    meta = {**meta, "sentences": texts, "times": [[start, end] for start, end, _ in sentences]}
    return VideoRecord(rid, template(video, rid), split, captions=[" ".join(texts)], meta=meta)


def _by_start(items: list) -> list:
    return sorted(items, key=lambda item: item[0])  # stable: equal starts keep file order


def _didemo_times(times: Any) -> tuple[float, float]:
    """Annotators' (first chunk, last chunk) pairs -> the moment in seconds, averaged over annotators."""
    if not isinstance(times, list) or not times:
        raise ValueError("'times' must be a non-empty list of [first chunk, last chunk]")
    for pair in times:
        chunks = isinstance(pair, list) and len(pair) == 2 and all(type(c) is int and 0 <= c <= 5 for c in pair)
        if not chunks or pair[0] > pair[1]:
            raise ValueError(f"each of 'times' must be [first, last] chunk indices 0-5, got {pair!r}")
    first = sum(p[0] for p in times) / len(times)
    last = sum(p[1] for p in times) / len(times)
    return first * DIDEMO_CHUNK_SECONDS, (last + 1) * DIDEMO_CHUNK_SECONDS


def read_didemo(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, video_path: str = "videos/{video}.mp4"
) -> list[VideoRecord]:
    """DiDeMo (Hendricks et al. 2017) as paragraph-to-video retrieval, one record per video.

    File under `root`: `{split}_data.json` or `data/{split}_data.json`, DiDeMo's list of
    `{annotation_id, description, video: "<name>.<ext>", times: [[first, last] chunk per
    annotator]}`. Chunks are 5 s; a moment spans `mean(first) * 5` to `(mean(last) + 1) * 5`
    seconds.

    Fields: `id` = the video file name without its extension; `video` = `video_path` (default
    "videos/{video}.mp4", as the videos are usually converted to mp4); `captions` = one
    paragraph, the descriptions ordered by moment start and joined by spaces; `meta` =
    `{sentences, times (seconds), annotation_ids, file}`.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Raises:
        AnnotationError: a missing file, invalid JSON, or (without `errors`) a bad entry.
    """
    template, issues = VideoPath(video_path), Issues(errors)
    jf = JsonFile(find_file(root, f"{split}_data.json", f"data/{split}_data.json"))
    videos: dict[str, tuple[str, list[tuple[float, float, str, Any]]]] = {}
    for entry in jf.entries(issues=issues):
        try:
            item = require_object(entry.value)
            file = text_field(item, "video")
            description = text_field(item, "description")
            start, end = _didemo_times(item.get("times"))
        except ValueError as exc:
            _report(issues, jf, entry, exc)
            continue
        stem = strip_video_extension(file)
        videos.setdefault(stem, (file, []))[1].append((start, end, description, item.get("annotation_id")))
    records = []
    for stem, (file, moments) in videos.items():
        moments = _by_start(moments)
        meta = {"annotation_ids": [m[3] for m in moments], "file": file}
        records.append(_paragraph_record(stem, stem, split, template, [m[:3] for m in moments], meta))
    return records


def read_activitynet_captions(
    root: Path, split: str, *, errors: list[AnnotationError] | None = None, video_path: str = "videos/{video}.mp4"
) -> list[VideoRecord]:
    """ActivityNet Captions (Krishna et al. 2017) as paragraph-to-video retrieval.

    File under `root`: `train.json` (train), `val_1.json` (test: the usual paragraph-retrieval
    test set, 4,917 videos) or `val_2.json` (val); each a dict keyed by "v_<YouTube id>" of
    `{duration, timestamps: [[start, end]...], sentences: [...]}`.

    Fields: `id` = the YouTube id ("v_" dropped, as for ActivityNet-QA); `video` =
    `video_path` with `{video}` the key as given (default "videos/{video}.mp4");
    `captions` = one paragraph, the sentences ordered by start time and joined by spaces;
    `meta` = `{duration, sentences, times}`.

    Args:
        root: the dataset folder.
        split: "train", "val" or "test".
        errors: collect bad entries here and skip them; None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Raises:
        AnnotationError: a missing file, invalid JSON, or (without `errors`) a bad entry.
    """
    template, issues = VideoPath(video_path), Issues(errors)
    name = _ACTIVITYNET_FILES[split]
    jf = JsonFile(find_file(root, name, f"captions/{name}"))
    records = []
    for entry in jf.entries(issues=issues):
        try:
            item = require_object(entry.value)
            if not isinstance(entry.key, str):
                raise ValueError("expected a dict keyed by video name")
            stamps, texts = item.get("timestamps"), item.get("sentences")
            if not (isinstance(stamps, list) and isinstance(texts, list) and len(stamps) == len(texts) > 0):
                raise ValueError("'timestamps' and 'sentences' must be non-empty lists of the same length")
            sentences = []
            for i, (stamp, text) in enumerate(zip(stamps, texts)):
                if not (isinstance(stamp, list) and len(stamp) == 2 and all(type(t) in (int, float) for t in stamp)):
                    raise ValueError(f"timestamps[{i}] must be [start, end] in seconds")
                sentences.append((float(stamp[0]), float(stamp[1]), text_field({"sentence": text}, "sentence")))
            meta = {"duration": seconds_field(item, "duration", required=False)}
        except ValueError as exc:
            _report(issues, jf, entry, exc)
            continue
        video = strip_video_extension(entry.key)
        records.append(_paragraph_record(youtube_id(video), video, split, template, _by_start(sentences), meta))
    return records
