"""MA-LMM memory bank compression (MBC): `compress_memory` (vectorised) against a loop reference.

One MBC step on a bank of B items, N slots, P token positions and C channels. The default shape
is a visual bank of MA-LMM with EVA ViT-g features: B=4, N=21 (M=20 slots plus the new frame),
P=257 tokens, C=1408 channels, float32.

Baseline (measured in the same run, same inputs): `compress_loop`, a literal statement of the
algorithm: per item and per token position, the cosine similarity of every adjacent pair of
slots over C (one `F.cosine_similarity` call per pair), argmax with ties to the lowest k, the
size-weighted mean of slots k and k+1, slot k+1 dropped. Both outputs are checked equal
(`torch.testing.assert_close`, sizes exactly) before anything is timed, at every position whose
best pair is not within float32 rounding of the runner-up (this bank drifts slowly, so adjacent
cosines are close; where two pairs tie to within 1e-5, the two computations may round apart).

Ours is timed twice: returning a fresh result, and writing into reused `out=` buffers (a fresh
100 MiB tensor costs page faults on first touch, more than the work). Also printed: two "floors"
(one copy of N-1 slots, which any implementation has to write, to a fresh tensor and into a
reused one), the kernel CPU time per call (page faults on fresh large tensors), the
peak extra RSS of one call of each (a fresh subprocess each: VmHWM minus VmRSS just before, after
`malloc_trim`; torch CPU allocations are invisible to tracemalloc), ours in float16 / bfloat16
against float32, and the per-frame cost when streaming (B=1, N=M+1=11).

Times are the best and the median of `--repeats` runs after one warm-up run; the loop reference
is timed `--ref-repeats` times (it is slow). The CPU may be shared with other jobs: the ratio
moves with the load (ours is bound by memory traffic, which other jobs compete for; the loop by
Python dispatch), so compare ratios from one run, not absolute times across runs.

Threads: `--threads 1` by default. The loop reference runs on one core whatever the setting; with
two OpenMP threads on a 2-core machine that other jobs also load, ours' barriers can wait a
scheduler tick for a descheduled thread, and we saw single calls take several times their best
(the streaming step: 9 ms quiet, 46-128 ms loaded). `--threads 2` measures ours on both cores
(it helps only when the machine is quiet: ours 204-218 ms with 2 threads then, 360-430 ms either
way under a load average of 2.6-3).

Streaming section (`--streaming-only` runs just it): the per-frame cost of appending a frame to a
full bank and compressing it back to M slots, at MA-LMM's sizes: the visual bank (B=4, M=20,
P=257, C=1408) and the 12 query banks (B=4, M=20, P=32 queries + `--text-len` instruction tokens,
C=768). Each bank is filled to M slots with the same video-like frames first, then every timed
step takes a fresh frame. Three ways, measured in this run on the same frames:
- loop reference (baseline): `torch.cat` the frame onto the bank, then `compress_loop`;
- `Bank.append` (the functional path: `torch.cat` + `compress_memory`, a fresh bank per step);
- streaming, in place, as `MALMM.encode_frames` does without gradients: a `StreamingBank` for the
  visual bank, one `LayerBanks` for the 12 query banks (each layer staged in turn, then one
  commit and one settle per frame).
Before timing, the streaming bank is checked bit-for-bit equal to `Bank.append`'s after the same
frames, and one loop-reference step is checked against it at the positions whose pair is decided
(as above). Times are medians over the steps; `--profile` adds the top operators of the
streaming step (torch profiler).

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_compress_memory.py [--quick] [--shape B N P C]
     [--streaming-only] [--profile]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from mixma.models.malmm import Bank, compress_memory
from mixma.models.malmm.streaming import LayerBanks


def compress_loop(bank: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MBC stated literally: a Python loop over items and token positions, torch ops per pair."""
    b, n, p, c = bank.shape
    out = bank.new_empty(b, n - 1, p, c)
    out_sizes = sizes.new_empty(b, n - 1, p)
    for i in range(b):
        for pos in range(p):
            slots = bank[i, :, pos]  # [N, C]: this position's vector in every slot
            counts = sizes[i, :, pos]  # [N]
            best_k, best_sim = 0, None
            for k in range(n - 1):
                sim = F.cosine_similarity(slots[k], slots[k + 1], dim=0)
                if best_sim is None or sim > best_sim:  # strictly greater: a tie keeps the lower k
                    best_k, best_sim = k, sim
            k = best_k
            merged = (slots[k] * counts[k] + slots[k + 1] * counts[k + 1]) / (counts[k] + counts[k + 1])
            out[i, :k, pos] = slots[:k]
            out[i, k, pos] = merged
            out[i, k + 1 :, pos] = slots[k + 2 :]
            out_sizes[i, :k, pos] = counts[:k]
            out_sizes[i, k, pos] = counts[k] + counts[k + 1]
            out_sizes[i, k + 1 :, pos] = counts[k + 2 :]
    return out, out_sizes


TIE = 1e-5  # adjacent-pair cosines closer than this are a tie in float32


def clear_winner(bank: torch.Tensor) -> torch.Tensor:
    """`[B, P]`: positions whose most similar adjacent pair wins by more than `TIE` (computed in
    float64), or whose pairs tie exactly (then the lowest k wins in any precision)."""
    x = bank.double()
    sim = F.cosine_similarity(x[:, :-1], x[:, 1:], dim=-1)  # [B, N-1, P]
    top2 = sim.topk(2, dim=1).values
    return ((top2[:, 0] - top2[:, 1]) > TIE) | (top2[:, 0] == top2[:, 1])


def make_bank(b: int, n: int, p: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A bank that looks like video features: each slot drifts from the previous one (so adjacent
    similarities differ and the chosen pair varies), sizes are uneven (1..5 frames per slot, as
    after earlier compressions), and a few token positions hold the same vector in every slot,
    so all their pairs tie exactly (the lowest k must win)."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(b, n, p, c, generator=g) * torch.rand(b, n, p, 1, generator=g) * 2
    bank = torch.cumsum(steps, dim=1) + torch.randn(b, 1, p, c, generator=g) * 4
    bank[:, :, : min(p, 3)] = bank[:, :1, : min(p, 3)].clone()  # identical slots: exact ties
    sizes = torch.randint(1, 6, (b, n, p), generator=g).float()
    return bank.contiguous(), sizes


class Timing:
    """Wall time of `repeats` calls after `warmup` untimed ones: best, median, and the kernel (sys)
    CPU time per call, which is mostly page faults on freshly allocated large tensors."""

    def __init__(self, fn, repeats: int, warmup: int = 1):
        for _ in range(warmup):
            fn()
        times = []
        sys_before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        self.sys = (resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys_before) / repeats
        self.best, self.median = min(times), statistics.median(times)


def ms(t: float) -> str:
    return f"{t * 1e3:9.1f} ms"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def memory_worker(which: str, shape: list[int]) -> None:
    """In a fresh process: extra resident memory (VmHWM - VmRSS before) of one call, in MiB."""
    bank, sizes = make_bank(*shape)
    fn = compress_memory if which == "ours" else compress_loop
    small = make_bank(1, 3, 2, shape[3])
    fn(*small)  # lazy initialisation outside the measurement
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    out = fn(bank, sizes)
    print((_status_kib("VmHWM") - before) / 1024)
    del out


def peak_mib(which: str, shape: list[int], threads: int | None) -> float:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-worker", which, "--shape", *map(str, shape)]
    if threads:
        cmd.append(f"--threads={threads}")
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()[-1])


def make_stream(b: int, t: int, p: int, c: int, seed: int = 0) -> torch.Tensor:
    """`[T, B, P, C]` frames like `make_bank`'s slots: drifting, with exact ties at a few positions."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(t, b, p, c, generator=g) * torch.rand(t, b, p, 1, generator=g) * 2
    frames = torch.cumsum(steps, dim=0) + torch.randn(1, b, p, c, generator=g) * 4
    frames[:, :, : min(p, 3)] = frames[:1, :, : min(p, 3)].clone()
    return frames.contiguous()


def median_ms(fn, steps) -> float:
    times = []
    for x in steps:
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def streaming_banks(name: str, b: int, m: int, p: int, c: int, count: int, args) -> dict:
    """Per-step times (ms) of `count` banks of one shape: loop reference, Bank.append, streaming
    (one `StreamingBank`, or for several banks one `LayerBanks` stacking them, as MALMM does)."""
    frames = make_stream(b, m + args.stream_steps + 1, p, c, seed=p)
    fill, timed = frames[:m], frames[m:]
    functional = [Bank.of(fill[0]) for _ in range(count)]
    stacked = LayerBanks.empty(fill[0], count, m)
    bank = stacked.bank

    def stream_step(x):
        for i in range(count):  # layer by layer, as the Q-Former reaches them
            bank.stage(x, i * b)
        bank.commit()
        bank.settle()

    stream_step(fill[0])
    for x in fill[1:]:
        for i in range(count):
            functional[i] = functional[i].append(x, m)
        stream_step(x)

    # correctness first: the loop reference on one step, and bit-for-bit equality with Bank.append
    first, x = functional[0], timed[0]
    values = torch.cat([first.values, x[:, None]], 1)
    want, want_sizes = compress_loop(values, torch.cat([first.sizes, torch.ones(b, 1, p)], 1))
    decided = clear_winner(values)
    check = stacked.clone()
    for i in range(count):
        check.bank.stage(x, i * b)
    check.bank.commit()
    check.bank.settle()
    torch.testing.assert_close(check[0].values.permute(0, 2, 1, 3)[decided], want.permute(0, 2, 1, 3)[decided])
    assert torch.equal(check[0].sizes.permute(0, 2, 1)[decided], want_sizes.permute(0, 2, 1)[decided])

    def functional_step(x):
        for i in range(count):
            functional[i] = functional[i].append(x, m)

    ref_banks = [functional[0]] * count

    def loop_step(x):
        for i in range(count):
            values = torch.cat([ref_banks[i].values, x[:, None]], 1)
            ref_banks[i] = Bank(*compress_loop(values, torch.cat([ref_banks[i].sizes, torch.ones(b, 1, p)], 1)))

    stream_ms = median_ms(stream_step, timed[1:])
    functional_ms = median_ms(functional_step, timed[1:])
    for a, z in zip(stacked, functional):
        assert torch.equal(a.values, z.values) and torch.equal(a.sizes, z.sizes), "streaming differs from Bank.append"
    loop_ms = median_ms(loop_step, timed[1 : 1 + args.ref_repeats])
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            stream_step(timed[-1])
        print(f"{name}: top operators of one streaming step")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    print(f"  {name:36s} {count:2d} x [B={b}, M={m}, P={p}, C={c}]: loop {loop_ms:8.1f} ms, Bank.append "
          f"{functional_ms:7.1f} ms, streaming {stream_ms:6.2f} ms  (loop / streaming {loop_ms / stream_ms:5.1f}x, "
          f"Bank.append / streaming {functional_ms / stream_ms:4.1f}x)", flush=True)
    return {"loop": loop_ms, "functional": functional_ms, "stream": stream_ms}


def streaming_section(args) -> None:
    b, m = 4, 20
    print()
    print(f"streaming: one frame appended to full banks and compressed back to M={m}, per step "
          f"(median over {args.stream_steps - 1} steps; the loop over {args.ref_repeats}); "
          f"the streaming banks equal Bank.append's bit for bit on these frames (checked)")
    visual = streaming_banks("visual bank", b, m, 257, 1408, 1, args)
    queries = streaming_banks(f"query banks (32 queries + {args.text_len} text)", b, m, 32 + args.text_len, 768, 12, args)
    total = {k: visual[k] + queries[k] for k in visual}
    print(f"  per frame, all 13 banks: loop {total['loop']:.0f} ms, Bank.append {total['functional']:.1f} ms, "
          f"streaming {total['stream']:.2f} ms: {total['loop'] / total['stream']:.1f}x the loop reference "
          f"(goal >= 20x), {total['functional'] / total['stream']:.1f}x Bank.append")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, metavar=("B", "N", "P", "C"), default=[4, 21, 257, 1408])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of ours (best and median reported)")
    parser.add_argument("--ref-repeats", type=int, default=3, help="timed runs of the loop reference")
    parser.add_argument("--no-dtypes", action="store_true", help="skip the float16/bfloat16 timings")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (see the module docstring)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no memory runs (about 15 s)")
    parser.add_argument("--streaming-only", action="store_true", help="only the streaming section")
    parser.add_argument("--stream-steps", type=int, default=21, help="timed frames in the streaming section")
    parser.add_argument("--text-len", type=int, default=12, help="instruction tokens in the query banks")
    parser.add_argument("--profile", action="store_true", help="profile one streaming step")
    parser.add_argument("--memory-worker", choices=["ours", "loop"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(args.memory_worker, args.shape)
        return
    if args.quick:
        args.repeats, args.ref_repeats, args.no_memory, args.stream_steps = 3, 1, True, 6
    if args.streaming_only:
        streaming_section(args)
        return
    b, n, p, c = args.shape
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU shared with other jobs (load average "
          f"{os.getloadavg()[0]:.2f}): absolute times are noisy, the ratios compare runs made in this same run")
    print(f"bank [B={b}, N={n}, P={p}, C={c}] float32 ({b * n * p * c * 4 / 2**20:.0f} MiB), sizes [B, N, P] in 1..5")

    bank, sizes = make_bank(b, n, p, c)
    got, got_sizes = compress_memory(bank, sizes)
    want, want_sizes = compress_loop(bank, sizes)
    decided = clear_winner(bank)  # [B, P]: positions where float rounding cannot change the pair
    torch.testing.assert_close(got.permute(0, 2, 1, 3)[decided], want.permute(0, 2, 1, 3)[decided])
    torch.testing.assert_close(got_sizes.permute(0, 2, 1)[decided], want_sizes.permute(0, 2, 1)[decided], rtol=0, atol=0)
    merged_at = (got_sizes != sizes[:, :-1]).float().argmax(1)  # first slot whose size changed = k
    print(f"outputs equal at the {int(decided.sum())} of {b * p} positions whose best pair beats the next by more "
          f"than {TIE:g} in cosine (float64); at the rest, float32 rounding decides the pair "
          f"(chosen k: min {int(merged_at.min())}, max {int(merged_at.max())}, {merged_at.unique().numel()} distinct)")

    buffers = (torch.empty(b, n - 1, p, c), torch.empty(b, n - 1, p))
    compress_memory(bank, sizes, out=buffers)
    torch.testing.assert_close(buffers[0], got, rtol=0, atol=0)
    ref = Timing(lambda: compress_loop(bank, sizes), args.ref_repeats, warmup=0)
    ours = Timing(lambda: compress_memory(bank, sizes), args.repeats)
    ours_out = Timing(lambda: compress_memory(bank, sizes, out=buffers), args.repeats)
    floor = Timing(lambda: bank[:, :-1].clone(), args.repeats)
    floor_out = Timing(lambda: buffers[0].copy_(bank[:, :-1]), args.repeats)
    print()
    print(f"{'float32':52s} {'best':>12s} {'median':>12s} {'sys/call':>12s}  {'loop / this':>11s}")
    for name, t in [
        ("loop reference (baseline)", ref),
        ("mixma compress_memory (ours, a fresh result)", ours),
        ("mixma compress_memory(out=...) (ours, reused buffers)", ours_out),
        ("floor: copy N-1 slots to a fresh tensor", floor),
        ("floor: copy N-1 slots into a reused buffer", floor_out),
    ]:
        print(f"{name:52s} {ms(t.best):>12s} {ms(t.median):>12s} {ms(t.sys):>12s}  {ref.best / t.best:10.1f}x")
    print(f"speed-up of ours over the loop reference (goal >= 20x): fresh result {ref.best / ours.best:.1f}x best-vs-best "
          f"({ref.median / ours.median:.1f}x median), reused buffers {ref.best / ours_out.best:.1f}x "
          f"({ref.median / ours_out.median:.1f}x median); ours takes {ours.best / floor.best:.1f}x and "
          f"{ours_out.best / floor_out.best:.1f}x the matching copy floor")

    if not args.no_memory:
        shape = [b, n, p, c]
        mem_ours, mem_loop = peak_mib("ours", shape, args.threads), peak_mib("loop", shape, args.threads)
        out_mib = b * (n - 1) * p * c * 4 / 2**20
        print(f"peak extra RSS of one call (fresh process each, VmHWM - VmRSS before): ours {mem_ours:.0f} MiB, "
              f"loop {mem_loop:.0f} MiB; the output alone is {out_mib:.0f} MiB (ours = {mem_ours / out_mib:.1f}x the output)")

    if not args.no_dtypes:
        print()
        print(f"{'ours by dtype (the same bank, cast)':46s} {'best':>12s} {'median':>12s} {'sys/call':>12s}  {'vs fp32':>11s}")
        print(f"{'float32':46s} {ms(ours.best):>12s} {ms(ours.median):>12s} {ms(ours.sys):>12s}  {1.0:10.2f}x")
        notes = []
        for dtype in (torch.float16, torch.bfloat16):
            low, low_sizes = bank.to(dtype), sizes.to(dtype)
            out, out_sizes = compress_memory(low, low_sizes)
            same_k = (out_sizes.float() == got_sizes).all(1).float().mean()  # merged the same pair as float32
            t = Timing(lambda: compress_memory(low, low_sizes), args.repeats)
            name = str(dtype).removeprefix("torch.")
            print(f"{name:46s} {ms(t.best):>12s} {ms(t.median):>12s} {ms(t.sys):>12s}  {t.best / ours.best:10.2f}x")
            notes.append(f"{name} merges the same pair as float32 at {same_k:.1%} of positions")
        print("(" + "; ".join(notes) + ": adjacent similarities in this bank are close, so rounding flips near-ties)")

    # streaming: one compression per frame per bank, B=1, M=10 slots + the new frame
    one, one_sizes = make_bank(1, 11, p, c, seed=1)
    decided = clear_winner(one)
    (ours_one, _), (loop_one, _) = compress_memory(one, one_sizes), compress_loop(one, one_sizes)
    torch.testing.assert_close(ours_one.permute(0, 2, 1, 3)[decided], loop_one.permute(0, 2, 1, 3)[decided])
    step = Timing(lambda: compress_memory(one, one_sizes), args.repeats * 3)
    step_ref = Timing(lambda: compress_loop(one, one_sizes), args.ref_repeats, warmup=0)
    print()
    print(f"streaming step [B=1, N=11, P={p}, C={c}] (once per frame for the visual bank): ours {ms(step.best).strip()} "
          f"best, {ms(step.median).strip()} median; loop {ms(step_ref.best).strip()} ({step_ref.best / step.best:.1f}x)")
    streaming_section(args)


if __name__ == "__main__":
    main()
