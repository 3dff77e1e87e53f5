"""HTTP byte ranges (RFC 9110 section 14): what part of a file a `Range` header asks for.

Only one range is answered; a header this module does not understand (another unit, several
ranges, bad syntax) is ignored and the whole file is sent, as the RFC allows. A range that
starts past the end cannot be satisfied (416).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

_SINGLE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


class RangeNotSatisfiable(Exception):
    """The range lies outside the file (answer 416 with `Content-Range: bytes */size`)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte span `(first, last)` of a file of `size` bytes that `header` asks for,
    or None to send the whole file.

    Raises:
        RangeNotSatisfiable: a well-formed range with no byte in the file.
    """
    if header is None:
        return None
    match = _SINGLE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None  # "bytes=-": malformed
    if not first:  # a suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # malformed: ignored
    if start >= size:
        raise RangeNotSatisfiable
    return start, size - 1 if not last else min(int(last), size - 1)


def read_span(path: str | os.PathLike, first: int, last: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The bytes `first..last` (inclusive) of a file, in chunks."""
    with open(path, "rb") as f:
        f.seek(first)
        left = last - first + 1
        while left > 0:
            data = f.read(min(chunk, left))
            if not data:
                return  # the file shrank while being sent
            left -= len(data)
            yield data
