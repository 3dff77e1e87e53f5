"""What every dataset reader shares: finding files, JSON entries with line numbers, bad-entry policy.

Annotation files of the standard datasets are single JSON documents (a dict keyed by id, or a
list), so a bad entry cannot be located by `json.load`. `JsonFile` parses the top-level container
one entry at a time and remembers where each entry starts, so an error names the file and the
line of the entry ("qa_test.json:1234: entry '0000042': missing 'answer'").
"""

from __future__ import annotations

import bisect
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixma.errors import AnnotationError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".3gp", ".flv", ".mpg", ".mpeg", ".wmv")
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class Issues:
    """Where bad entries go: raised at once, or collected when the caller passed a list.

    Args:
        errors: None to raise the first problem; a list to append every problem to and go on.
    """

    def __init__(self, errors: list[AnnotationError] | None):
        self.errors = errors

    def report(self, path: str | os.PathLike, reason: str, line: int | None = None) -> None:
        """Raise, or record and return so the caller can skip the entry.

        Raises:
            AnnotationError: when no error list was given.
        """
        error = AnnotationError(path, reason, line=line)
        if self.errors is None:
            raise error
        self.errors.append(error)


def read_text(path: Path) -> str:
    """The file's text as UTF-8 (a leading byte-order mark is dropped).

    Raises:
        AnnotationError: the file is missing or unreadable.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, f"cannot read ({exc})") from None


def find_file(root: Path, *names: str) -> Path:
    """The first of `names` (relative to `root`) that exists.

    Raises:
        AnnotationError: none exists ("no such file", listing what was looked for).
    """
    for name in names:
        if (root / name).is_file():
            return root / name
    tried = ", ".join(names)
    raise AnnotationError(root / names[0], f"no such file (looked for {tried} in {root})")


def first_existing(root: Path, *names: str) -> Path | None:
    """The first of `names` under `root` that exists, or None."""
    return next((root / name for name in names if (root / name).is_file()), None)


@dataclass(frozen=True)
class Entry:
    """One member of a JSON object (`key` is its name) or list (`key` is its index)."""

    key: str | int
    value: Any
    offset: int  # character offset of the value in the file

    @property
    def label(self) -> str:
        return f"entry {self.key!r}" if isinstance(self.key, str) else f"item {self.key}"


class JsonFile:
    """A JSON document whose top-level (or nested) container is read entry by entry.

    Raises:
        AnnotationError: (from the constructor and `entries`) the file is missing, unreadable,
            or not valid JSON; the error carries the line of the syntax error.
    """

    def __init__(self, path: Path):
        self.path = path
        self.text = read_text(path)
        self._newlines: list[int] | None = None

    def line(self, offset: int) -> int:
        """1-based line number of a character offset."""
        if self._newlines is None:  # built only when an error needs it
            self._newlines = [m.start() for m in re.finditer("\n", self.text)]
        return bisect.bisect_left(self._newlines, offset) + 1  # newlines before it, plus one

    def _syntax_error(self, offset: int, message: str) -> AnnotationError:
        return AnnotationError(self.path, f"not valid JSON ({message})", line=self.line(offset))

    def _skip(self, i: int) -> int:
        return _WHITESPACE.match(self.text, i).end()

    def _decode(self, i: int) -> tuple[Any, int]:
        try:
            return _DECODER.raw_decode(self.text, i)
        except json.JSONDecodeError as exc:
            raise AnnotationError(self.path, f"not valid JSON ({exc.msg} at column {exc.colno})", line=exc.lineno) from None

    def kind(self, offset: int | None = None) -> str:
        """'object' or 'list': the container at `offset` (default: the top level)."""
        i = self._skip(0 if offset is None else offset)
        char = self.text[i : i + 1]
        if char == "{":
            return "object"
        if char == "[":
            return "list"
        raise AnnotationError(self.path, "expected a JSON object or list", line=self.line(i))

    def entries(self, offset: int | None = None, issues: Issues | None = None) -> list[Entry]:
        """The members of the object or list at `offset` (default: the whole document).

        A key repeated in an object (which `json.load` would silently resolve to the last
        value) is reported to `issues` and its later occurrences are dropped.

        Raises:
            AnnotationError: not valid JSON, not a container, or a repeated key without `issues`.
        """
        top = offset is None
        i = self._skip(0 if top else offset)
        is_object = self.kind(i) == "object"
        closing = "}" if is_object else "]"
        entries: list[Entry] = []
        keys: set[str] = set()
        i = self._skip(i + 1)
        if self.text[i : i + 1] == closing:
            i += 1
        else:
            while True:
                if is_object:
                    if self.text[i : i + 1] != '"':
                        raise self._syntax_error(i, "expected a quoted key")
                    key, i = self._decode(i)
                    i = self._skip(i)
                    if self.text[i : i + 1] != ":":
                        raise self._syntax_error(i, "expected ':' after a key")
                    i = self._skip(i + 1)
                else:
                    key = len(entries)  # list items keep their index
                start = i
                value, i = self._decode(i)
                if is_object and key in keys:
                    (issues or Issues(None)).report(self.path, f"entry {key!r} appears twice", self.line(start))
                else:
                    keys.add(key)
                    entries.append(Entry(key, value, start))
                i = self._skip(i)
                char = self.text[i : i + 1]
                if char == ",":
                    i = self._skip(i + 1)
                elif char == closing:
                    i += 1
                    break
                else:
                    raise self._syntax_error(i, f"expected ',' or '{closing}'")
        if top and self._skip(i) != len(self.text):
            raise self._syntax_error(self._skip(i), "extra data after the document")
        return entries


_DECODER = json.JSONDecoder()


def text_field(item: dict, name: str) -> str:
    """A required non-empty string field, stripped.

    Raises:
        ValueError: missing, not a string, or blank.
    """
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        if name not in item:
            raise ValueError(f"missing '{name}'")
        raise ValueError(f"'{name}' must be a non-empty string, got {value!r}")
    return value.strip()


def label_field(item: dict, name: str) -> str:
    """A class label: a non-empty string, or an integer class kept as its decimal text.

    Raises:
        ValueError: missing or of another type.
    """
    value = item.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text_field(item, name)


def seconds_field(item: dict, name: str, *, required: bool = True) -> float | None:
    """A non-negative number of seconds.

    Raises:
        ValueError: missing (when required), not a number, or negative.
    """
    value = item.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"missing '{name}'" if name not in item else f"'{name}' must be a non-negative number, got {value!r}")
    return float(value)


def count_field(item: dict, name: str) -> int | None:
    """An optional non-negative integer (a frame count).

    Raises:
        ValueError: present but not a non-negative integer.
    """
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{name}' must be a non-negative integer, got {value!r}")
    return value


def require_object(value: Any) -> dict:
    """Raises ValueError unless `value` is a JSON object."""
    if not isinstance(value, dict):
        raise ValueError(f"must be an object, got {type(value).__name__}")
    return value


def strip_video_extension(name: str) -> str:
    """'video7010.mp4' -> 'video7010'; names without a known video extension are kept."""
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in VIDEO_EXTENSIONS else name


def youtube_id(name: str) -> str:
    """ActivityNet's 'v_<11-character YouTube id>' -> the YouTube id; other names are kept."""
    return name[2:] if name.startswith("v_") and len(name) == 13 else name


def string_set(value: Any, name: str) -> frozenset[str]:
    """Reader options that list ids: an iterable of strings, or one comma-separated string.

    Raises:
        ValueError: anything else.
    """
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"{name} must be a list of ids or a comma-separated string") from None
    if not all(isinstance(v, str) for v in items):
        raise ValueError(f"{name} must be a list of ids or a comma-separated string")
    return frozenset(items)


class VideoPath:
    """Where a dataset's videos are, as a template relative to the dataset root.

    `{video}` is the video's name as the annotation gives it (without a video extension) and
    `{id}` the record id, e.g. "videos/{video}.mp4" or, for MA-LMM's 10 fps frame folders,
    "frames/{video}".

    Raises:
        ValueError: (constructor) the template uses other fields or neither of these.
    """

    def __init__(self, template: str):
        if not isinstance(template, str) or not template:
            raise ValueError("video_path must be a non-empty template such as 'videos/{video}.mp4'")
        try:
            probe = template.format(video="\0", id="\1")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"video_path {template!r} may only use the fields {{video}} and {{id}}") from None
        if "\0" not in probe and "\1" not in probe:
            raise ValueError(f"video_path {template!r} must contain {{video}} or {{id}}")
        self.template = template

    def __call__(self, video: str, id: str) -> str:
        return self.template.format(video=video, id=id)
