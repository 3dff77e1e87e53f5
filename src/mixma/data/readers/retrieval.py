"""Text-video retrieval: MSRVTT (9k / 1k-A), MSVD, and paragraph retrieval on DiDeMo and
ActivityNet Captions.

Each record is a video; its `captions` are the texts that should retrieve it. For DiDeMo and
ActivityNet Captions all sentences of a video are joined, in temporal order, into one paragraph
(the paragraph-to-video protocol of CLIP4Clip and CLIP-ViP); the sentences and their times are
kept in `meta`.
"""

from __future__ import annotations

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
    csv_rows,
    find_file,
    nothing_read,
    object_entries,
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


def _msrvtt_sentences(jf: JsonFile, top: list[Entry], issues: Issues) -> dict[str, list[str]]:
    captions: dict[str, list[str]] = {}
    for entry in _nested(jf, top, "sentences", issues):
        try:
            item = require_object(entry.value)
            vid, caption = text_field(item, "video_id"), text_field(item, "caption")
        except ValueError as exc:
            _report(issues, jf, entry, exc)
            continue
        captions.setdefault(vid, []).append(caption)  # only once both are read: no empty caption lists
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


def _msrvtt_jsfusion_test(path: Path, split: str, template: VideoPath, issues: Issues) -> list[VideoRecord]:
    """1k-A test: one record per csv row, with the one sentence the row pairs with the video."""
    records, seen = [], set()
    for line, row in csv_rows(path, ("video_id", "sentence"))[1]:
        vid, sentence = (row.get("video_id") or "").strip(), (row.get("sentence") or "").strip()
        if not vid or not sentence:
            issues.report(path, "empty video_id or sentence", line)
        elif vid in seen:
            issues.report(path, f"video {vid!r} appears twice", line)
        else:
            seen.add(vid)
            meta = {k: row[k] for k in ("key", "vid_key") if row.get(k)}
            records.append(VideoRecord(vid, template(vid, vid), split, captions=[sentence], meta=meta))
    if not records:
        raise nothing_read(path, issues, "no test row names a video and a sentence")
    return records


def _msrvtt_full(jf: JsonFile, top: list[Entry], split: str, template: VideoPath, issues: Issues) -> list[VideoRecord]:
    """The official split field: the videos of `split` with all their sentences."""
    captions, videos = _msrvtt_sentences(jf, top, issues), _msrvtt_videos(jf, top, issues)
    wanted = _MSRVTT_FULL_SPLITS[split]
    records = []
    for vid, (meta, entry) in videos.items():
        if entry.value.get("split") != wanted:
            continue
        if vid not in captions:
            _report(issues, jf, entry, ValueError(f"video {vid!r} has no sentences"))
            continue
        records.append(VideoRecord(vid, template(vid, vid), split, captions=captions[vid], meta=meta))
    if not records:
        raise nothing_read(jf.path, issues, f"no video has \"split\": {wanted!r}")
    return records


def _msrvtt_listed(
    jf: JsonFile, top: list[Entry], path: Path, split: str, template: VideoPath, issues: Issues
) -> list[VideoRecord]:
    """A training list (9k or 7k csv): its videos with all their sentences from `jf`."""
    captions, videos = _msrvtt_sentences(jf, top, issues), _msrvtt_videos(jf, top, issues)
    records, seen = [], set()
    for line, row in csv_rows(path, ("video_id",))[1]:
        vid = (row.get("video_id") or "").strip()
        if not vid or vid in seen:
            issues.report(path, f"empty or repeated video_id {vid!r}", line)
        elif vid not in captions:
            issues.report(path, f"video {vid!r} has no sentences in {jf.path.name}", line)
        else:
            seen.add(vid)
            meta = videos[vid][0] if vid in videos else {}
            records.append(VideoRecord(vid, template(vid, vid), split, captions=captions[vid], meta=meta))
    if not records:
        raise nothing_read(path, issues, "no listed video has sentences")
    return records


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

    Returns:
        The records, in file order.

    Raises:
        ValueError: an unknown protocol, or val with 1k-A/7k.
        AnnotationError: a missing file, invalid JSON/CSV, a file in another layout (no
            'videos'/'sentences' lists, no rows), no video of the split, or (without `errors`)
            a bad entry, such as a listed video without captions.
    """
    if protocol not in MSRVTT_PROTOCOLS:
        raise ValueError(f"unknown MSRVTT protocol {protocol!r}; choose one of {', '.join(MSRVTT_PROTOCOLS)}")
    if protocol != "full" and split == "val":
        raise ValueError(f"MSRVTT {protocol} has no val split: use train or test, or protocol='full'")
    template, issues = VideoPath(video_path), Issues(errors)
    folder = root / "msrvtt_data" if (root / "msrvtt_data").is_dir() else root
    if protocol != "full" and split == "test":
        return _msrvtt_jsfusion_test(find_file(folder, "MSRVTT_JSFUSION_test.csv"), split, template, issues)
    jf = JsonFile(find_file(folder, "MSRVTT_data.json"))
    if jf.kind() != "object":
        raise AnnotationError(jf.path, "expected a JSON object with 'videos' and 'sentences' lists, got a list")
    top = jf.entries(issues=issues)
    if protocol == "full":
        return _msrvtt_full(jf, top, split, template, issues)
    path = find_file(folder, "MSRVTT_train.9k.csv" if protocol == "1k-A" else "MSRVTT_train.7k.csv")
    return _msrvtt_listed(jf, top, path, split, template, issues)


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


def _clip_captions(clip: str, texts: Any, captions_path: Path, issues: Issues) -> list[str]:
    """A clip's captions from the pickle; a malformed one is reported (the pickle has no lines)
    and left out, the clip's other captions kept."""
    if not isinstance(texts, list):
        raise ValueError(f"captions in {captions_path.name} must be a list, got {type(texts).__name__}")
    kept = []
    for i, caption in enumerate(texts):
        try:
            kept.append(_caption_text(caption))
        except ValueError as exc:
            issues.report(captions_path, f"clip {clip!r}: caption {i}: {exc}")
    if not kept:
        raise ValueError(f"no usable caption in {captions_path.name}")
    return kept


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
        errors: collect bad entries here and skip them (a malformed caption drops only
            itself); None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        The records, in list order.

    Raises:
        AnnotationError: a missing or unreadable file, a pickle that is not a dict, a list
            naming no clip, or (without `errors`) a listed clip without captions or with a
            malformed one.
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
            texts = _clip_captions(clip, captions[clip], captions_path, issues)
        except ValueError as exc:
            issues.report(path, f"clip {clip!r}: {exc}", number)
            continue
        seen.add(clip)
        records.append(VideoRecord(clip, template(clip, clip), split, captions=texts))
    if not records:
        raise nothing_read(path, issues, "no listed clip has captions")
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

    Returns:
        The records, in file order.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout (see
            `object_entries`), no usable entry, or (without `errors`) a bad entry.
    """
    template, issues = VideoPath(video_path), Issues(errors)
    jf = JsonFile(find_file(root, f"{split}_data.json", f"data/{split}_data.json"))
    videos: dict[str, tuple[str, list[tuple[float, float, str, Any]]]] = {}
    for entry in object_entries(jf, issues, "moment descriptions"):
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
    if not records:
        raise nothing_read(jf.path, issues, "no usable moment description")
    return records


def _activitynet_sentences(item: dict, where: str, path: Path, line: int, issues: Issues) -> list[tuple[float, float, str]]:
    """A video's (start, end, sentence) triples; a malformed one is reported and left out.

    Raises:
        ValueError: the lists are missing, of different lengths, or hold no usable sentence.
    """
    stamps, texts = item.get("timestamps"), item.get("sentences")
    if not (isinstance(stamps, list) and isinstance(texts, list) and len(stamps) == len(texts) > 0):
        raise ValueError("'timestamps' and 'sentences' must be non-empty lists of the same length")
    sentences = []
    for i, (stamp, text) in enumerate(zip(stamps, texts)):
        try:
            if not (isinstance(stamp, list) and len(stamp) == 2 and all(type(t) in (int, float) for t in stamp)):
                raise ValueError("timestamps must be [start, end] in seconds")
            sentences.append((float(stamp[0]), float(stamp[1]), text_field({"sentence": text}, "sentence")))
        except ValueError as exc:
            issues.report(path, f"{where}: sentence {i}: {exc}", line)
    if not sentences:
        raise ValueError("no usable sentence")
    return sentences


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
        errors: collect bad entries here and skip them (a malformed sentence drops only
            itself from its paragraph); None raises the first.
        video_path: where the videos are, relative to `root` (see `VideoPath`).

    Returns:
        The records, in file order.

    Raises:
        AnnotationError: a missing file, invalid JSON, a file in another layout (not an object
            keyed by video), no usable video, or (without `errors`) a bad entry.
    """
    template, issues = VideoPath(video_path), Issues(errors)
    name = _ACTIVITYNET_FILES[split]
    jf = JsonFile(find_file(root, name, f"captions/{name}"))
    records = []
    for entry in object_entries(jf, issues, "videos", keyed_by="video name"):
        line = jf.line(entry.offset)
        try:
            item = require_object(entry.value)
            sentences = _activitynet_sentences(item, entry.label, jf.path, line, issues)
            meta = {"duration": seconds_field(item, "duration", required=False)}
        except ValueError as exc:
            issues.report(jf.path, f"{entry.label}: {exc}", line)
            continue
        video = strip_video_extension(entry.key)
        records.append(_paragraph_record(youtube_id(video), video, split, template, _by_start(sentences), meta))
    if not records:
        raise nothing_read(jf.path, issues, "no video with usable sentences")
    return records
