"""MA-LMM at its real size on the CPU: loading without two copies, flat memory over 100 frames.

The architecture is MA-LMM's (`mixma.models.malmm.sizes.real_config`): EVA ViT-g/14 (39 layers,
1408 wide, 257 tokens per 224-pixel frame), the BERT-base Q-Former (12 x 768, 32 queries,
cross-attention every second layer), M = 20, with a small Llama (default 4 layers x 1024,
vocabulary 32001) in place of Vicuna-7B so that it fits this 24 GiB machine: 1.29 B parameters,
5.2 GB in float32. Random weights.

1. Once, the checkpoint is written to `benchmarks/.cache/malmm-real-size/` tensor by tensor
   from a model built on the meta device (`write_random_checkpoint`): the writer's peak extra
   RSS is printed against the checkpoint's size (baseline: the checkpoint's bytes).
2. In a fresh process, `MALMM.from_pretrained` loads it (transformers 5 builds on the meta
   device and fills the weights from the safetensors files; in the checkpoint's dtype they stay
   memory-mapped, so pages are read on first use). Printed: the extra RSS (`/proc/self/status`
   VmHWM and VmRSS minus the RSS before loading) right after loading, and the process's peak
   over loading and streaming, against the checkpoint's size (goal: ~1x, not 2x), split into
   anonymous and file-backed (mapped checkpoint) pages.
3. The same process streams `--frames` random frames (batch 1, float32, no gradients, total 100)
   through `encode_frames` in calls of `--chunk` frames, carrying the memory state, then runs the
   LLM on the 32 visual tokens and a 16-token prompt. After every call: the RSS and the running
   peak, and the seconds per frame, split into the vision encoder (timed by forward hooks) and
   the rest (temporal embedding, Q-Former with memory, banks). Baseline for time: the vision
   encoder's share, i.e. the ratio is what the Q-Former with memory adds to the ViT.

The machine has 2 cores shared with other jobs: times are noisy (the load average is printed).

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_malmm_real_size.py [--frames 100] [--chunk 10]
     [--threads 2] [--rebuild]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache" / "malmm-real-size"


def _status(field: str) -> float:
    """A `/proc/self/status` field in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> None:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS


def llm_sizes(args) -> dict:
    return {"hidden_size": args.llm_hidden, "intermediate_size": args.llm_intermediate,
            "num_hidden_layers": args.llm_layers, "num_attention_heads": args.llm_hidden // 64}


def build(args) -> dict:
    """Worker: write the random checkpoint (meta model, tensor by tensor)."""
    from mixma.models.malmm.sizes import real_config, write_random_checkpoint

    config = real_config(llm_sizes(args), memory_bank_length=args.memory_bank_length, vision_chunk=args.chunk)
    _reset_peak()
    before = _status("VmRSS")
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=CACHE.parent))
    written = write_random_checkpoint(config, tmp)
    shutil.rmtree(CACHE, ignore_errors=True)
    os.replace(tmp, CACHE)
    return {"bytes": written, "peak_extra_mib": _status("VmHWM") - before}


def stream(args) -> dict:
    """Worker: load, then stream frames with flat memory."""
    import torch

    from mixma.models.malmm import MALMM

    torch.set_num_threads(args.threads)
    _reset_peak()
    before = _status("VmRSS")
    start = time.perf_counter()
    model = MALMM.from_pretrained(CACHE, vision_chunk=args.chunk).eval()
    load = {"seconds": time.perf_counter() - start, "peak_extra_mib": _status("VmHWM") - before,
            "rss_extra_mib": _status("VmRSS") - before, "anon_mib": _status("RssAnon"), "file_mib": _status("RssFile"),
            "dtype": str(next(model.parameters()).dtype), "rss_before_mib": before}
    print(json.dumps({"load": load}), file=sys.stderr, flush=True)
    vision = [0.0]
    model.vision_model.register_forward_pre_hook(lambda *_: vision.__setitem__(0, vision[0] - time.perf_counter()))
    model.vision_model.register_forward_hook(lambda *_: vision.__setitem__(0, vision[0] + time.perf_counter()))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (1, 12), generator=g)
    calls = []
    with torch.no_grad():
        memory, output = None, None
        for first in range(0, args.frames, args.chunk):
            frames = torch.randn(1, min(args.chunk, args.frames - first), 3, 224, 224, generator=g)
            vision[0] = 0.0
            t0 = time.perf_counter()
            output, memory = model.encode_frames(frames, ids, memory=memory, total_frames=args.total)
            seconds = time.perf_counter() - t0
            calls.append({"frames": first + frames.shape[1], "seconds": seconds, "vision_seconds": vision[0],
                          "rss_mib": _status("VmRSS"), "peak_mib": _status("VmHWM"), "anon_mib": _status("RssAnon"),
                          "file_mib": _status("RssFile")})
            print(json.dumps(calls[-1]), file=sys.stderr, flush=True)
        prompt = model.get_input_embeddings()(torch.randint(1000, 2000, (1, 16), generator=g))
        t0 = time.perf_counter()
        logits = model.language_model(inputs_embeds=torch.cat([model.language_projection(output), prompt], 1)).logits
        llm = time.perf_counter() - t0
    banks = [memory.visual, *memory.queries]
    return {"load": load, "calls": calls, "llm_seconds": llm,
            "logits_finite": bool(logits.isfinite().all()), "bank_slots": sorted({len(b) for b in banks}),
            "sizes_sum": sorted({int(b.sizes.sum(1).min()) for b in banks})}


def run_worker(mode: str, argv: list[str]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), f"--worker={mode}", *argv], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--total", type=int, default=100, help="the video's length given to the model")
    parser.add_argument("--chunk", type=int, default=10, help="frames per encode_frames call (and vision_chunk)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-bank-length", type=int, default=20)
    parser.add_argument("--llm-layers", type=int, default=4)
    parser.add_argument("--llm-hidden", type=int, default=1024)
    parser.add_argument("--llm-intermediate", type=int, default=2816)
    parser.add_argument("--rebuild", action="store_true", help="write the random checkpoint again")
    parser.add_argument("--worker", choices=["build", "stream"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(build(args) if args.worker == "build" else stream(args)))
        return
    argv = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in
            ("frames", "total", "chunk", "threads", "memory_bank_length", "llm_layers", "llm_hidden", "llm_intermediate")]
    print(f"MA-LMM real size (EVA ViT-g 39x1408, Q-Former 12x768, 32 queries, M={args.memory_bank_length}; Llama "
          f"{args.llm_layers}x{args.llm_hidden} for Vicuna), float32, batch 1, {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    if args.rebuild or not (CACHE / "config.json").exists():
        built = run_worker("build", argv)
        print(f"checkpoint written: {built['bytes'] / 2**30:.2f} GiB; writer's peak extra RSS {built['peak_extra_mib']:.0f} MiB "
              f"= {built['peak_extra_mib'] * 2**20 / built['bytes']:.2f}x the checkpoint (one 1 GiB shard at a time)")
    size = sum(p.stat().st_size for p in CACHE.glob("*.safetensors"))
    result = run_worker("stream", argv)
    load = result["load"]
    calls = result["calls"]
    peak = max(c["peak_mib"] for c in calls) - load["rss_before_mib"]
    print(f"load: {load['seconds']:.1f} s, {load['dtype']}; extra RSS right after: {load['rss_extra_mib'] / 1024:.2f} GiB "
          f"(peak {load['peak_extra_mib'] / 1024:.2f} GiB: the weights stay memory-mapped until used); process peak over "
          f"loading and streaming: +{peak / 1024:.2f} GiB = {peak * 2**20 / size:.2f}x the {size / 2**30:.2f} GiB checkpoint "
          f"(goal ~1x, not 2x); at the end {calls[-1]['anon_mib'] / 1024:.2f} GiB anonymous + "
          f"{calls[-1]['file_mib'] / 1024:.2f} GiB file-backed (the mapped checkpoint)")
    counts = [c["frames"] - (calls[i - 1]["frames"] if i else 0) for i, c in enumerate(calls)]
    print(f"{'frames':>7s} {'s/frame':>8s} {'ViT s/fr':>9s} {'rest s/fr':>10s} {'RSS GiB':>8s} {'peak GiB':>9s}")
    for c, n in zip(calls, counts):
        print(f"{c['frames']:7d} {c['seconds'] / n:8.2f} {c['vision_seconds'] / n:9.2f} {(c['seconds'] - c['vision_seconds']) / n:10.2f} "
              f"{c['rss_mib'] / 1024:8.3f} {c['peak_mib'] / 1024:9.3f}")
    first, last = calls[0], calls[-1]
    later = list(zip(calls, counts))[1:] or list(zip(calls, counts))
    steady = statistics.median(c["seconds"] / n for c, n in later)
    vit = statistics.median(c["vision_seconds"] / n for c, n in later)
    print(f"RSS at frame {last['frames']} / at frame {first['frames']}: {last['rss_mib'] / first['rss_mib']:.4f}x "
          f"(+{last['rss_mib'] - first['rss_mib']:.0f} MiB); peak {last['peak_mib'] / first['peak_mib']:.4f}x (goal: flat)")
    print(f"seconds per frame (median over the calls after the first): {steady:.2f}, of which the ViT-g {vit:.2f}: "
          f"streaming costs {steady / vit:.2f}x the vision encoder alone; LLM on 32 + 16 tokens "
          f"{result['llm_seconds']:.2f} s; logits finite: {result['logits_finite']}; banks hold {result['bank_slots']} "
          f"slots covering {result['sizes_sum']} frames")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
