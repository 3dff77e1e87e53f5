"""Exceptions raised by mixma.

Every error a user can cause by handing us bad input derives from `MixmaError`; the CLI turns
these into one `error: ...` line and exit code 2.
"""

from __future__ import annotations

import os


class MixmaError(Exception):
    """Base class for errors caused by bad input (files, options, annotations)."""


class VideoError(MixmaError):
    """A video cannot be opened or decoded: not a video, corrupt, truncated, no frames.

    `path` is the file and `reason` says what is wrong with it; `str()` gives both.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AnnotationError(MixmaError):
    """An annotation file or one of its lines is malformed.

    `line` is 1-based, or None when the problem is with the file as a whole.
    """

    def __init__(self, path: str | os.PathLike, reason: str, line: int | None = None):
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")
