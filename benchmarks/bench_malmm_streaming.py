"""MA-LMM streaming inference: peak memory and time against T, versus all frames at once.

A tiny random MA-LMM (InstructBLIP layout: ViT 64 wide, 2 layers, 128x128 images in 8x8 patches, so
P = 257 tokens per frame, as InstructBLIP's ViT-g/14 at 224 px; Q-Former 64 wide, 4 layers, cross-attention every 2nd layer; LLaMA 64 wide, 2
layers; 8 query tokens), batch 1, float32, under `torch.no_grad()`, at T = 16, 64, 256, 1024.

- ours: `MALMM` with `memory_bank_length = 10`, a full `model(...)` forward. The video is
  streamed through the memory-augmented Q-Former a frame at a time (vision model in chunks of
  `config.vision_chunk` frames), MBC keeps every bank at 10 slots, and the LLM gets 8 visual
  tokens plus the prompt whatever T is.
- baseline: the same model with `memory_bank_length = 0` (InstructBlipVideo style, MA-LMM's
  own ablation), a full `model(...)` forward: all T frames through the vision model and the
  Q-Former at once and all T * 8 query outputs into the LLM, so its memory and time grow with T.
  A configuration whose estimated memory (extrapolated from the smaller T already measured)
  exceeds `--limit-gb` is skipped; a run that goes over the limit anyway is killed.

Every (method, T) runs in a fresh subprocess: build the model (same seed), build the inputs, one
untimed warm-up forward, then `--repeats` forwards, each preceded (outside its timing) by
`gc.collect()`, `malloc_trim(0)`, reading VmRSS and resetting VmHWM (`echo 5 >
/proc/self/clear_refs`) and followed by reading VmHWM. "peak" is the median over the forwards of
VmHWM minus the VmRSS just before: the extra resident memory one forward needed, as the OS sees
it (torch CPU allocations are invisible to tracemalloc). Workers run with
`MALLOC_MMAP_THRESHOLD_=65536`, so every block over 64 KiB is its own mapping that goes back to the
OS when freed, and the RSS follows live tensors instead of glibc's heap fragmentation. The input frames are allocated before
and not counted; their size is printed. "time" is the best of the forwards; "marginal" is the
time per frame between consecutive T, (time(T) - time(T_prev)) / (T - T_prev), which is
constant when time is linear in T (the first 10 frames of any video are cheaper: the banks are
not full yet, nothing is compressed). The CPU may be shared with other jobs: times are noisy,
so the load average is printed and the ratios compare runs made in the same invocation.

Threads: each worker runs torch with `--threads 1` by default. Streaming issues a few hundred
tiny ops per frame; with two OpenMP threads on a 2-core machine that other jobs also load, every
op's barrier can wait a scheduler tick for a descheduled thread, and we saw whole runs go ~70x
slower (240 ms per frame instead of 4). One thread per worker keeps the comparison stable;
`--threads 2` gives the baseline's large batched ops their second core on a quiet machine.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_malmm_streaming.py [--quick] [--frames 16 64 256 1024]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

IMAGE_TOKEN = 119


# -- worker (one fresh process per method and T) -------------------------------------------------


def _status_kib(field: str, pid: str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def build_model(args, memory_bank_length: int):
    import torch
    from transformers import InstructBlipQFormerConfig, InstructBlipVisionConfig, LlamaConfig

    from mixma.models.malmm import MALMM, MALMMConfig

    h = args.hidden
    config = MALMMConfig(
        memory_bank_length=memory_bank_length,
        vision_chunk=args.vision_chunk,
        vision_config=InstructBlipVisionConfig(
            hidden_size=h, intermediate_size=4 * h, num_hidden_layers=2, num_attention_heads=4,
            image_size=args.image_size, patch_size=8,
        ).to_dict(),
        qformer_config=InstructBlipQFormerConfig(
            hidden_size=h, intermediate_size=4 * h, num_hidden_layers=args.qformer_layers, num_attention_heads=4,
            encoder_hidden_size=h, vocab_size=100, cross_attention_frequency=2,
        ).to_dict(),
        text_config=LlamaConfig(
            hidden_size=h, intermediate_size=4 * h, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=120, bos_token_id=1, eos_token_id=2, pad_token_id=0, max_position_embeddings=1 << 17,
        ).to_dict(),
        num_query_tokens=args.num_query_tokens,
        image_token_index=IMAGE_TOKEN,
    )
    torch.manual_seed(0)
    model = MALMM(config).eval()
    with torch.no_grad():
        model.query_tokens.normal_(0, 1)
        model.temporal_embedding.weight.normal_(0, 0.1)  # frame order matters, as after training
    return model


def make_inputs(args, t: int, memory: bool) -> dict:
    import torch

    g = torch.Generator().manual_seed(t)
    b, nq = args.batch, args.num_query_tokens
    visual_tokens = nq if memory else t * nq
    prompt = torch.randint(3, 110, (b, args.prompt_len), generator=g)
    input_ids = torch.cat([torch.full((b, visual_tokens), IMAGE_TOKEN), prompt], 1)
    qformer_ids = torch.randint(3, 100, (b, args.text_len), generator=g)
    return {
        "pixel_values": torch.randn(b, t, 3, args.image_size, args.image_size, generator=g),
        "qformer_input_ids": qformer_ids,
        "qformer_attention_mask": torch.ones_like(qformer_ids),
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
    }


def worker(args) -> dict:
    import torch

    memory = args.worker == "ours"
    model = build_model(args, args.memory_bank_length if memory else 0)
    libc = ctypes.CDLL("libc.so.6")
    with torch.no_grad():
        inputs = make_inputs(args, args.frames, memory)
        model(**inputs)  # warm-up (untimed, unmeasured): lazy initialisation, allocator pools
        peaks, times = [], []
        for _ in range(max(1, args.repeats)):
            gc.collect()
            libc.malloc_trim(0)  # hand freed heap back, so the forward's needs show up in RSS
            rss_before = _status_kib("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            start = time.perf_counter()
            out = model(**inputs)
            times.append(time.perf_counter() - start)
            peaks.append((_status_kib("VmHWM") - rss_before) / 1024)
        result = {
            "peak_mib": statistics.median(peaks),
            "peaks_mib": peaks,
            "rss_before_mib": rss_before / 1024,
            "process_peak_mib": rss_before / 1024 + max(peaks),
            "best_s": min(times),
            "median_s": statistics.median(times),
            "llm_tokens": inputs["input_ids"].shape[1],
            "visual_tokens": out.video_features.shape[1],
            "input_mib": inputs["pixel_values"].numel() * 4 / 2**20,
            "logits_finite": bool(out.logits.isfinite().all()),
        }
        if memory:  # the state after the whole video: M slots per bank, every frame accounted for
            _, state = model.encode_frames(
                inputs["pixel_values"], inputs["qformer_input_ids"], inputs["qformer_attention_mask"], total_frames=args.frames
            )
            banks = [state.visual, *state.queries]
            result["bank_slots"] = sorted({len(bank) for bank in banks})
            result["sizes_sum_to_T"] = all(bool((bank.sizes.sum(1) == args.frames).all()) for bank in banks)
            result["bank_mib"] = sum(bank.values.numel() + bank.sizes.numel() for bank in banks) * 4 / 2**20
    return result


# -- driver ---------------------------------------------------------------------------------------


def run_worker(argv: list[str], limit_mib: float) -> dict:
    """Run one configuration in a fresh process, killing it if its RSS passes the limit."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv]
    # A fixed mmap threshold: glibc otherwise raises it after each large free, so later large
    # tensors come from the heap, whose fragmentation shows in the RSS peak as noise of several MiB.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # files: no pipe to fill
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        high = 0.0
        while proc.poll() is None:
            try:
                high = max(high, _status_kib("VmRSS", str(proc.pid)) / 1024)
            except (FileNotFoundError, KeyError, ProcessLookupError):
                pass
            if high > limit_mib:
                proc.kill()
                proc.wait()
                return {"killed_mib": high}
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        out, err = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(argv)} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def estimate_mib(measured: list[tuple[int, dict]], t: int) -> float | None:
    """Total RSS the baseline would need at T = t: the larger of a linear and a power-law
    extrapolation of its peak from the two largest T measured, plus the process's own RSS."""
    done = [(tt, r) for tt, r in measured if "peak_mib" in r]
    if len(done) < 2:
        return None
    (t1, r1), (t2, r2) = done[-2], done[-1]
    p1, p2 = max(r1["peak_mib"], 1.0), max(r2["peak_mib"], 1.0)
    linear = p2 + (p2 - p1) * (t - t2) / (t2 - t1)
    power = p2 * (t / t2) ** max(1.0, math.log(p2 / p1) / math.log(t2 / t1))
    return max(linear, power) + r2["rss_before_mib"]


def skipped(result: dict, limit_gb: float) -> str:
    if "skipped_mib" in result:
        return f"skipped (would need ~{result['skipped_mib'] / 1024:.1f} GB)"
    return f"skipped (a smaller T already went over the {limit_gb:g} GB limit)"


def fmt_mib(x: float) -> str:
    return f"{x:8.1f} MiB" if x < 10240 else f"{x / 1024:8.2f} GiB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per configuration")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=128, help="pixels; patches are 8x8 (128: P = 257, as the real ViT)")
    parser.add_argument("--hidden", type=int, default=64, help="width of the ViT, Q-Former and LLM")
    parser.add_argument("--qformer-layers", type=int, default=4)
    parser.add_argument("--num-query-tokens", type=int, default=8)
    parser.add_argument("--memory-bank-length", type=int, default=10)
    parser.add_argument("--vision-chunk", type=int, default=8)
    parser.add_argument("--text-len", type=int, default=8, help="Q-Former instruction tokens")
    parser.add_argument("--prompt-len", type=int, default=16, help="LLM prompt tokens after the visual tokens")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each worker (see the module docstring)")
    parser.add_argument("--limit-gb", type=float, default=8.0, help="skip or stop the baseline beyond this RSS")
    parser.add_argument("--quick", action="store_true", help="T = 16, 64, 256 and two forwards each (about 40 s)")
    parser.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        if args.frames == parser.get_default("frames"):
            raise SystemExit("worker needs --frames T")
        args.frames = args.frames[0]
        torch.set_num_threads(args.threads)
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.frames, args.repeats = [16, 64, 256], 2
    args.frames = sorted(args.frames)
    limit_mib = args.limit_gb * 1024
    common = [
        f"--{k.replace('_', '-')}={getattr(args, k)}"
        for k in ("repeats", "threads", "batch", "image_size", "hidden", "qformer_layers", "num_query_tokens",
                  "memory_bank_length", "vision_chunk", "text_len", "prompt_len")
    ]
    p = (args.image_size // 8) ** 2 + 1
    print(f"tiny MA-LMM, float32, batch {args.batch}: images {args.image_size}px -> P={p} tokens, width {args.hidden}, "
          f"Q-Former {args.qformer_layers} layers, {args.num_query_tokens} queries, M={args.memory_bank_length}, "
          f"vision_chunk={args.vision_chunk}; {args.repeats} timed forwards per configuration, {args.threads} torch thread(s)")
    print(f"CPU shared with other jobs ({os.cpu_count()} cores, load average at start "
          f"{os.getloadavg()[0]:.2f}): times are noisy")
    ours, base = [], []
    for t in args.frames:
        r = run_worker(["--worker", "ours", f"--frames={t}", *common], limit_mib)
        if "killed_mib" in r:
            raise SystemExit(f"ours at T={t} went over the {args.limit_gb:g} GB limit ({r['killed_mib']:.0f} MiB RSS)")
        ours.append((t, r))
        print(f"  ours     T={t:5d}: {r['best_s']:.3f} s, peak +{r['peak_mib']:.1f} MiB, banks {r['bank_slots']} slots "
              f"({r['bank_mib'] * 1024:.0f} KiB), sizes sum to T: {r['sizes_sum_to_T']}", flush=True)
        estimate = estimate_mib(base, t)
        if estimate is not None and estimate > limit_mib:
            base.append((t, {"skipped_mib": estimate}))
        elif base and any(k in base[-1][1] for k in ("skipped_mib", "killed_mib", "skipped_after")):
            base.append((t, {"skipped_after": True}))  # a smaller T already needed too much
        else:
            base.append((t, run_worker(["--worker", "baseline", f"--frames={t}", *common], limit_mib)))
        r = base[-1][1]
        if "peak_mib" in r:
            print(f"  baseline T={t:5d}: {r['best_s']:.3f} s, peak +{r['peak_mib']:.1f} MiB, {r['llm_tokens']} LLM tokens", flush=True)
        elif "killed_mib" in r:
            print(f"  baseline T={t:5d}: stopped at {fmt_mib(r['killed_mib']).strip()} RSS (limit {args.limit_gb:g} GB)", flush=True)
        else:
            print(f"  baseline T={t:5d}: {skipped(r, args.limit_gb)}", flush=True)

    first = ours[0][1]
    print()
    print(f"process RSS before the measured forward (model, torch, inputs): ours {first['rss_before_mib']:.0f} MiB; "
          f"input frames at T={args.frames[-1]}: {ours[-1][1]['input_mib']:.1f} MiB (allocated before, not counted)")
    print(f"time = best of {args.repeats} forwards; peak = median over them of VmHWM - VmRSS around one forward "
          "(fresh process per row); b/o = baseline / ours")
    head = (f"{'T':>5s} | {'ours time':>9s} {'ms/frame':>8s} {'marginal':>8s} {'ours peak':>12s} {'(min-max)':>11s} "
            f"{'vs T0':>6s} | {'base time':>9s} {'base peak':>12s} {'LLM tok':>7s} | {'time b/o':>8s} {'peak b/o':>8s}")
    print(head)
    print("-" * len(head))
    t0 = ours[0][0]
    prev = None
    for (t, o), (_, b) in zip(ours, base):
        marginal = "" if prev is None else f"{(o['best_s'] - prev[1]) / (t - prev[0]) * 1e3:8.2f}"
        prev = (t, o["best_s"])
        spread = f"({min(o['peaks_mib']):.1f}-{max(o['peaks_mib']):.1f})"
        noisy = any(r.get("median_s", 0) > 1.5 * r.get("best_s", 1) for r in (o, b))
        row = (f"{t:5d}{'*' if noisy else ' '}| {o['best_s']:8.3f}s {o['best_s'] / t * 1e3:8.2f} {marginal:>8s} {fmt_mib(o['peak_mib'])} "
               f"{spread:>11s} {o['peak_mib'] / first['peak_mib']:5.2f}x | ")
        if "peak_mib" in b:
            row += (f"{b['best_s']:8.3f}s {fmt_mib(b['peak_mib'])} {b['llm_tokens']:7d} | "
                    f"{b['best_s'] / o['best_s']:7.2f}x {b['peak_mib'] / o['peak_mib']:7.1f}x")
        elif "killed_mib" in b:
            row += f"stopped at {fmt_mib(b['killed_mib']).strip()} (limit {args.limit_gb:g} GB)"
        else:
            row += skipped(b, args.limit_gb)
        print(row)
    print("* = a timed forward of this row took over 1.5x its best (CPU contention)")
    last = ours[-1][1]
    per_frame = [(t, r["best_s"] / t) for t, r in ours]
    print()
    print(f"ours: peak at T={args.frames[-1]} is {last['peak_mib'] / first['peak_mib']:.2f}x the peak at T={t0} (goal <= 1.2x); "
          f"time per frame at T={args.frames[-1]} is {per_frame[-1][1] / per_frame[0][1]:.2f}x that at T={t0} "
          f"({', '.join(f'{v * 1e3:.2f}' for _, v in per_frame)} ms/frame)")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
