"""`mixma.ImageEncoder` (EfficientNet-Lite0) throughput, and peak memory of embedding a long video.

Throughput: the same float input `[32, 3, 224, 224]` through
- ours: `ImageEncoder.from_pretrained("efficientnet-lite0")` forward to pooled features (BatchNorm
  folded into the convolutions in eval mode), channels-last (our default) and plain NCHW, and
  channels-last with BatchNorm run as separate passes (to measure what folding buys);
- baseline: transformers' `EfficientNetModel` with EfficientNet-B0's configuration (width and depth
  1.0, 224 px, head 1280: `EfficientNetConfig()`'s own defaults are B7), random weights, to
  `pooler_output`, NCHW (as it ships) and converted to channels-last;
both at `--threads` torch threads under `inference_mode`, rounds interleaved, median of
`--repeats` (after a warm-up call each). Also in the rounds: ours on uint8 frames end to end
(`embed` of 32 640x360 frames: crop, resize, normalise, forward). Denormal floats are flushed to zero
(`torch.set_flush_denormal(True)`) unless `--keep-denormals`: with its random initialisation
(conv weights of std 0.02, BatchNorm running statistics 0 / 1) the baseline's activations shrink
layer by layer to ~1e-44, and arithmetic on denormals is many times slower on x86, which would
measure the initialisation rather than the architecture. Ours (real weights) has none either way.
The ratio is ours / B0 time (goal <= 1.0).

Peak memory: `encoder.stream(VideoReader(path).stream(step=30))` (one frame per second) over a
generated 1-minute and 10-minute 640x360 H.264 video (`benchmarks/_videos.py`), each in a fresh
process, keeping every embedding as a search index would; peak RSS (the child's VmHWM) and the
10/1 ratio (goal: flat, <= 1.2).

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_image_encoder.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from _videos import long_video

BATCH, SIZE = 32, 224
STREAM_STEP = 30  # one frame per second of the 30 fps test videos


def b0_baseline():
    from transformers import EfficientNetConfig, EfficientNetModel

    config = EfficientNetConfig(image_size=224, width_coefficient=1.0, depth_coefficient=1.0, hidden_dim=1280,
                                dropout_rate=0.2)
    torch.manual_seed(0)
    return EfficientNetModel(config).eval()


def unfolded(encoder):
    """`encoder` with every eval-mode BatchNorm run as its own pass (conv → bn → ReLU6), to measure folding."""
    import types

    import torch.nn.functional as F
    from mixma.models.vision.mbconv import RELU6_MAX, ConvBNAct

    def forward(layer, x):
        x, padding = layer._pad(x)
        x = layer.bn(F.conv2d(x, layer.conv.weight, None, layer.conv.stride, padding, 1, layer.conv.groups))
        return F.hardtanh(x, 0.0, RELU6_MAX, inplace=True) if layer.act else x

    for module in encoder.modules():
        if isinstance(module, ConvBNAct):
            module.forward = types.MethodType(forward, module)
    return encoder


def candidates():
    """name → (callable, its input); every callable returns `[32, 1280]` pooled features."""
    from mixma.models.vision import ImageEncoder

    ours = ImageEncoder.from_pretrained("efficientnet-lite0")
    ours_nchw = ImageEncoder.from_pretrained("efficientnet-lite0", channels_last=False)
    ours_unfolded = unfolded(ImageEncoder.from_pretrained("efficientnet-lite0"))
    b0 = b0_baseline()
    b0_cl = b0_baseline().to(memory_format=torch.channels_last)
    x = torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    frames = np.random.default_rng(0).integers(0, 256, (BATCH, 360, 640, 3), dtype=np.uint8)
    return {
        "ours, channels-last (default)": (lambda t: ours(t).pooled, x_cl),
        "ours, NCHW": (lambda t: ours_nchw(t).pooled, x),
        "ours, channels-last, BN not folded": (lambda t: ours_unfolded(t).pooled, x_cl),
        "HF EfficientNet-B0, NCHW": (lambda t: b0(pixel_values=t).pooler_output, x),
        "HF EfficientNet-B0, channels-last": (lambda t: b0_cl(pixel_values=t).pooler_output, x_cl),
        "ours, embed(uint8 [32, 360, 640, 3])": (ours.embed, frames),  # crop, resize, normalise too
    }


def time_once(fn, x) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        out = fn(x)
        elapsed = time.perf_counter() - start
    assert out.shape == (BATCH, 1280), out.shape
    return elapsed


def throughput(repeats: int, keep_denormals: bool) -> None:
    runs = candidates()
    for fn, x in runs.values():
        time_once(fn, x)  # warm-up: oneDNN builds its kernels on the first call of each shape
    times = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so load changes on the shared machine hit all alike
        for name, (fn, x) in runs.items():
            times[name].append(time_once(fn, x))
    medians = {name: statistics.median(t) for name, t in times.items()}
    baseline = medians["HF EfficientNet-B0, NCHW"]
    best_b0 = min(baseline, medians["HF EfficientNet-B0, channels-last"])
    denormals = "kept" if keep_denormals else "flushed to zero"
    print(f"batch {BATCH} at {SIZE} px, {torch.get_num_threads()} threads, denormals {denormals}, median of {repeats}:")
    for name, t in medians.items():
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        print(f"  {name:38s} {t:7.3f} s  ({spread})  {BATCH / t:7.1f} frames/s  {t / baseline:5.2f}x HF B0 NCHW"
              f"  {t / best_b0:5.2f}x the faster HF B0")


def profile() -> None:
    runs = candidates()
    for name in ("ours, channels-last (default)", "HF EfficientNet-B0, NCHW"):
        fn, x = runs[name]
        time_once(fn, x)
        with torch.profiler.profile() as prof, torch.inference_mode():
            fn(x)
        print(f"== {name}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not `getrusage`: on Linux a child's `ru_maxrss` starts at
    its parent's high-water mark (it survives the exec), so it would report the parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(minutes: float, batch_size: int) -> None:
    """Embed one video in this (fresh) process and print the peak RSS as JSON."""
    from mixma.models.vision import ImageEncoder
    from mixma.video.reader import VideoReader

    encoder = ImageEncoder.from_pretrained("efficientnet-lite0", batch_size=batch_size)
    loaded = peak_rss_mb()
    start = time.perf_counter()
    with VideoReader(long_video(minutes)) as video:
        batches = list(encoder.stream(video.stream(step=STREAM_STEP)))
    embeddings = torch.cat([b.values for b in batches])
    print(json.dumps({"rss_mb": peak_rss_mb(), "loaded_mb": loaded, "frames": len(embeddings),
                      "seconds": time.perf_counter() - start}))


def memory(threads: int, batch_size: int) -> None:
    long_video(1), long_video(10)  # generate (cached) outside the measured processes
    results = {}
    for minutes in (1, 10):
        cmd = [sys.executable, __file__, "--child", str(minutes), "--threads", str(threads),
               "--batch-size", str(batch_size)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[minutes] = r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"stream step {STREAM_STEP}, batch {batch_size}, {minutes:2d} min: {r['frames']:4d} frames in "
              f"{r['seconds']:6.1f} s ({r['frames'] / r['seconds']:5.1f} frames/s incl. decoding), peak RSS "
              f"{r['rss_mb']:7.1f} MB ({r['loaded_mb']:.1f} MB after loading the encoder)")
    print(f"peak RSS 10 min / 1 min: {results[10]['rss_mb'] / results[1]['rss_mb']:.2f} (goal: flat, <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print the top operators of ours and of HF B0")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput comparison")
    parser.add_argument("--keep-denormals", action="store_true",
                        help="do not flush denormals (the random baseline then runs on denormal activations)")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per forward pass when streaming")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.keep_denormals)
    if args.child is not None:
        return child(args.child, args.batch_size)
    if args.profile:
        return profile()
    if not args.no_throughput:
        throughput(args.repeats, args.keep_denormals)
    if not args.no_memory:
        memory(args.threads, args.batch_size)


if __name__ == "__main__":
    main()
