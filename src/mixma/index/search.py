"""`VideoIndex`: open an index folder and search it by text.

A query is embedded by the index's own model; the vector engine returns the best moments (a few
times `k`, so that merging and the per-video cap still leave `k`); hits of one video whose spans
touch and whose scores are close are merged into one moment (`merge_adjacent`); at most `per_video` moments
per video are kept. `videos=True` ranks whole videos by their whole-video vectors instead.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np

from mixma.index import store
from mixma.index import vectors as engine
from mixma.index.models import MomentModel, load_model, model_name
from mixma.index.options import IndexOptions
from mixma.index.types import BuildSummary, Hit, VideoEntry

GAP = 1e-3  # seconds: spans closer than this touch
MERGE_RATIO = 0.8  # a touching hit joins a moment when it scores at least this share of the moment's best
CANDIDATES = 8  # the engine is asked for max(64, CANDIDATES * k * per_video) moments


def merge_adjacent(hits: list[tuple[int, float, float, float]], ratio: float = MERGE_RATIO,
                   gap: float = GAP) -> list[tuple[float, float, float]]:
    """One video's hits `(n, start, end, score)` → moments `(start, end, score)`, best first.

    The best hit not yet taken seeds a moment, which grows over the hits that touch it on either
    side while they score at least `ratio` times the seed (the same thing, still going on); the
    moment keeps the seed's score. Hits that touch but score much lower stay apart.
    """
    ordered = sorted(hits, key=lambda h: (h[1], h[2]))
    taken = [False] * len(ordered)
    out = []
    for seed in sorted(range(len(ordered)), key=lambda i: (-ordered[i][3], i)):
        if taken[seed]:
            continue
        taken[seed] = True
        lo = hi = seed
        floor = ratio * ordered[seed][3]
        while lo > 0 and not taken[lo - 1] and ordered[lo - 1][2] >= ordered[lo][1] - gap and ordered[lo - 1][3] >= floor:
            lo -= 1
            taken[lo] = True
        while hi + 1 < len(ordered) and not taken[hi + 1] and ordered[hi + 1][1] <= ordered[hi][2] + gap \
                and ordered[hi + 1][3] >= floor:
            hi += 1
            taken[hi] = True
        out.append((ordered[lo][1], ordered[hi][2], ordered[seed][3]))
    return out


class VideoIndex:
    """A built index folder (see `mixma.index.store` for its layout)."""

    def __init__(self, folder: store.IndexFolder, descriptor: dict, model: MomentModel | None):
        self.folder, self.descriptor = folder, descriptor
        self._model = model
        self._engine = None
        self._lock = threading.Lock()  # the service searches from several threads
        self._readers = threading.local()  # one reading connection per thread, kept open

    def _db(self):
        """This thread's reading connection to the store (WAL: each query sees the latest commit,
        so a reader opened before an `add` sees what it added)."""
        db = getattr(self._readers, "db", None)
        if db is None:
            db = self._readers.db = store.connect(self.folder.db_path, read_only=True)
        return db

    @classmethod
    def open(cls, path: str | os.PathLike, *, model: str | MomentModel | None = None) -> VideoIndex:
        """Open an index folder.

        Args:
            path: the folder `build_index` / `mixma index` wrote.
            model: the query model; None uses the one the index was built with. A model that
                does not match the index (another name or other weights) is refused.

        Raises:
            MixmaError: not an index, another format version, or a mismatching model.
        """
        folder = store.IndexFolder(path)
        desc = folder.read_descriptor()
        if isinstance(model, str):
            if model_name(model) != desc["model"]:
                raise store.IndexFolderError(f"{folder.root}: built with model {desc['model']}, not {model_name(model)}")
            model = None
        if model is not None and model.name != desc["model"]:
            raise store.IndexFolderError(f"{folder.root}: built with model {desc['model']}, not {model.name}")
        index = cls(folder, desc, model)
        if model is not None:
            store.check_same(desc, {}, model.fingerprint(), folder.root)
        return index

    # -- what it holds ----------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.descriptor["model"]

    @property
    def options(self) -> dict:
        return dict(self.descriptor["options"])

    @property
    def path(self) -> Path:
        return self.folder.root

    @property
    def model(self) -> MomentModel:
        """The query model, loaded on first use and checked against the index's fingerprint."""
        with self._lock:
            if self._model is None:
                model = load_model(self.model_name, pool=self.options.get("pool", "max"), cache_dir=self.folder.root)
                store.check_same(self.descriptor, {}, model.fingerprint(), self.folder.root)
                self._model = model
            return self._model

    def __len__(self) -> int:
        db = self._db()
        return db.execute("SELECT COUNT(*) FROM moments").fetchone()[0]

    def num_videos(self) -> int:
        """How many videos the index holds (one COUNT, not a listing)."""
        return self._db().execute("SELECT COUNT(*) FROM videos").fetchone()[0]

    def videos(self) -> list[VideoEntry]:
        db = self._db()
        rows = db.execute("SELECT video_id, path, duration, num_moments FROM videos ORDER BY path").fetchall()
        return [VideoEntry(v, Path(p), float(d), int(n)) for v, p, d, n in rows]

    def video(self, video_id: str) -> VideoEntry:
        db = self._db()
        row = db.execute("SELECT video_id, path, duration, num_moments FROM videos WHERE video_id = ?",
                         (video_id,)).fetchone()
        if row is None:
            raise KeyError(video_id)
        return VideoEntry(row[0], Path(row[1]), float(row[2]), int(row[3]))

    # -- the engine -------------------------------------------------------------------------

    def engine(self):
        """The faiss index, rebuilt from SQLite when it is missing or older than the store."""
        with self._lock:
            db = self._db()
            gen = store.generation(db)
            if self._engine is not None and self._engine[1].get("generation") == gen:
                return self._engine[0]
            info = None
            if self.folder.faiss_path.exists() and self.folder.faiss_info_path.exists():
                import json  # noqa: PLC0415

                info = json.loads(self.folder.faiss_info_path.read_text())
            if info is not None and info.get("generation") == gen:
                index = engine.load(self.folder.faiss_path)
                if info.get("nprobe"):
                    import faiss  # noqa: PLC0415

                    faiss.extract_index_ivf(index).nprobe = info["nprobe"]
            else:
                index, info = store.rebuild_engine(self.folder, self.descriptor["dim"],
                                                   write=os.access(self.folder.root, os.W_OK))
            self._engine = (index, info)
            return index

    # -- search -----------------------------------------------------------------------------

    def search(self, text: str, k: int = 10, *, videos: bool = False, per_video: int = 3) -> list[Hit]:
        """The `k` best moments (or videos) for a text query, best first (see the module docstring).

        Raises:
            ValueError: empty text, `k` or `per_video` below 1.
        """
        if not text or not text.strip():
            raise ValueError("the query is empty")
        if k < 1 or per_video < 1:
            raise ValueError("k and per_video must be >= 1")
        query = self.model.encode_text([text.strip()])[0]
        return self.search_vector(query, k, videos=videos, per_video=per_video)

    def search_vector(self, query: np.ndarray, k: int = 10, *, videos: bool = False, per_video: int = 3) -> list[Hit]:
        """`search` with an already embedded query `[D]`."""
        if videos:
            return self._search_videos(query, k)
        index = self.engine()
        wanted = max(64, CANDIDATES * k * per_video)
        scores, ids = engine.search(index, query[None], wanted)
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        if not found:
            return []
        rows = self._moments([i for i, _ in found])
        by_video: dict[str, list] = defaultdict(list)
        for moment_id, score in found:
            vid, n, start, end, _ = rows[moment_id]
            by_video[vid].append((n, start, end, score))
        entries = self._entries(list(by_video))
        hits = []
        for vid, parts in by_video.items():
            for start, end, score in merge_adjacent(parts)[:per_video]:
                thumb = _best_thumbnail(rows, vid, start, end, found)
                hits.append(Hit(vid, entries[vid], start, end, score, None if thumb is None else self.folder.root / thumb))
        hits.sort(key=lambda h: (-h.score, str(h.path), h.start))
        return hits[:k]

    def _search_videos(self, query: np.ndarray, k: int) -> list[Hit]:
        db = self._db()
        rows = db.execute("SELECT video_id, path, duration, num_moments, vector FROM videos").fetchall()
        if not rows:
            return []
        matrix = np.stack([np.frombuffer(r[4], np.float32) for r in rows])
        scores = matrix @ query
        order = np.argsort(-scores, kind="stable")[:k]
        # One query for every hit's thumbnail (its middle moment's) instead of one per hit.
        wanted = [(rows[i][0], int(rows[i][3]) // 2) for i in order]
        thumbs = {}
        for start in range(0, len(wanted), 200):  # chunks: SQLite caps an expression's depth at 1000
            part = wanted[start:start + 200]
            marks = " OR ".join("(video_id = ? AND n = ?)" for _ in part)
            for v, n, t in db.execute(f"SELECT video_id, n, thumbnail FROM moments WHERE {marks}",
                                      [x for pair in part for x in pair]):
                thumbs[(v, n)] = t
        hits = []
        for i, key in zip(order, wanted):
            vid, path, duration, _ = rows[i][:4]
            thumb = thumbs.get(key)
            hits.append(Hit(vid, Path(path), 0.0, float(duration), float(scores[i]),
                            None if thumb is None else self.folder.root / thumb))
        return hits

    def _moments(self, ids: list[int]) -> dict[int, tuple]:
        db = self._db()
        out = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for row in db.execute(f"SELECT id, video_id, n, start, end, thumbnail FROM moments WHERE id IN ({marks})",
                                  part):
                out[row[0]] = row[1:]
        return out

    def _entries(self, vids: list[str]) -> dict[str, Path]:
        db = self._db()
        marks = ",".join("?" * len(vids))
        return {v: Path(p) for v, p in db.execute(f"SELECT video_id, path FROM videos WHERE video_id IN ({marks})",
                                                  vids)}

    # -- updating ---------------------------------------------------------------------------

    def add(self, paths, *, progress: bool = False) -> BuildSummary:
        """Index new (or changed) files into this index, with its own model and options."""
        from mixma.index.build import build_index  # noqa: PLC0415

        stored = {k: v for k, v in self.options.items() if k in IndexOptions.__dataclass_fields__}
        summary = build_index(paths, self.folder.root, IndexOptions(**stored), progress=progress, model=self.model)
        with self._lock:
            self._engine = None
        return summary


def _best_thumbnail(rows: dict[int, tuple], vid: str, start: float, end: float, found: list) -> str | None:
    """The thumbnail of the best-scoring moment inside a merged span."""
    for moment_id, _ in found:  # best first
        v, _, a, b, thumb = rows[moment_id]
        if v == vid and a >= start - GAP and b <= end + GAP:
            return thumb
    return None
