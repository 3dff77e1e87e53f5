"""Byte ranges against RFC 9110's own examples, and against Starlette's FileResponse as a peer."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from mixma.serve.ranges import RangeNotSatisfiable, parse_range, read_span


@pytest.mark.parametrize("header, span", [  # RFC 9110 section 14.1.2, a 10000-byte representation
    ("bytes=0-499", (0, 499)), ("bytes=500-999", (500, 999)), ("bytes=-500", (9500, 9999)),
    ("bytes=9500-", (9500, 9999)), ("bytes=0-0", (0, 0)), ("bytes=-1", (9999, 9999)),
    ("bytes=9999-20000", (9999, 9999)), ("bytes=-20000", (0, 9999)),
    (None, None), ("bytes=500-100", None), ("bytes=-", None), ("items=0-1", None), ("bytes=0-1,5-9", None),
    ("bytes=a-b", None)])
def test_rfc_examples(header, span):
    assert parse_range(header, 10000) == span


@pytest.mark.parametrize("header, size", [("bytes=10000-", 10000), ("bytes=-0", 10000), ("bytes=0-", 0), ("bytes=-5", 0)])
def test_unsatisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    path = tmp_path_factory.mktemp("ranges") / "data.bin"
    path.write_bytes(bytes(range(256)) * 7 + b"tail")  # 1796 bytes
    app = FastAPI()
    app.get("/f")(lambda: FileResponse(path))
    return path, TestClient(app)


@settings(max_examples=150, deadline=None)
@given(first=st.one_of(st.none(), st.integers(0, 2000)), last=st.one_of(st.none(), st.integers(0, 2000)))
def test_the_same_bytes_as_starlette(peer, first, last):
    path, client = peer
    data = path.read_bytes()
    if first is None and last is None:
        return
    if first is not None and last is not None and last < first:
        return  # Starlette answers 400 for these; the RFC says ignore them, as we do
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    theirs = client.get("/f", headers={"Range": header})
    try:
        span = parse_range(header, len(data))
    except RangeNotSatisfiable:
        assert theirs.status_code == 416
        return
    assert theirs.status_code == 206
    assert theirs.headers["content-range"] == f"bytes {span[0]}-{span[1]}/{len(data)}"
    assert b"".join(read_span(path, *span, chunk=100)) == theirs.content
