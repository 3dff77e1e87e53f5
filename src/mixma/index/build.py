"""`build_index`: walk paths, embed new or changed videos, drop deleted ones, rebuild the engine.

Incremental: a file whose size and mtime match what the index holds is skipped (with `verify`,
its SHA-256 must match too); a file whose mtime changed but whose content did not keeps its
vectors. Resumable: each video is committed as soon as it is embedded, so a rerun after an
interruption embeds only what is left. Unreadable files are skipped and listed; the rest goes on.

Parallel: `workers > 1` embeds in that many processes (each loads the model once). Under
`torchrun` every rank takes every `world_size`-th video of the work left, writes it into a shard
store of its own (`shards/rank-R.sqlite`: no two processes write one SQLite file, which is unsafe
on network file systems), and rank 0 merges the shards and builds the engine.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from mixma.errors import MixmaError
from mixma.index import store
from mixma.index.models import MomentModel, load_model, model_name
from mixma.index.options import IndexOptions
from mixma.index.types import BuildSummary
from mixma.video.files import expand_paths


@dataclass(frozen=True)
class Job:
    path: Path
    stat: tuple[int, float]  # size, mtime
    new: bool


def _stat(path: Path) -> tuple[int, float]:
    st = path.stat()
    return st.st_size, st.st_mtime


def plan(db: sqlite3.Connection, folder: store.IndexFolder, files: list[Path], verify: bool,
         summary: BuildSummary) -> list[Job]:
    """What to embed; drops videos whose files are gone, notes unchanged ones (in `summary`)."""
    known = {row[0]: row[1:] for row in db.execute("SELECT path, video_id, size, mtime, sha256 FROM videos")}
    for path_text, (vid, *_rest) in list(known.items()):
        if not Path(path_text).exists():
            store.remove_video(db, folder, vid)
            summary.removed += 1
    jobs = []
    for path in files:
        try:
            stat = _stat(path)
        except OSError as exc:
            summary.skipped.append((str(path), exc.strerror or str(exc)))
            continue
        row = known.get(str(path))
        if row is None:
            jobs.append(Job(path, stat, True))
            continue
        vid, size, mtime, sha = row
        same_stat = (size, mtime) == stat
        if same_stat and not verify:
            summary.unchanged += 1
            continue
        digest = store.file_sha256(path)
        if digest == sha:
            store.touch_video(db, vid, stat, digest) if not same_stat else None
            summary.unchanged += 1
        else:
            jobs.append(Job(path, stat, False))
    return jobs


# -- embedding, in this process or in workers ------------------------------------------------

_WORKER: dict = {}


def _init_worker(name: str, pool: str, cache_dir: str, threads: int) -> None:
    import torch  # noqa: PLC0415

    torch.set_num_threads(threads)
    _WORKER["model"] = load_model(name, pool=pool, cache_dir=cache_dir)


def _embed(model: MomentModel, job: Job, options: IndexOptions):
    """(job, moments, sha256) or (job, None, reason)."""
    try:
        moments = model.encode_video_moments(job.path, options)
        return job, moments, store.file_sha256(job.path)
    except (MixmaError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
        return job, None, str(reason).splitlines()[0] if reason else type(exc).__name__


def _embed_in_worker(job: Job, options: IndexOptions):
    return _embed(_WORKER["model"], job, options)


def _results(model, jobs, options, folder):
    if options.workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield _embed(model, job, options)
        return
    import multiprocessing  # noqa: PLC0415

    threads = max(1, (os.cpu_count() or 1) // options.workers)
    with ProcessPoolExecutor(options.workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker,
                             initargs=(model.name, options.pool, str(folder.root), threads)) as pool:
        yield from pool.map(_embed_in_worker, jobs, [options] * len(jobs))


# -- distributed ------------------------------------------------------------------------------

def _world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _group():
    import torch.distributed as dist  # noqa: PLC0415

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist


def _barrier(world: int) -> None:
    if world > 1:
        _group().barrier()


def _settled(world: int, rank: int, error: Exception | None) -> Exception | None:
    """Wait for rank 0 to settle the store; every rank gets rank 0's error (so none waits forever)."""
    if world == 1:
        return error
    message = [str(error) if error is not None else None]
    _group().broadcast_object_list(message, src=0)  # the others block here until rank 0 is done
    if rank == 0 or message[0] is None:
        return error
    return MixmaError(f"rank 0: {message[0]}")


def merge_shards(folder: store.IndexFolder, db: sqlite3.Connection) -> int:
    """Move every shard store's videos into the main store (rank 0; also after an interruption)."""
    merged = 0
    for shard in sorted(folder.shards.glob("rank-*.sqlite")) if folder.shards.is_dir() else []:
        with db:
            db.execute("ATTACH DATABASE ? AS shard", (str(shard),))
            vids = [r[0] for r in db.execute("SELECT video_id FROM shard.videos")]
            db.execute("DELETE FROM moments WHERE video_id IN (SELECT video_id FROM shard.videos)")
            db.execute("DELETE FROM videos WHERE video_id IN (SELECT video_id FROM shard.videos)")
            db.execute("INSERT INTO videos SELECT * FROM shard.videos")
            db.execute("INSERT INTO moments(video_id, n, start, end, thumbnail, vector) "
                       "SELECT video_id, n, start, end, thumbnail, vector FROM shard.moments ORDER BY id")
            store.bump(db)
            merged += len(vids)
        db.execute("DETACH DATABASE shard")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{shard}{suffix}").unlink(missing_ok=True)
    return merged


# -- the whole build --------------------------------------------------------------------------

def build_index(paths, out: str | os.PathLike, options: IndexOptions = IndexOptions(), progress: bool = True, *,
                model: MomentModel | None = None) -> BuildSummary:
    """Build or update the index folder `out` from video files and folders (see the module docstring).

    Args:
        paths: files, folders (their videos, recursively; every file with `options.every_file`)
            and glob patterns.
        out: the index folder (created if missing).
        options: `IndexOptions`.
        progress: show a progress bar (videos/s, x real time).
        model: an already loaded model (else `options.model` is loaded).

    Returns:
        A `BuildSummary` (added, updated, unchanged, removed, skipped [(path, reason)], ...).

    Raises:
        MixmaError: `out` is not an index folder, or was built with another model or options.
    """
    started = time.perf_counter()
    rank, world = _world()
    folder = store.IndexFolder(out)
    files, unmatched = expand_paths(paths, every_file=options.every_file)
    files = [f for f in (f.resolve() for f in files) if not f.is_relative_to(folder.root)]  # not its own thumbnails
    if model is None:
        model = load_model(model_name(options.model), pool=options.pool, cache_dir=folder.root)
    stored = {**options.stored(), "model": model.name}
    summary = BuildSummary(skipped=[(p, "no such file or folder") for p in unmatched])
    # Rank 0 alone creates or checks the folder and settles the store (shards left by an
    # interruption, removals); the others wait for it, then read the same plan without writing.
    # Concurrent creation would race (a half-made folder reads as "not an index") and concurrent
    # writers would lock SQLite.
    error = None
    if rank == 0:
        try:
            desc = folder.create_or_check(stored, model.name, model.fingerprint(), model.dim)
            with folder.db() as db:
                merge_shards(folder, db)
                jobs = plan(db, folder, files, options.verify, summary)
        except Exception as exc:  # noqa: BLE001 -- re-raised below, after the others hear of it
            error = exc
    error = _settled(world, rank, error)
    if error is not None:
        raise error
    if rank != 0:
        with contextlib.closing(store.connect(folder.db_path, read_only=True)) as db:
            jobs = _plan_readonly(db, files, options)
    jobs = jobs[rank::world]
    target = folder.db_path if world == 1 else folder.shards / f"rank-{rank}.sqlite"
    if world > 1:
        folder.shards.mkdir(exist_ok=True)
    with folder.db(target) as db, tqdm(total=len(jobs), unit="video", disable=not progress, dynamic_ncols=True,
                                       desc="index") as bar:
        for job, moments, extra in _results(model, jobs, options, folder):
            bar.update()
            if moments is None:
                summary.skipped.append((str(job.path), extra))
                continue
            store.write_video(db, folder, job.path, job.stat, extra, moments)
            summary.added += job.new
            summary.updated += not job.new
            summary.video_seconds += moments.duration
            elapsed = time.perf_counter() - started
            bar.set_postfix_str(f"{summary.video_seconds / max(elapsed, 1e-9):.1f}x real time", refresh=False)
    _barrier(world)
    if rank == 0:
        with folder.db() as db:
            merge_shards(folder, db)
        store.rebuild_engine(folder, desc["dim"])
        with folder.db() as db:
            summary.moments = db.execute("SELECT COUNT(*) FROM moments").fetchone()[0]
        if folder.shards.is_dir() and not any(folder.shards.iterdir()):
            folder.shards.rmdir()
    summary.seconds = time.perf_counter() - started
    return summary


def _plan_readonly(db: sqlite3.Connection, files: list[Path], options: IndexOptions) -> list[Job]:
    """Other ranks: the same plan rank 0 made (after its removals), without writing."""
    known = {row[0]: row[1:] for row in db.execute("SELECT path, size, mtime, sha256 FROM videos")}
    jobs = []
    for path in files:
        try:
            stat = _stat(path)
        except OSError:
            continue
        row = known.get(str(path))
        if row is None:
            jobs.append(Job(path, stat, True))
        elif tuple(row[:2]) != stat or (options.verify and store.file_sha256(path) != row[2]):
            jobs.append(Job(path, stat, False))
    return jobs
