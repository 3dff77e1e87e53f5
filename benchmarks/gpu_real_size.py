"""MA-LMM at its full size (EVA ViT-g, Q-Former, Vicuna-7B's architecture) in bfloat16 on a GPU.

Prepared for a GPU machine (about 5 minutes, most of it imports and building): random weights
are built directly on the device (`MALMM(config)` under `torch.device("cuda")` and a bfloat16
default dtype: each weight is allocated once, there, and initialised there; nothing on the CPU),
then, batch 1:

1. streaming: `--frames` frames (a 100-frame video, `total_frames=100`) through `encode_frames`
   in calls of `--chunk` frames, carrying the memory state. After every call: seconds
   (synchronised) and GPU memory allocated, plus the peak since streaming began. Goal: flat.
2. the whole model: `generate` on the same video (5 beams, 10 new tokens, as MA-LMM's
   classification), seconds and peak memory.
3. baseline: the same weights with memory off (`memory_bank_length = 0`, MA-LMM's own
   ablation): one forward with all frames at once and every frame's 32 query outputs in the LLM
   (3,200 visual tokens at 100 frames); its peak memory against streaming's.

Writes `$OUT/gpu_real_size.json` (every number) and `$OUT/gpu_real_size.png` (memory and seconds
per frame against frames), and prints a summary. `--tiny` runs the same code with tiny sizes on
the CPU in float32 (what the test suite runs), memory then being the process's RSS.

Run: OUT=/tmp/out python benchmarks/gpu_real_size.py            (a CUDA GPU; ~16 GB of weights)
     OUT=/tmp/out python benchmarks/gpu_real_size.py --tiny     (anywhere, seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from mixma.models.malmm import MALMM, MALMMConfig
from mixma.models.malmm.sizes import IMAGE_TOKEN, real_config


def tiny_config(memory_bank_length: int) -> MALMMConfig:
    from transformers import InstructBlipQFormerConfig, InstructBlipVisionConfig, LlamaConfig

    return MALMMConfig(
        vision_config=InstructBlipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                               image_size=32, patch_size=8, initializer_range=0.02).to_dict(),
        qformer_config=InstructBlipQFormerConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                 encoder_hidden_size=32, vocab_size=100).to_dict(),
        text_config=LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                vocab_size=IMAGE_TOKEN + 1, bos_token_id=1, eos_token_id=2, pad_token_id=0).to_dict(),
        num_query_tokens=32, image_token_index=IMAGE_TOKEN, memory_bank_length=memory_bank_length,
    )


class Meter:
    """Seconds and memory on the model's device (GPU allocator, or the process's RSS on the CPU)."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")

    def now_gib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device) / 2**30
        return _status_kib("VmRSS") / 2**20

    def peak_gib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        return _status_kib("VmHWM") / 2**20


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def build(config: MALMMConfig, device: torch.device, dtype: torch.dtype) -> MALMM:
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            model = MALMM(config)
    finally:
        torch.set_default_dtype(default)
    return model.eval()


def inputs(config: MALMMConfig, frames: int, visual_tokens: int, device, dtype, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    size = config.vision_config.image_size
    ids = torch.randint(3, 90, (1, 12), generator=g)
    prompt = torch.randint(3, 90, (1, 16), generator=g)
    return {
        "pixel_values": torch.randn(1, frames, 3, size, size, generator=g).to(device, dtype),
        "qformer_input_ids": ids.to(device),
        "input_ids": torch.cat([torch.full((1, visual_tokens), config.image_token_index), prompt], 1).to(device),
    }


def stream(model: MALMM, batch: dict, args, meter: Meter) -> list[dict]:
    meter.sync()
    meter.reset_peak()
    memory, calls = None, []
    pixels = batch["pixel_values"]
    for first in range(0, pixels.shape[1], args.chunk):
        chunk = pixels[:, first : first + args.chunk]
        start = time.perf_counter()
        _, memory = model.encode_frames(chunk, batch["qformer_input_ids"], memory=memory, total_frames=args.total)
        meter.sync()
        calls.append({"frames": first + chunk.shape[1], "seconds": time.perf_counter() - start,
                      "memory_gib": meter.now_gib(), "peak_gib": meter.peak_gib()})
        print(json.dumps(calls[-1]), flush=True)
    return calls


def timed(fn, meter: Meter) -> dict:
    meter.sync()
    meter.reset_peak()
    start = time.perf_counter()
    fn()
    meter.sync()
    return {"seconds": time.perf_counter() - start, "peak_gib": meter.peak_gib()}


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls = result["streaming"]
    frames = [c["frames"] for c in calls]
    per_frame = [c["seconds"] / (c["frames"] - (calls[i - 1]["frames"] if i else 0)) for i, c in enumerate(calls)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(frames, [c["peak_gib"] for c in calls], "o-", label="streaming: peak since start")
    left.plot(frames, [c["memory_gib"] for c in calls], "s--", label="streaming: after the call")
    left.axhline(result["memory_off"]["peak_gib"], color="r", label=f"memory off, {result['frames']} frames at once: peak")
    left.set_xlabel("frames streamed")
    left.set_ylabel("GiB")
    left.legend(fontsize=8)
    right.plot(frames, per_frame, "o-")
    right.set_xlabel("frames streamed")
    right.set_ylabel("seconds per frame (each call)")
    fig.suptitle(f"MA-LMM {result['architecture']}, {result['dtype']}, {result['device_name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU in float32 (the test)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--total", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--memory-bank-length", type=int, default=20)
    parser.add_argument("--out", default=os.environ.get("OUT"), help="output folder (default $OUT)")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("set $OUT or pass --out")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        device, dtype = torch.device("cpu"), torch.float32
        config, name = tiny_config(args.memory_bank_length), "tiny"
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --tiny to try the script on the CPU")
        device, dtype = torch.device("cuda"), torch.bfloat16
        config, name = real_config(memory_bank_length=args.memory_bank_length, vision_chunk=args.chunk), "EVA ViT-g + Q-Former + Vicuna-7B-sized Llama"
        config.vision_config.initializer_range = 0.02  # a live random encoder (InstructBLIP's 1e-10 is for loading)
    meter = Meter(device)
    start = time.perf_counter()
    model = build(config, device, dtype)
    meter.sync()
    result = {"architecture": name, "dtype": str(dtype).removeprefix("torch."), "frames": args.frames,
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
              "parameters": sum(p.numel() for p in model.parameters()),
              "build": {"seconds": time.perf_counter() - start, "memory_gib": meter.now_gib()}}
    nq = config.num_query_tokens
    batch = inputs(config, args.frames, nq, device, dtype)
    with torch.no_grad():
        result["streaming"] = stream(model, batch, args, meter)
        result["generate"] = timed(lambda: model.generate(**batch, num_beams=5, max_new_tokens=10, do_sample=False), meter)
        model.config.memory_bank_length = 0  # the same weights, memory off: all frames at once into the LLM
        off = inputs(config, args.frames, args.frames * nq, device, dtype)
        result["memory_off"] = timed(lambda: model(**off), meter)
    calls = result["streaming"]
    first, last = calls[0], calls[-1]
    steady = [c["seconds"] / args.chunk for c in calls[1:]] or [first["seconds"] / first["frames"]]
    weights = result["build"]["memory_gib"]
    result["summary"] = {
        "seconds_per_frame": sorted(steady)[len(steady) // 2],
        "peak_growth": last["peak_gib"] / first["peak_gib"],
        "memory_off_over_streaming_peak": result["memory_off"]["peak_gib"] / last["peak_gib"],
        # beyond the weights (what the video costs)
        "streaming_extra_gib": last["peak_gib"] - weights,
        "memory_off_extra_gib": result["memory_off"]["peak_gib"] - weights,
    }
    (out / "gpu_real_size.json").write_text(json.dumps(result, indent=2) + "\n")
    figure(result, out / "gpu_real_size.png")
    s = result["summary"]
    print(f"{name}, {result['parameters'] / 1e9:.2f} B parameters, {result['dtype']} on {result['device_name']}: built in "
          f"{result['build']['seconds']:.1f} s ({result['build']['memory_gib']:.2f} GiB); streaming {s['seconds_per_frame'] * 1e3:.1f} "
          f"ms/frame, peak at frame {last['frames']} / at frame {first['frames']} = {s['peak_growth']:.3f}x; generate "
          f"{result['generate']['seconds']:.2f} s; memory off at {args.frames} frames peaks {s['memory_off_over_streaming_peak']:.2f}x "
          f"streaming's ({result['memory_off']['peak_gib']:.2f} vs {last['peak_gib']:.2f} GiB; beyond the weights "
          f"{s['memory_off_extra_gib']:.2f} vs {s['streaming_extra_gib']:.2f} GiB)")
    return result


if __name__ == "__main__":
    main()
