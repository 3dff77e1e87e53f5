"""The JSON API in-process: search, files with Range, ids only, limits, the token, ask, upload."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mixma.errors import VideoError
from mixma.serve import ServeOptions, create_app
from tests.serve.conftest import write_clip


def client(index, assistant=None, **options) -> TestClient:
    return TestClient(create_app(index, assistant, ServeOptions(**options)), raise_server_exceptions=False)


def assert_json_error(response, status: int, text: str = "") -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and text in body["error"] and "Traceback" not in body["error"]
    return body


def test_health_says_what_is_loaded(index):
    body = client(index).get("/api/health").json()
    assert body == {"status": "ok", "model": "fake", "videos": 2, "moments": 4, "ask": False, "upload": False}


def test_search_returns_the_index_results_with_urls(index):
    api = client(index)
    body = api.get("/api/search", params={"q": "bike", "k": 5}).json()
    expected = [h.to_json() for h in index.search("bike", 5)]
    assert body["count"] == 2 and body["query"] == "bike"
    for item, want in zip(body["results"], expected, strict=True):
        assert {k: item[k] for k in want} == want  # the same items as `mixma search --json`
        assert item["video_url"] == f"/api/videos/{want['video_id']}" and item["name"] == "red bikes.mp4"
        thumb = api.get(item["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert thumb.content == Path(want["thumbnail"]).read_bytes()
    assert "/" not in item["thumbnail_url"].removeprefix("/api/thumbnails/")  # an id, not a path


def test_search_options_and_bad_queries(index):
    api = client(index, max_k=3)
    assert api.get("/api/search", params={"q": "bike rides crowd", "k": 3, "videos": "true", "per_video": 1}).json()["count"] == 1
    assert api.get("/api/search", params={"q": "submarine"}).json() == {"query": "submarine", "k": 3, "count": 0, "results": []}
    assert_json_error(api.get("/api/search", params={"q": "  "}), 400, "empty")
    assert_json_error(api.get("/api/search", params={"q": "bike", "k": 4}), 400, "k is over 3")
    assert_json_error(api.get("/api/search", params={"q": "bike", "per_video": 10**9}), 400, "per_video is over 3")
    assert_json_error(api.get("/api/search", params={"q": "x" * 501}), 400, "over 500 characters")
    assert_json_error(api.get("/api/search", params={"q": "bike", "k": "many"}), 422, "k:")
    assert_json_error(api.get("/api/search"), 422, "q:")


def test_a_video_is_served_whole_and_by_range(index, clips):
    api = client(index)
    entry = index.videos()[0]
    data = Path(clips[0]).read_bytes()
    size = len(data)
    url = f"/api/videos/{entry.video_id}"
    whole = api.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    for header, first, last in [("bytes=0-99", 0, 99), ("bytes=100-", 100, size - 1), ("bytes=-50", size - 50, size - 1),
                                (f"bytes=10-{size + 500}", 10, size - 1)]:
        part = api.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == data[first:last + 1]
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.headers["content-length"] == str(last - first + 1)
        assert part.headers["content-type"] == "video/mp4"
    past = api.get(url, headers={"Range": f"bytes={size}-"})
    assert_json_error(past, 416, "outside the file")
    assert past.headers["content-range"] == f"bytes */{size}"
    assert api.get(url, headers={"Range": "bytes=5-1"}).status_code == 200  # malformed: ignored, the whole file
    head = api.head(url, headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""


@pytest.mark.parametrize("target", [
    "/api/videos/..%2F..%2F..%2Fetc%2Fpasswd", "/api/videos/%2Fetc%2Fpasswd", "/api/videos/0123456789abcdef",
    "/api/thumbnails/..%2Fsecret.jpg", "/api/thumbnails/0123456789abcdef", "/static/..%2Fapp.py",
    "/static/%2E%2E/app.py", "/api/nothing-here"])
def test_only_indexed_files_are_served(index, target):
    response = client(index).get(target)
    assert response.status_code == 404
    assert b"import" not in response.content and b"root:" not in response.content


def test_a_traversal_answers_json_404(index):
    assert_json_error(client(index).get("/api/videos/..%2F..%2Fetc%2Fpasswd"), 404, "no such")
    assert_json_error(client(index).get("/api/videos/..%5C..%5Cwin.ini"), 404, "no such video")


def test_oversized_bodies_are_refused(index):
    api = client(index, max_body_bytes=1000)
    big = {"video_id": index.videos()[0].video_id, "question": "x" * 5000}
    assert_json_error(api.post("/api/ask", json=big), 413, "over 1000 bytes")

    def chunks():  # no Content-Length: refused once the bytes pass the limit
        yield b'{"video_id": "a", "question": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    assert_json_error(api.post("/api/ask", content=chunks(), headers={"content-type": "application/json"}), 413)


def test_the_token_guards_every_api_call(index):
    api = client(index, token="s3cret")
    assert_json_error(api.get("/api/health"), 401, "token is required")
    assert_json_error(api.get("/api/search", params={"q": "bike"}, headers={"Authorization": "Bearer nope"}), 401, "wrong token")
    assert api.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    found = api.get("/api/search", params={"q": "bike", "token": "s3cret"}).json()["results"][0]
    assert api.get(found["video_url"], params={"token": "s3cret"}).status_code == 200  # <video src> carries it in the query
    assert_json_error(api.get(found["video_url"]), 401)
    assert_json_error(api.post("/api/ask", json={"video_id": "x", "question": "?"}), 401)
    assert api.get("/").status_code == 200  # the page holds no data


def test_ask_without_a_checkpoint_says_how_to_load_one(index):
    response = client(index).post("/api/ask", json={"video_id": index.videos()[0].video_id, "question": "what colour?"})
    assert_json_error(response, 501, "--malmm")


class FakeAssistant:
    def __init__(self, delay: float = 0.0):
        self.delay, self.calls = delay, []

    def ask(self, video, question, *, clip=None):
        self.calls.append((Path(video), question, clip))
        time.sleep(self.delay)
        if clip is not None and clip[0] is not None and clip[0] > 100:
            raise VideoError(video, "the clip holds no frame")
        return type("Answer", (), {"text": f"answer to {question}"})()


def test_ask_answers_about_a_moment(index):
    assistant = FakeAssistant()
    api = client(index, assistant, max_question_chars=20)
    entry = index.videos()[0]
    body = api.post("/api/ask", json={"video_id": entry.video_id, "question": " what colour? ", "start": 1.0, "end": 2.0}).json()
    assert body["answer"] == "answer to what colour?" and (body["start"], body["end"]) == (1.0, 2.0)
    assert assistant.calls == [(entry.path, "what colour?", (1.0, 2.0))]
    api.post("/api/ask", json={"video_id": entry.video_id, "question": "why?"})
    assert assistant.calls[-1][2] is None  # no moment: the whole video
    assert_json_error(api.post("/api/ask", json={"video_id": entry.video_id, "question": "x" * 21}), 400, "over 20 characters")
    assert_json_error(api.post("/api/ask", json={"video_id": entry.video_id, "question": " "}), 400, "empty")
    assert_json_error(api.post("/api/ask", json={"video_id": "ffffffffffffffff", "question": "why?"}), 404)
    assert_json_error(api.post("/api/ask", json={"video_id": entry.video_id, "question": "why?", "start": 2, "end": 1}), 400, "after start")
    assert_json_error(api.post("/api/ask", json={"video_id": entry.video_id, "question": "why?", "start": -1}), 400)
    assert_json_error(api.post("/api/ask", json={"video_id": entry.video_id, "question": "why?", "start": 1e6}), 400, "past the video's end")
    assert_json_error(api.post("/api/ask", json={"video_id": entry.video_id}), 422, "question")
    assert_json_error(api.post("/api/ask", content=b"{not json", headers={"content-type": "application/json"}), 422)


def test_a_slow_ask_times_out_without_starving_search(index):
    assistant = FakeAssistant(delay=1.5)
    app = create_app(index, assistant, ServeOptions(ask_timeout_s=0.5, ask_workers=1, ask_queue=0))
    entry = index.videos()[0]
    with TestClient(app, raise_server_exceptions=False) as api:
        results = {}

        def slow():
            results["ask"] = api.post("/api/ask", json={"video_id": entry.video_id, "question": "why?"})

        asker = threading.Thread(target=slow)
        asker.start()
        time.sleep(0.2)  # the ask holds the only worker now
        began = time.perf_counter()
        assert api.get("/api/search", params={"q": "bike"}).status_code == 200
        assert time.perf_counter() - began < 0.4
        assert_json_error(api.post("/api/ask", json={"video_id": entry.video_id, "question": "and?"}), 503, "busy")
        asker.join()
        assert_json_error(results["ask"], 504, "no answer within 0.5 s")


def test_errors_are_json_and_each_request_is_logged_once(index, caplog):
    class Broken(type(index)):
        def search(self, *args, **kwargs):
            raise RuntimeError("secret internals")

    broken = Broken(index.folder)
    with caplog.at_level(logging.INFO, logger="mixma.serve"):
        response = client(broken, token="s3cret").get("/api/search", params={"q": "bike", "token": "s3cret"})
    body = assert_json_error(response, 500, "internal error")
    assert "secret" not in response.text and body["error"] == "internal error (see the server's log)"
    lines = [r.getMessage() for r in caplog.records if re.search(r"GET /api/search\S* \d{3} ", r.getMessage())]
    assert len(lines) == 1 and " 500 " in lines[0] and "s3cret" not in lines[0] and "q=bike" in lines[0]


def test_the_api_is_described(index):
    paths = client(index).get("/openapi.json").json()["paths"]
    assert {"/api/health", "/api/search", "/api/videos/{video_id}", "/api/thumbnails/{thumb_id}", "/api/ask",
            "/api/upload"} <= set(paths)


def test_uploads_are_off_unless_allowed(index, tmp_path, clips):
    assert_json_error(client(index).post("/api/upload?filename=a.mp4", content=Path(clips[1]).read_bytes()), 403, "--allow-upload")


def test_an_uploaded_video_is_checked_kept_and_indexed(index, tmp_path):
    uploads = tmp_path / "uploads"
    api = client(index, allow_upload=True, upload_dir=uploads, max_upload_bytes=200_000)
    clip = write_clip(tmp_path / "new.mp4", 30, 200)
    response = api.post("/api/upload", params={"filename": "my clip.mp4"}, content=clip.read_bytes())
    assert response.status_code == 201, response.text
    video = response.json()["video"]
    kept = index.added[-1]
    assert kept.parent == uploads.resolve() and kept.read_bytes() == clip.read_bytes() and kept.suffix == ".mp4"
    assert video["video_id"] == index.videos()[-1].video_id
    assert api.get("/api/search", params={"q": "uploaded"}).json()["results"][0]["video_id"] == video["video_id"]

    assert_json_error(api.post("/api/upload", params={"filename": "notes.txt"}, content=b"hello"), 415, "not a video file name")
    assert_json_error(api.post("/api/upload", params={"filename": "fake.mp4"}, content=b"\0" * 5000), 415, "not a readable video")
    assert_json_error(api.post("/api/upload", params={"filename": "big.mp4"}, content=b"\0" * 200_001), 413)
    assert_json_error(api.post("/api/upload", params={"filename": "big.mp4"}, content=iter([b"\0" * 150_000] * 2)), 413)
    assert sorted(p.name for p in uploads.iterdir()) == [kept.name]  # nothing else was kept
    assert len(index.added) == 1
