"""ASGI middleware: one log line per request, the token, and bounded request bodies.

Written as plain ASGI callables (not Starlette's BaseHTTPMiddleware) so a video streamed with
Range requests passes through untouched, and so each guard answers before the route runs.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from urllib.parse import parse_qsl, urlencode

from starlette.exceptions import HTTPException

log = logging.getLogger("mixma.serve")


async def send_json_error(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _logged_target(scope) -> str:
    """The path and query, with a token in the query hidden."""
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        pairs = [(k, "***" if k == "token" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        return f"{scope['path']}?{urlencode(pairs, safe='*/')}"
    return scope["path"]


class RequestLog:
    """`127.0.0.1 GET /api/search?q=dog 200 4.1ms 812B`: one line per request, at INFO."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began, status, sent = time.perf_counter(), [500], [0]

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                sent[0] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            client = scope.get("client") or ("-",)
            ms = (time.perf_counter() - began) * 1000
            log.info("%s %s %s %d %.1fms %dB", client[0], scope["method"], _logged_target(scope), status[0], ms, sent[0])


class TokenGuard:
    """With a token, every `/api/` request must carry it (Bearer header or `token` query)."""

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    def _given(self, scope) -> str | None:
        auth = _header(scope, b"authorization")
        if auth and auth.lower().startswith("bearer "):
            return auth[7:].strip()
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if key == "token":
                return value
        return None

    async def __call__(self, scope, receive, send):
        if self.token is None or scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        given = self._given(scope)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            message = "a token is required (Authorization: Bearer TOKEN)" if given is None else "wrong token"
            return await send_json_error(send, 401, message, {"www-authenticate": "Bearer"})
        return await self.app(scope, receive, send)


class BodyLimit:
    """Bodies over the limit answer 413: at once when Content-Length says so, else as soon as the
    bytes received pass it (a chunked body has no length). `limits` maps a path to its own limit."""

    def __init__(self, app, default: int, limits: dict[str, int] | None = None):
        self.app, self.default, self.limits = app, default, limits or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], self.default)
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                return await send_json_error(send, 400, "bad Content-Length")
            if int(length) > limit:
                return await send_json_error(send, 413, f"the request body is over {limit} bytes")
        received = [0]

        async def bounded_receive():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > limit:
                    raise HTTPException(413, f"the request body is over {limit} bytes")
            return message

        return await self.app(scope, bounded_receive, send)
