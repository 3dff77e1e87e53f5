"""How the service's threads share the model and the index.

Searches run on the server's thread pool; model calls run on their own small pool, so a slow
`ask` occupies only that pool and can never starve `search`. An upload's `index.add` excludes
searches while it changes the index (a readers-writer lock), as the index is not documented as
safe to change while it is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
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


class ReadWriteLock:
    """Many readers at once, or one writer; a waiting writer holds off new readers."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
