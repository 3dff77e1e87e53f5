"""The index folder: self-describing, incremental, crash-safe.

```
INDEX/
  index.json        format, version, model name + fingerprint, vector size, the options that shaped it
  meta.sqlite       videos (path, size, mtime, sha256, duration, whole-video vector) and moments
                    (video, start, end, thumbnail, vector); the source of truth
  moments.faiss     the vector engine's index over the moments' vectors, ids = moment row ids
  moments.json      what moments.faiss holds: factory, nprobe, count, and the store generation it
                    was built from (stale after an interrupted run: rebuilt on open)
  thumbs/<video_id>/<n>.jpg
  concept_texts.npz the concept bank's class-name embeddings (default model only; a cache)
```

Each video is written in one SQLite transaction after its thumbnails are on disk, so an
interrupted build keeps every video it finished and never points at a missing file; every change
bumps `generation`, and `moments.faiss` is rewritten atomically from SQLite afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mixma._atomic import atomic_path, write_bytes, write_json
from mixma.errors import MixmaError

FORMAT = "mixma-index"
VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER, mtime REAL, sha256 TEXT,
    duration REAL, num_moments INTEGER, vector BLOB);
CREATE TABLE IF NOT EXISTS moments (
    id INTEGER PRIMARY KEY, video_id TEXT NOT NULL, n INTEGER, start REAL, end REAL, thumbnail TEXT, vector BLOB);
CREATE INDEX IF NOT EXISTS moments_video ON moments(video_id, n);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class IndexFolderError(MixmaError):
    """Not an index folder, another format version, or a model that does not match it."""


def video_id(path: str | os.PathLike) -> str:
    """16 hex digits of a hash of the absolute path: stable and URL-safe."""
    return hashlib.sha1(os.fspath(Path(path).resolve()).encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def connect(path: str | os.PathLike, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to a store; a writer also sets WAL mode and creates the schema if missing.
    A reader does neither (a built store has both), so opening one costs no writes."""
    db = sqlite3.connect(os.fspath(path), timeout=60)
    if read_only:
        db.execute("PRAGMA query_only=ON")
        return db
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


class IndexFolder:
    """Paths and descriptor of an index folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.descriptor_path = self.root / "index.json"
        self.db_path = self.root / "meta.sqlite"
        self.faiss_path = self.root / "moments.faiss"
        self.faiss_info_path = self.root / "moments.json"
        self.thumbs = self.root / "thumbs"
        self.shards = self.root / "shards"

    # -- the descriptor ---------------------------------------------------------------------

    def read_descriptor(self) -> dict:
        if not self.root.is_dir():
            raise IndexFolderError(f"{self.root}: no such index folder")
        if not self.descriptor_path.is_file():
            raise IndexFolderError(f"{self.root}: not a mixma index (no index.json; build one with `mixma index`)")
        try:
            desc = json.loads(self.descriptor_path.read_text())
        except ValueError as exc:
            raise IndexFolderError(f"{self.descriptor_path}: unreadable ({exc})") from None
        if desc.get("format") != FORMAT:
            raise IndexFolderError(f"{self.root}: not a mixma index (format {desc.get('format')!r})")
        if desc.get("version") != VERSION:
            raise IndexFolderError(f"{self.root}: index format version {desc.get('version')} (this mixma reads {VERSION}); "
                              "rebuild it with `mixma index`")
        return desc

    def create_or_check(self, options: dict, model_name: str, fingerprint: str, dim: int) -> dict:
        """Write the descriptor of a new index, or check an existing one agrees with these options.

        Raises:
            IndexFolderError: the folder exists and is something else, or was built differently.
        """
        if self.descriptor_path.exists():
            desc = self.read_descriptor()
            check_same(desc, options, fingerprint, self.root)
            return desc
        if self.root.exists() and any(self.root.iterdir()):
            raise IndexFolderError(f"{self.root}: exists and is not a mixma index; choose a new folder")
        from mixma import __version__  # noqa: PLC0415

        desc = {"format": FORMAT, "version": VERSION, "mixma": __version__, "model": model_name,
                "fingerprint": fingerprint, "dim": int(dim), "metric": "inner_product", "options": options}
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.descriptor_path, desc)
        return desc

    # -- the metadata store -----------------------------------------------------------------

    @contextlib.contextmanager
    def db(self, path: Path | None = None) -> Iterator[sqlite3.Connection]:
        db = connect(path or self.db_path)
        try:
            yield db
        finally:
            db.close()

    def thumb_dir(self, vid: str) -> Path:
        return self.thumbs / vid


def check_same(desc: dict, options: dict, fingerprint: str, root: Path) -> None:
    """An existing index agrees with the options and model of a new run or query."""
    if desc.get("fingerprint") != fingerprint:
        raise IndexFolderError(f"{root}: built with model {desc.get('model')} ({desc.get('fingerprint')}); "
                          f"this model is {fingerprint}: use another index folder")
    stored = desc.get("options", {})
    differ = [k for k, v in options.items() if k in stored and stored[k] != v]
    if differ:
        shown = ", ".join(f"{k}={stored[k]!r} (not {options[k]!r})" for k in differ)
        raise IndexFolderError(f"{root}: built with {shown}; use the same options or another index folder")


def generation(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return int(row[0]) if row else 0


def bump(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO meta(key, value) VALUES ('generation', '1') "
               "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")


def blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def write_video(db: sqlite3.Connection, folder: IndexFolder, path: Path, stat: tuple[int, float], sha256: str,
                moments) -> int:
    """Store one embedded video (thumbnails first, then one transaction); returns its moments."""
    vid = video_id(path)
    thumbs = folder.thumb_dir(vid)
    staging = thumbs.with_name(f".{vid}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for n, data in enumerate(moments.thumbnails):
        write_bytes(staging / f"{n}.jpg", data)
    shutil.rmtree(thumbs, ignore_errors=True)
    os.replace(staging, thumbs)
    with db:
        db.execute("DELETE FROM moments WHERE video_id = ?", (vid,))
        db.execute("DELETE FROM videos WHERE video_id = ? OR path = ?", (vid, str(path)))
        db.execute("INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (vid, str(path), stat[0], stat[1], sha256, moments.duration, len(moments.spans),
                    blob(moments.video_vector)))
        db.executemany("INSERT INTO moments(video_id, n, start, end, thumbnail, vector) VALUES (?, ?, ?, ?, ?, ?)",
                       [(vid, n, float(a), float(b), f"thumbs/{vid}/{n}.jpg", blob(v))
                        for n, ((a, b), v) in enumerate(zip(moments.spans, moments.vectors))])
        bump(db)
    return len(moments.spans)


def remove_video(db: sqlite3.Connection, folder: IndexFolder, vid: str) -> None:
    with db:
        db.execute("DELETE FROM moments WHERE video_id = ?", (vid,))
        db.execute("DELETE FROM videos WHERE video_id = ?", (vid,))
        bump(db)
    shutil.rmtree(folder.thumb_dir(vid), ignore_errors=True)


def touch_video(db: sqlite3.Connection, vid: str, stat: tuple[int, float], sha256: str | None) -> None:
    """A file whose content is unchanged got a new mtime: remember it, keep its vectors."""
    with db:
        db.execute("UPDATE videos SET size = ?, mtime = ?, sha256 = COALESCE(?, sha256) WHERE video_id = ?",
                   (stat[0], stat[1], sha256, vid))


def all_vectors(db: sqlite3.Connection, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Every moment's (ids `[n]`, vectors `[n, dim]`), in id order."""
    count = db.execute("SELECT COUNT(*) FROM moments").fetchone()[0]
    ids, vectors = np.empty(count, np.int64), np.empty((count, dim), np.float32)
    for i, (row_id, data) in enumerate(db.execute("SELECT id, vector FROM moments ORDER BY id")):
        ids[i], vectors[i] = row_id, np.frombuffer(data, np.float32)
    return ids, vectors


def rebuild_engine(folder: IndexFolder, dim: int, *, write: bool = True):
    """Build the faiss index from SQLite; written atomically with its info unless `write` is false."""
    from mixma.index import vectors as engine  # noqa: PLC0415

    with folder.db() as db:
        gen = generation(db)
        ids, vecs = all_vectors(db, dim)
    if len(ids) == 0:
        import faiss  # noqa: PLC0415

        index, info = faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), {"factory": "IDMap2,Flat", "count": 0, "dim": dim,
                                                                    "nprobe": 0}
    else:
        index, info = engine.build(vecs, ids)
    info["generation"] = gen
    if write:
        with atomic_path(folder.faiss_path) as tmp:
            engine.save(index, tmp)
        write_json(folder.faiss_info_path, info)
    return index, info
