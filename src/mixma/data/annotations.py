"""The canonical annotation format: one JSON object per line (JSONL), one record per video clip.

Every dataset reader produces these records and every task reads them, so one loader serves the
synthetic benchmark and the standard datasets alike. A record:

```json
{"id": "000017", "video": "videos/000017.mp4", "split": "train",
 "start": null, "end": null,
 "label": "red circle",
 "qa": [{"question": "how many times did the red circle appear?", "answer": "two", "type": "how_many"}],
 "captions": ["a red circle flashes twice over a dark blue background"],
 "augmented": ["the video shows a red circle blinking two times"],
 "meta": {"fps": 25.0}}
```

- `id` (required): unique within the file.
- `video` (required): a path, relative to the annotation file's folder unless absolute.
- `split`: "train", "val", "test" or "meta" (a small clean set for meta-learning); default "train".
- `start`, `end`: seconds, when the record is a clip of a longer video (YouCook2, LVU windows).
- `label`: a class name (classification).
- `qa`: question/answer pairs; `type` is optional, `options` lists the choices of a
  multiple-choice question (the answer is one of them), `id` is optional.
- `captions`: reference captions written by people.
- `augmented`: machine-generated captions (e.g. by a vision-language model); may be wrong.
- `meta`: anything else, kept as is.

Unknown top-level fields are an error (a typo like `lable` would otherwise vanish silently); put
extra information under `meta`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixma._atomic import atomic_open
from mixma.errors import AnnotationError

SPLITS = ("train", "val", "test", "meta")


@dataclass
class QA:
    question: str
    answer: str
    type: str | None = None
    options: list[str] | None = None
    id: str | None = None


@dataclass
class VideoRecord:
    id: str
    video: str
    split: str = "train"
    start: float | None = None
    end: float | None = None
    label: str | None = None
    qa: list[QA] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    augmented: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def clip(self) -> tuple[float | None, float | None] | None:
        """`(start, end)` seconds when the record is a clip of a longer video, else None."""
        return (self.start, self.end) if self.start is not None or self.end is not None else None

    def video_path(self, root: str | os.PathLike) -> Path:
        """The video file, resolving a relative `video` against `root` (the annotation folder)."""
        path = Path(self.video)
        return path if path.is_absolute() else Path(root) / path

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["qa"] = [{k: v for k, v in qa.items() if v is not None} for qa in data["qa"]]
        return data


_FIELDS = {f.name for f in dataclasses.fields(VideoRecord)}
_QA_FIELDS = {f.name for f in dataclasses.fields(QA)}


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{name}' must be a list of strings")
    return value


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"'{name}' must be a non-negative number of seconds")
    return float(value)


def _qa(item: Any, i: int) -> QA:
    if not isinstance(item, dict):
        raise ValueError(f"qa[{i}] must be an object")
    unknown = set(item) - _QA_FIELDS
    if unknown:
        raise ValueError(f"qa[{i}] has unknown field(s) {', '.join(sorted(unknown))}")
    for key in ("question", "answer"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ValueError(f"qa[{i}] needs a non-empty string '{key}'")
    options = item.get("options")
    if options is not None:
        _strings(options, f"qa[{i}].options")
        if item["answer"] not in options:
            raise ValueError(f"qa[{i}]: the answer {item['answer']!r} is not one of its options")
    return QA(item["question"], item["answer"], item.get("type"), options, item.get("id"))


def parse_record(data: Any) -> VideoRecord:
    """Validate one decoded JSON object and build a `VideoRecord` (raises ValueError)."""
    if not isinstance(data, dict):
        raise ValueError("a record must be a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))} (put extra data under 'meta')")
    for key in ("id", "video"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ValueError(f"'{key}' must be a non-empty string")
    split = data.get("split", "train")
    if split not in SPLITS:
        raise ValueError(f"'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    start, end = _seconds(data.get("start"), "start"), _seconds(data.get("end"), "end")
    if start is not None and end is not None and end <= start:
        raise ValueError("'end' must come after 'start'")
    label = data.get("label")
    if label is not None and not isinstance(label, str):
        raise ValueError("'label' must be a string")
    qa = data.get("qa", [])
    if not isinstance(qa, list):
        raise ValueError("'qa' must be a list")
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError("'meta' must be an object")
    return VideoRecord(
        id=data["id"], video=data["video"], split=split, start=start, end=end, label=label,
        qa=[_qa(item, i) for i, item in enumerate(qa)],
        captions=_strings(data.get("captions", []), "captions"),
        augmented=_strings(data.get("augmented", []), "augmented"),
        meta=meta,
    )


def read_records(path: str | os.PathLike, *, errors: list[AnnotationError] | None = None) -> list[VideoRecord]:
    """Read a JSONL annotation file.

    Args:
        path: the file.
        errors: if given, bad lines are skipped and an `AnnotationError` for each is appended
            here (for batch jobs that report and go on); otherwise the first bad line raises.

    Raises:
        AnnotationError: the file cannot be read, or (without `errors`) a line is malformed,
            or two records share an id.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AnnotationError(path, "no such file") from None
    except IsADirectoryError:
        raise AnnotationError(path, "a folder, not a JSONL annotation file") from None
    except OSError as exc:
        raise AnnotationError(path, f"cannot read ({exc.strerror or exc})") from None
    try:
        if b"\x00" in data[:4096]:
            raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "a null byte")
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AnnotationError(path, "cannot read it as text: not a JSONL annotation file (binary data: a video or an image?)") from None
    records: list[VideoRecord] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                # some of json's messages end with "at" ("Unterminated string starting at")
                raise ValueError(f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})") from None
            record = parse_record(data)
            if record.id in seen:
                raise ValueError(f"duplicate id {record.id!r}")
        except ValueError as exc:
            error = AnnotationError(path, str(exc), line=number)
            if errors is None:
                raise error from None
            errors.append(error)
            continue
        seen.add(record.id)
        records.append(record)
    return records


def write_records(path: str | os.PathLike, records: list[VideoRecord]) -> None:
    """Write records as JSONL, atomically."""
    with atomic_open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
