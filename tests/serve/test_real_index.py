"""The service over a real `mixma.index` index (built here from two small clips), and the
`mixma serve` command started as a user starts it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from mixma.cli import main
from mixma.serve import ServeOptions, create_app
from mixma.serve.run import bind
from tests.serve.conftest import write_clip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory, clips):
    from mixma.index import build_index

    out = tmp_path_factory.mktemp("real") / "videos.index"
    build_index(list(clips), out, progress=False)
    return out


@pytest.fixture(scope="module")
def index(built):
    from mixma.index import VideoIndex

    return VideoIndex.open(built)


def test_search_answers_what_the_index_answers(index):
    api = TestClient(create_app(index))
    health = api.get("/api/health").json()
    assert (health["videos"], health["moments"], health["model"]) == (2, len(index), index.model_name)
    body = api.get("/api/search", params={"q": "a bicycle", "k": 5}).json()
    expected = [h.to_json() for h in index.search("a bicycle", 5)]
    assert body["count"] == len(expected) > 0
    for item, want in zip(body["results"], expected, strict=True):
        assert {k: item[k] for k in want} == want
        assert api.get(item["thumbnail_url"]).content == Path(want["thumbnail"]).read_bytes()
        part = api.get(item["video_url"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == Path(want["path"]).read_bytes()[:100]
    assert api.get("/api/search", params={"q": "a bicycle", "videos": "true"}).json()["count"] == 2


def test_an_upload_is_indexed_and_found(built, tmp_path):
    from mixma.index import VideoIndex

    copy = tmp_path / "copy.index"  # the other tests keep the module's index as built
    shutil.copytree(built, copy)
    index = VideoIndex.open(copy)
    before = len(index.videos())
    api = TestClient(create_app(index, options=ServeOptions(allow_upload=True, upload_dir=tmp_path / "up")))
    clip = write_clip(tmp_path / "x.mp4", 60, 150)
    response = api.post("/api/upload", params={"filename": "holiday.mp4"}, content=clip.read_bytes())
    assert response.status_code == 201, response.text
    video = response.json()["video"]
    assert api.get("/api/health").json()["videos"] == before + 1
    assert api.get(f"/api/videos/{video['video_id']}").content == clip.read_bytes()
    found = api.get("/api/search", params={"q": "a bicycle", "k": 50}).json()["results"]
    assert video["video_id"] in {h["video_id"] for h in found}  # searchable at once


def test_the_command_fails_in_one_line(capsys, tmp_path, built):
    assert main(["serve", str(tmp_path / "missing.index")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such index folder" in err and len(err.splitlines()) == 1
    taken = bind("127.0.0.1", 0)
    try:
        port = str(taken.getsockname()[1])
        assert main(["serve", str(built), "--port", port]) == 2
        assert "error: cannot listen on 127.0.0.1:" in capsys.readouterr().err
        assert main(["serve", str(built), "--host", "0.0.0.0", "--port", port]) == 2
        err = capsys.readouterr().err
        assert "warning: listening on 0.0.0.0 without --token" in err and "error: cannot listen on 0.0.0.0:" in err
    finally:
        taken.close()


def test_the_command_serves_until_stopped(built):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "mixma", "serve", str(built), "--port", "0", "--token", "t0k"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url, began = None, time.monotonic()
        while url is None and time.monotonic() - began < 60:
            line = proc.stderr.readline()
            match = re.search(r"open (http://127\.0\.0\.1:\d+/)\?token=t0k", line)
            url = match and match.group(1)
            assert line or proc.poll() is None, "mixma serve exited"
        for _ in range(100):
            try:
                response = httpx.get(url + "api/health", headers={"Authorization": "Bearer t0k"})
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert response.json()["videos"] == 2
        assert httpx.get(url + "api/health").status_code == 401
        assert "<title>" in httpx.get(url).text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert re.search(r"127\.0\.0\.1 GET /api/health 200 [\d.]+ms", err)  # one line per request


def test_a_remembered_query_finds_the_same_without_the_text_model(index, monkeypatch):
    from mixma.serve.queries import CachedSearch

    calls = []
    encode = index.model.encode_text
    monkeypatch.setattr(index.model, "encode_text", lambda texts: calls.append(texts) or encode(texts))
    cached = CachedSearch(index, size=2)
    for text, videos in [("a bicycle", False), ("a dog", True), ("a bicycle", True), ("a bicycle", False)]:
        assert cached(text, 5, videos=videos) == index.search(text, 5, videos=videos)
    assert (cached.hits, cached.misses) == (2, 2)
    calls.clear()
    cached("a cat", 5)  # a third text: the least recently searched ("a dog") goes
    cached("a bicycle", 5)
    cached("a dog", 5)
    assert calls == [["a cat"], ["a dog"]]


def test_without_search_vector_the_index_searches_as_it_is(tmp_path):
    from mixma.serve.queries import CachedSearch
    from tests.serve.fake_index import FakeIndex

    cached = CachedSearch(FakeIndex(tmp_path), size=10)
    assert not cached.enabled and cached("anything", 3) == []


def test_uploads_are_kept_beside_the_index_and_indexed(built, tmp_path):
    """Not inside it: the index takes in no file from its own folder."""
    from mixma.cli.serve import default_upload_dir
    from mixma.index import VideoIndex

    copy = tmp_path / "my.index"
    shutil.copytree(built, copy)
    uploads = default_upload_dir(copy)
    assert uploads == tmp_path / "my.index-uploads"
    api = TestClient(create_app(VideoIndex.open(copy), options=ServeOptions(allow_upload=True, upload_dir=uploads)))
    response = api.post("/api/upload", params={"filename": "a.mp4"}, content=write_clip(tmp_path / "a.mp4", 40, 70).read_bytes())
    assert response.status_code == 201, response.text
    with pytest.raises(ValueError, match="inside the index folder"):
        create_app(VideoIndex.open(copy), options=ServeOptions(allow_upload=True, upload_dir=copy / "uploads"))
