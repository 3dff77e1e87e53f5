"""The HTTP service over a `VideoIndex` (and optionally a `VideoAssistant`): `create_app`.

    from mixma.index import VideoIndex
    from mixma.serve import ServeOptions, create_app
    app = create_app(VideoIndex.open("my.index"), options=ServeOptions(token="s3cret"))
    # uvicorn.run(app, host="127.0.0.1", port=8000)

URLs carry ids, never paths: a video is `/api/videos/{video_id}` (an indexed video's id), a
thumbnail `/api/thumbnails/{id}` (an id handed out with a search result), so nothing else on the
disk can be asked for. Every error is JSON `{"error": message, "status": code}`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from mixma.errors import MixmaError, VideoError
from mixma.serve.concurrency import BoundedPool, PoolBusy
from mixma.serve.middleware import BodyLimit, RequestLog, TokenGuard
from mixma.serve.options import ServeOptions
from mixma.serve.queries import CachedSearch
from mixma.serve.ranges import RangeNotSatisfiable, parse_range, read_span

log = logging.getLogger("mixma.serve")
STATIC = Path(__file__).parent / "static"
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Not left to the system's mime.types, which may not know the video types at all.
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
               ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".ogv": "video/ogg", ".ts": "video/mp2t",
               ".mpg": "video/mpeg", ".mpeg": "video/mpeg", ".wmv": "video/x-ms-wmv", ".flv": "video/x-flv"}
UPLOAD_PATH = "/api/upload"


class AskRequest(BaseModel):
    video_id: str
    question: str
    start: float | None = None  # seconds; the moment asked about (default: the whole video)
    end: float | None = None


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status, message)


class _Thumbnails:
    """Thumbnail files by id, remembered from the results handed out (the newest `kept`)."""

    def __init__(self, kept: int):
        self._paths: OrderedDict[str, Path] = OrderedDict()
        self._kept = kept
        self._lock = threading.Lock()

    def register(self, path: Path) -> str:
        key = hashlib.sha1(os.fsencode(path)).hexdigest()[:16]
        with self._lock:
            self._paths[key] = Path(path)
            self._paths.move_to_end(key)
            while len(self._paths) > self._kept:
                self._paths.popitem(last=False)
        return key

    def get(self, key: str) -> Path | None:
        with self._lock:
            return self._paths.get(key)


class _Service:
    """The routes' shared state: the index, the model, the pools, and what they are allowed."""

    def __init__(self, index, assistant, options: ServeOptions):
        self.index, self.assistant, self.options = index, assistant, options
        self.upload_lock = threading.Lock()
        self.thumbnails = _Thumbnails(options.thumbnails_kept)
        self.pool = BoundedPool(options.ask_workers, options.ask_queue, options.ask_timeout_s)
        self.search = CachedSearch(index, options.query_cache)
        self.search_slots = anyio.CapacityLimiter(options.search_workers)

    def entry(self, video_id: str):
        if not ID.match(video_id):
            raise _error(404, "no such video")
        try:
            return self.index.video(video_id)
        except KeyError:
            raise _error(404, f"no video with id {video_id!r}") from None

    def hit_json(self, hit) -> dict[str, Any]:
        item = hit.to_json()
        item["name"] = Path(hit.path).name
        item["video_url"] = f"/api/videos/{hit.video_id}"
        item["thumbnail_url"] = None if hit.thumbnail is None else f"/api/thumbnails/{self.thumbnails.register(hit.thumbnail)}"
        return item

    def entry_json(self, entry) -> dict[str, Any]:
        return {"video_id": entry.video_id, "name": Path(entry.path).name, "duration": entry.duration,
                "num_moments": entry.num_moments, "video_url": f"/api/videos/{entry.video_id}"}


def _install_errors(app: FastAPI) -> None:
    """JSON errors everywhere, the traceback only in the server's log."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such resource: {request.url.path}"
        return JSONResponse({"error": message, "status": exc.status_code}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        return JSONResponse({"error": message, "status": 422}, 422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error (see the server's log)", "status": 500}, 500)


def create_app(index, assistant=None, options: ServeOptions = ServeOptions()) -> FastAPI:
    """The service's ASGI app (run it with uvicorn).

    Args:
        index: a `mixma.index.VideoIndex` (or anything with its `search`, `video`, `videos`,
            `add`, `len` and `model_name`).
        assistant: a `mixma.inference.VideoAssistant` for `/api/ask`; None answers 501.
        options: limits and switches (`ServeOptions`).

    Raises:
        ValueError: an upload folder inside the index folder (its files would never be indexed).
    """
    root = getattr(index, "path", None)
    if options.allow_upload and root is not None and Path(options.upload_dir).resolve().is_relative_to(Path(root).resolve()):
        raise ValueError(f"the upload folder {options.upload_dir} is inside the index folder, which the index never "
                         "takes files from: choose another")
    service = _Service(index, assistant, options)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        service.pool.shutdown()

    app = FastAPI(title="mixma", summary="Search a video collection, watch the moments found, ask about them.",
                  version="0.1.0", docs_url="/docs", redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan)
    app.state.service = service
    _install_errors(app)
    _routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # the last added runs first: log, then the token, then the body's size
    app.add_middleware(BodyLimit, default=options.max_body_bytes, limits={UPLOAD_PATH: options.max_upload_bytes})
    app.add_middleware(TokenGuard, token=options.token)
    app.add_middleware(RequestLog)
    return app


def _routes(app: FastAPI, service: _Service) -> None:
    options = service.options

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"cache-control": "no-cache"})

    @app.get("/api/health", summary="What is loaded")
    def health():
        videos, moments = service.index.num_videos(), len(service.index)
        return {"status": "ok", "model": service.index.model_name, "videos": videos, "moments": moments,
                "ask": service.assistant is not None, "upload": options.allow_upload}

    @app.get("/api/search", summary="Moments matching a text, best first")
    async def search(q: str = Query(..., description="what to look for"),
               k: int | None = Query(None, ge=1, description="how many results (default 10)"),
               videos: bool = Query(False, description="at most `per_video` results per video"),
               per_video: int = Query(3, ge=1)):
        text = q.strip()
        if not text:
            raise _error(400, "the query is empty")
        if len(text) > options.max_query_chars:
            raise _error(400, f"the query is over {options.max_query_chars} characters")
        k = min(10, options.max_k) if k is None else k
        if k > options.max_k or per_video > options.max_k:  # both size the index's candidate list
            raise _error(400, f"{'k' if k > options.max_k else 'per_video'} is over {options.max_k}")
        try:
            hits = await anyio.to_thread.run_sync(partial(service.search, text, k, videos=videos, per_video=per_video),
                                                  limiter=service.search_slots)
        except (MixmaError, ValueError) as exc:
            raise _error(400, str(exc).splitlines()[0]) from None
        return {"query": text, "k": k, "count": len(hits), "results": [service.hit_json(h) for h in hits]}

    @app.get("/api/videos", summary="Every indexed video")
    def list_videos():
        entries = service.index.videos()
        return {"count": len(entries), "videos": [service.entry_json(e) for e in entries]}

    @app.get("/api/videos/{video_id}", summary="An indexed video's file (Range requests answered 206)")
    @app.head("/api/videos/{video_id}", include_in_schema=False)
    def video(video_id: str, request: Request):
        return _file_response(service.entry(video_id).path, request)

    @app.get("/api/thumbnails/{thumb_id}", summary="A result's thumbnail (JPEG)")
    def thumbnail(thumb_id: str):
        path = service.thumbnails.get(thumb_id) if ID.match(thumb_id) else None
        if path is None or not path.is_file():
            raise _error(404, "no such thumbnail")
        return FileResponse(path, media_type="image/jpeg", headers={"cache-control": "max-age=3600"})

    @app.post("/api/ask", summary="Ask MA-LMM about a video, or a moment of it")
    async def ask(body: AskRequest):
        if service.assistant is None:
            raise _error(501, "no MA-LMM is loaded: start `mixma serve INDEX --malmm RUN` to ask questions")
        question = body.question.strip()
        if not question:
            raise _error(400, "the question is empty")
        if len(question) > options.max_question_chars:
            raise _error(400, f"the question is over {options.max_question_chars} characters")
        entry = await run_in_threadpool(service.entry, body.video_id)
        clip = _clip(body.start, body.end, entry.duration)
        began = time.perf_counter()
        try:
            answer = await service.pool.run(service.assistant.ask, entry.path, question, clip=clip)
        except PoolBusy:
            raise _error(503, "the model is busy with other questions: try again in a moment") from None
        except TimeoutError:
            raise _error(504, f"no answer within {options.ask_timeout_s:g} s") from None
        except (MixmaError, ValueError) as exc:
            raise _error(422, str(exc).splitlines()[0]) from None
        return {"answer": answer.text, "video_id": entry.video_id, "start": clip and clip[0], "end": clip and clip[1],
                "question": question, "seconds": round(time.perf_counter() - began, 3)}

    @app.post(UPLOAD_PATH, summary="Add a video to the index (with --allow-upload); the body is the file")
    async def upload(request: Request, filename: str = Query(..., description="the file's name (for its type)")):
        if not options.allow_upload:
            raise _error(403, "uploads are off: start `mixma serve` with --allow-upload")
        suffix = Path(filename).suffix.lower()
        if suffix not in VIDEO_TYPES:
            raise _error(415, f"{filename!r} is not a video file name ({', '.join(sorted(VIDEO_TYPES))})")
        kept = await _receive_video(request, options, suffix)
        entry = await run_in_threadpool(_add, service, kept)
        return JSONResponse({"video": service.entry_json(entry)}, 201)


def _clip(start: float | None, end: float | None, duration: float) -> tuple[float | None, float | None] | None:
    if start is None and end is None:
        return None
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise _error(400, f"{name} must be a time in seconds, at least 0")
    if start is not None and end is not None and end <= start:
        raise _error(400, "end must be after start")
    if start is not None and duration and start >= duration:
        raise _error(400, f"start is past the video's end ({duration:.2f} s)")
    return start, end


def _file_response(path: Path, request: Request) -> Response:
    """A file with one byte range answered (206), or all of it; 416 past its end."""
    try:
        size = os.stat(path).st_size
    except OSError:
        raise _error(404, "the video's file is gone") from None
    headers = {"accept-ranges": "bytes", "content-type": VIDEO_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")}
    try:
        span = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        raise HTTPException(416, f"the range is outside the file ({size} bytes)", headers={"content-range": f"bytes */{size}"}) from None
    first, last, status = (0, size - 1, 200) if span is None else (*span, 206)
    headers["content-length"] = str(last - first + 1 if size else 0)
    if status == 206:
        headers["content-range"] = f"bytes {first}-{last}/{size}"
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers)
    return StreamingResponse(read_span(path, first, last), status_code=status, headers=headers)


async def _receive_video(request: Request, options: ServeOptions, suffix: str) -> Path:
    """The body written into the upload folder, checked as a video, kept under its content's hash."""
    folder = Path(options.upload_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=suffix, dir=folder)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > options.max_upload_bytes:
                    raise _error(413, f"the upload is over {options.max_upload_bytes} bytes")
                digest.update(chunk)
                f.write(chunk)
        if size == 0:
            raise _error(400, "the upload is empty")
        from mixma.video.reader import probe

        try:
            await run_in_threadpool(probe, tmp)
        except VideoError as exc:
            raise _error(415, f"not a readable video: {exc.reason}") from None
        kept = folder / f"{digest.hexdigest()[:16]}{suffix}"
        os.replace(tmp, kept)
        return kept.resolve()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _add(service: _Service, path: Path):
    with service.upload_lock:  # one upload at a time; the index answers searches meanwhile
        service.index.add([path])
        entries = [e for e in service.index.videos() if Path(e.path) == path]
    if not entries:
        raise _error(422, "the video could not be indexed (see the server's log)")
    return entries[0]
