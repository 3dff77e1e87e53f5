"""The same build under torchrun: two gloo processes share the videos, rank 0 merges; the index
equals one built by a single process."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import torch.multiprocessing as mp

from mixma.errors import MixmaError
from mixma.index import IndexOptions, VideoIndex, build_index
from tests.index.conftest import ColourModel
from tests.losses.test_distributed import free_port

OPTIONS = IndexOptions(moment_sec=2.0, frame_rate=2.0)


def _rank(rank: int, port: int, videos: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import torch.distributed as dist

    try:
        model = ColourModel()
        try:
            build_index([videos], out, OPTIONS, progress=False, model=model)
        except MixmaError as exc:
            with open(f"{out}/error-{rank}.txt", "w") as f:
                f.write(str(exc))
            return
        with open(f"{out}/calls-{rank}.txt", "w") as f:
            f.write("\n".join(model.calls))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def rows(out):
    with sqlite3.connect(f"{out}/meta.sqlite") as db:
        got = db.execute("SELECT v.path, m.n, m.start, m.end, m.vector FROM moments m JOIN videos v USING (video_id) "
                         "ORDER BY v.path, m.n").fetchall()
    return [(p, n, a, b, np.frombuffer(v, np.float32).round(6).tolist()) for p, n, a, b, v in got]


def test_two_ranks_build_the_index_one_process_builds(tmp_path, colour_videos):
    single = tmp_path / "single"
    build_index([colour_videos], single, OPTIONS, progress=False, model=ColourModel())
    shared = tmp_path / "shared"
    mp.spawn(_rank, args=(free_port(), str(colour_videos), str(shared)), nprocs=2, join=True)
    calls = [(shared / f"calls-{r}.txt").read_text().split("\n") for r in range(2)]
    assert sorted(sum(calls, [])) == sorted(str(p) for p in colour_videos.iterdir())  # each video once
    assert all(calls)  # both ranks worked
    assert rows(shared) == rows(single)
    assert not (shared / "shards").exists()
    idx = VideoIndex.open(shared, model=ColourModel())
    assert idx.search("red", k=1)[0].path.name == "a.mp4"


def test_a_second_run_under_two_ranks_embeds_only_the_new_video(tmp_path, colour_videos):
    shared = tmp_path / "shared"
    mp.spawn(_rank, args=(free_port(), str(colour_videos), str(shared)), nprocs=2, join=True)
    (colour_videos / "a.mp4").rename(colour_videos / "moved.mp4")  # one gone, one new: rank 0 plans, both agree
    mp.spawn(_rank, args=(free_port(), str(colour_videos), str(shared)), nprocs=2, join=True)
    calls = [(shared / f"calls-{r}.txt").read_text() for r in range(2)]
    assert sorted(c for c in calls if c) == [str(colour_videos / "moved.mp4")]
    single = tmp_path / "single"
    build_index([colour_videos], single, OPTIONS, progress=False, model=ColourModel())
    assert rows(shared) == rows(single)


def test_rank_0s_error_reaches_every_rank(tmp_path, colour_videos):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("not an index")
    mp.spawn(_rank, args=(free_port(), str(colour_videos), str(shared)), nprocs=2, join=True)  # returns: none hangs
    errors = [(shared / f"error-{r}.txt").read_text() for r in range(2)]
    assert "exists and is not a mixma index" in errors[0]
    assert errors[1].startswith("rank 0: ") and "exists and is not a mixma index" in errors[1]
    assert sorted(p.name for p in shared.iterdir()) == ["error-0.txt", "error-1.txt", "notes.txt"]
