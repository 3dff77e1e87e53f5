"""Searches with the query's embedding remembered: a text searched again (a shared link, the
back button, a popular query) skips the text model, which is most of a search's cost
(benchmarks/RESULTS.md, "mixma serve under load"). Only the text → vector step is cached, never
results, so what a search finds always reflects the index as it is now."""

from __future__ import annotations

import threading
from collections import OrderedDict


class CachedSearch:
    """`index.search` with the newest `size` query vectors kept (0: no cache).

    Uses `index.model.encode_text` and `index.search_vector` (what `VideoIndex.search` is made
    of) when the index has them, else calls `index.search` as it is.
    """

    def __init__(self, index, size: int):
        self.index, self.size = index, size
        self.enabled = size > 0 and callable(getattr(index, "search_vector", None))
        self._vectors: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _vector(self, text: str):
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
                self.hits += 1
                return vector
            self.misses += 1
        vector = self.index.model.encode_text([text])[0]  # outside the lock: searches run side by side
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return vector

    def __call__(self, text: str, k: int, *, videos: bool = False, per_video: int = 3) -> list:
        if not self.enabled:
            return self.index.search(text, k, videos=videos, per_video=per_video)
        return self.index.search_vector(self._vector(text), k, videos=videos, per_video=per_video)
