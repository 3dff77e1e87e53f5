"""What every dataset reader shares: finding files, JSON entries with line numbers, bad-entry policy.

Annotation files of the standard datasets are single JSON documents (a dict keyed by id, or a
list), so a bad entry cannot be located by `json.load`. `JsonFile` parses the top-level container
one entry at a time and remembers where each entry starts, so an error names the file and the
line of the entry ("qa_test.json:1234: entry '0000042': missing 'answer'").

The policy every reader follows, nothing lost and nothing silent:
- a bad entry (a QA pair, a caption, a segment, a line) is reported to `Issues` and drops only
  itself, never the good entries of the same video or file;
- a file in another layout than the reader's (a missing top-level key, a list where an object
  keyed by id is expected, members that are not objects), or one that yields no record (a split
  or task that selects nothing, only bad entries), is an `AnnotationError` naming the file, with
  or without an error list: converting it to zero records would only hide the mistake.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixma.errors import AnnotationError
from mixma.video.files import VIDEO_EXTENSIONS  # noqa: F401  (the readers name it from here)

_WHITESPACE = re.compile(r"[ \t\n\r]*")


class Issues:
    """Where bad entries go: raised at once, or collected when the caller passed a list.

    Args:
        errors: None to raise the first problem; a list to append every problem to and go on.
    """

    def __init__(self, errors: list[AnnotationError] | None):
        self.errors = errors
        self._start = len(errors) if errors is not None else 0  # what the caller's list held before

    def report(self, path: str | os.PathLike, reason: str, line: int | None = None) -> None:
        """Raise, or record and return so the caller can skip the entry.

        Raises:
            AnnotationError: when no error list was given.
        """
        error = AnnotationError(path, reason, line=line)
        if self.errors is None:
            raise error
        self.errors.append(error)

    @property
    def reported(self) -> list[AnnotationError]:
        """The problems collected here (none when they raise)."""
        return self.errors[self._start :] if self.errors is not None else []


def json_problem(exc: json.JSONDecodeError) -> str:
    """`json`'s message and column, read as one phrase: some of its messages already end with
    "at" ("Unterminated string starting at"), which must not become "at at column 7"."""
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def nothing_read(path: str | os.PathLike, issues: Issues, reason: str) -> AnnotationError:
    """The error for a file that gave no record: `reason` says what was looked for; when bad
    entries were skipped it adds how many and the first, as they are then the likely cause.

    Returns:
        The error, to raise.
    """
    reported = issues.reported
    if reported:
        first = reported[0]
        where = Path(first.path).name + (f":{first.line}" if first.line is not None else "")
        reason += f" ({len(reported)} bad entries skipped; the first: {where}: {first.reason})"
    return AnnotationError(path, reason)


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
        if offset >= len(self.text):  # a file cut short, as by an interrupted download or copy
            message = f"the file ends too soon: {message}"
        return AnnotationError(self.path, f"not valid JSON ({message})", line=self.line(offset))

    def _skip(self, i: int) -> int:
        return _WHITESPACE.match(self.text, i).end()

    def _decode(self, i: int) -> tuple[Any, int]:
        try:
            return _DECODER.raw_decode(self.text, i)
        except json.JSONDecodeError as exc:
            raise AnnotationError(self.path, f"not valid JSON ({json_problem(exc)})", line=exc.lineno) from None

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


def object_entries(jf: JsonFile, issues: Issues, what: str, *, keyed_by: str | None = None) -> list[Entry]:
    """The top-level entries of a file whose members are JSON objects, one per entry.

    A member that is not an object is a bad entry for the reader to report; a file none of whose
    members is an object is in another layout, and an error here.

    Args:
        jf: the file.
        issues: where repeated keys go.
        what: what the members are, for messages ("QA entries").
        keyed_by: if given, the top level must be an object keyed by this ("video id").

    Raises:
        AnnotationError: the top level is a list where an object keyed by `keyed_by` is
            expected, it has no members, or none is an object.
    """
    if keyed_by is not None and jf.kind() == "list":
        raise AnnotationError(jf.path, f"expected a JSON object keyed by {keyed_by}, got a list")
    return check_objects(jf, jf.entries(issues=issues), what)


def check_objects(jf: JsonFile, entries: list[Entry], what: str) -> list[Entry]:
    """`entries` (of a container in `jf`), checked to hold some JSON objects (see `object_entries`).

    Raises:
        AnnotationError: there are no entries, or none is an object.
    """
    if not entries:
        raise AnnotationError(jf.path, f"no {what}: the file's top-level {jf.kind()} is empty")
    if not any(isinstance(e.value, dict) for e in entries):
        first = entries[0]
        raise AnnotationError(
            jf.path,
            f"expected {what} (JSON objects), but no top-level member is one ({first.label} is "
            f"{_json_type(first.value)}): is this the file this reader expects?",
            line=jf.line(first.offset),
        )
    return entries


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def csv_rows(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A CSV file's columns and rows, each row with the line it ends on.

    Raises:
        AnnotationError: the file is missing, not valid CSV, lacks a required column, or has no rows.
    """
    reader = csv.DictReader(io.StringIO(read_text(path)))
    try:
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in columns]
        if missing:
            raise AnnotationError(path, f"missing column(s) {', '.join(missing)}", line=1)
        reader.fieldnames = columns  # a header written "video, question" names the column "question"
        rows = [(reader.line_num, row) for row in reader]  # line_num: the line the row ends on
    except csv.Error as exc:
        raise AnnotationError(path, f"not valid CSV ({exc})", line=reader.line_num) from None
    if not rows:
        raise AnnotationError(path, "no rows below the header")
    return columns, rows


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
