"""Every default of the service, in one typed dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServeOptions:
    """What `create_app` allows and bounds.

    Args:
        token: when set, every `/api/` request must carry it (`Authorization: Bearer TOKEN`, or
            `?token=TOKEN` for the page's `<video>` and `<img>` elements, which cannot send headers).
        max_body_bytes: largest request body outside uploads (an ask is a few hundred bytes).
        max_query_chars, max_question_chars: longest search text and question.
        max_k: most results one search returns.
        ask_workers: model calls running at once (one model on the CPU: more only contend).
        ask_queue: asks that may wait for a worker; beyond that an ask answers 503 at once.
        ask_timeout_s: an ask not answered by then answers 504 (the call finishes in the background
            and keeps its worker: the queue bound, not the timeout, caps the work in flight).
        allow_upload: accept `POST /api/upload` (a video, kept in `upload_dir`, then indexed).
        upload_dir: where uploaded videos are kept (required with `allow_upload`).
        max_upload_bytes: largest upload.
        thumbnails_kept: thumbnail ids remembered from recent results (their URLs resolve to files).
        search_workers: searches running at once; the others wait their turn in order (more
            threads than cores only share the CPU and the GIL, which stretches every search).
        query_cache: query embeddings remembered (4 KB each for the default model), so a text
            searched again skips the text model; 0 turns the cache off.
        torch_threads: torch's threads per model call, set by `mixma serve` for the process:
            concurrent requests are the parallelism, and intra-op threads only contend with them
            (a query's text encoding on 2 busy cores: 19 ms with 1 thread, 152 ms with 2).
    """

    token: str | None = None
    max_body_bytes: int = 64 * 1024
    max_query_chars: int = 500
    max_question_chars: int = 1000
    max_k: int = 100
    ask_workers: int = 1
    ask_queue: int = 4
    ask_timeout_s: float = 120.0
    allow_upload: bool = False
    upload_dir: Path | None = None
    max_upload_bytes: int = 512 * 1024 * 1024
    thumbnails_kept: int = 100_000
    search_workers: int = 4
    query_cache: int = 4096
    torch_threads: int = 1

    def __post_init__(self):
        for name in ("max_body_bytes", "max_query_chars", "max_question_chars", "max_k", "ask_workers",
                     "max_upload_bytes", "thumbnails_kept", "torch_threads", "search_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("ask_queue", "query_cache"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)}")
        if self.ask_timeout_s <= 0:
            raise ValueError(f"ask_timeout_s must be positive, got {self.ask_timeout_s}")
        if self.token is not None and not self.token.strip():
            raise ValueError("the token is empty")
        if self.allow_upload and self.upload_dir is None:
            raise ValueError("allow_upload needs an upload_dir")
