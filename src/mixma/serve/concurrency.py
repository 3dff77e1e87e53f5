"""The pool model calls run on.

Searches run on the server's thread pool (the index is safe to search, and to add to, from
several threads); model calls run on their own small pool, so a slow `ask` occupies only that
pool and can never starve `search`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class PoolBusy(Exception):
    """Every worker is busy and the queue is full."""


class BoundedPool:
    """Blocking calls on `workers` threads, with at most `queue` more waiting, each awaited for at
    most `timeout_s` seconds (`TimeoutError`; the call itself cannot be interrupted and keeps its
    slot until it returns)."""

    def __init__(self, workers: int, queue: int, timeout_s: float, name: str = "mixma-ask"):
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(workers + queue)
        self.timeout_s = timeout_s

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._slots.acquire(blocking=False):
            raise PoolBusy
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
