"""`mixma frames`: sample frames from a video and write them with a contact sheet."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from mixma.cli._common import fail
from mixma.video.export import save_sample
from mixma.video.mixed_config import MODES, MixedConfig
from mixma.video.sampling import sample_frames

_DEFAULTS = MixedConfig()


class Strategy(str, Enum):
    uniform = "uniform"
    segment = "segment"
    mixed = "mixed"


Mode = Enum("Mode", {m: m for m in MODES}, type=str)  # the choices of MixedConfig.mode


def parse_size(text: str | None):
    """'224' is the shorter side; '224x398' is height x width."""
    if text is None:
        return None
    try:
        if "x" in text:
            height, width = (int(v) for v in text.lower().split("x"))
            return (height, width)
        return int(text)
    except ValueError:
        raise fail(f"--size must be a number (shorter side) or HEIGHTxWIDTH, got {text!r}") from None


MIXED = "MixedFrame options (--strategy mixed)"


def frames(
    video: Path = typer.Argument(..., help="The video file."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the frames, sheet.jpg and frames.json."),
    num_frames: int = typer.Option(8, "-n", "--num-frames", min=1, help="How many frames to output (T)."),
    strategy: Strategy = typer.Option(
        Strategy.uniform, "--strategy", "-s",
        help="uniform: evenly spaced frames (MA-LMM eval). segment: one random frame per equal "
        "segment (TSN, MA-LMM training). mixed: MixedFrame, each output composes a segment.",
    ),
    size: str = typer.Option(None, "--size", help="Output size: the shorter side (224) or HEIGHTxWIDTH. Default: the video's."),
    seed: int = typer.Option(0, "--seed", help="Random seed for --strategy segment."),
    mode: Mode = typer.Option(None, help=f"How a segment becomes one frame: mean (long exposure), ema (recency-weighted trail), strobe (action shot). \\[default: {_DEFAULTS.mode}]", rich_help_panel=MIXED),
    change_threshold: float = typer.Option(None, help=f"Least change score (0-255; a pixel scores its largest YCbCr channel difference) that can count as a sudden change. \\[default: {_DEFAULTS.change_threshold:g}]", rich_help_panel=MIXED),
    change_ratio: float = typer.Option(None, help=f"How many times its cell's own baseline (the calmer of the recent and the coming scores) a sudden change must reach. \\[default: {_DEFAULTS.change_ratio:g}]", rich_help_panel=MIXED),
    cut_fraction: float = typer.Option(None, help=f"A cut: at least this share of the grid's cells jump together (fewer: a local event). \\[default: {_DEFAULTS.cut_fraction:g}]", rich_help_panel=MIXED),
    max_action_sec: float = typer.Option(None, help=f"Longest span, in seconds, a segment starts with; longer ones form only when T forces it. \\[default: {_DEFAULTS.max_action_sec:g}]", rich_help_panel=MIXED),
    burst_sec: float = typer.Option(None, help=f"An event closer than this (seconds) to the changes before and after it is inside a burst and gets no output of its own. \\[default: {_DEFAULTS.burst_sec:g}]", rich_help_panel=MIXED),
    step: int = typer.Option(None, min=1, help="Analyse every STEP-th frame. \\[default: about 10 frames per second]", rich_help_panel=MIXED),
    size_cap: int = typer.Option(None, min=2, help=f"Without --size: compose (and write) at the source size, shorter side capped at this. \\[default: {_DEFAULTS.size_cap}]", rich_help_panel=MIXED),
    alpha: float = typer.Option(None, help=f"ema: weight of the newest frame; 0.5 reproduces the MixMA-LMM fork. \\[default: {_DEFAULTS.alpha:g}]", rich_help_panel=MIXED),
    instances: int = typer.Option(None, min=1, help=f"strobe: how many moments are pasted onto the background. \\[default: {_DEFAULTS.instances}]", rich_help_panel=MIXED),
    fg_threshold: float = typer.Option(None, help=f"strobe: difference from the background (0-255) that counts as moving foreground. \\[default: {_DEFAULTS.fg_threshold:g}]", rich_help_panel=MIXED),
    align: bool = typer.Option(None, "--align/--no-align", help=f"strobe: undo the camera's motion (pans, handheld) before the background and the masks. \\[default: {'--align' if _DEFAULTS.align else '--no-align'}]", rich_help_panel=MIXED),
    max_foreground: float = typer.Option(None, help=f"strobe: when more of the picture than this share moves, use the mean instead. \\[default: {_DEFAULTS.max_foreground:g}]", rich_help_panel=MIXED),
    quality: int = typer.Option(92, min=1, max=100, help="JPEG quality."),
):
    """Sample frames from a video and write them with a contact sheet.

    Writes the frames as JPEGs, a labelled contact sheet (sheet.jpg) and frames.json (each
    frame's source span and centre time, the options used, and for --strategy mixed what each
    output did: the mode it was composed with, what begins its span, whether its frames were
    aligned, why a strobe fell back to the mean).

    Examples:

      mixma frames talk.mp4 -n 16 -o out/

      mixma frames talk.mp4 -n 16 --strategy mixed --mode strobe --size 224 -o out/
    """
    given = {
        "mode": mode.value if mode else None, "change_threshold": change_threshold, "change_ratio": change_ratio,
        "cut_fraction": cut_fraction, "max_action_sec": max_action_sec, "burst_sec": burst_sec, "step": step,
        "size_cap": size_cap, "alpha": alpha, "instances": instances, "fg_threshold": fg_threshold, "align": align,
        "max_foreground": max_foreground,
    }
    options = {k: v for k, v in given.items() if v is not None}
    if options and strategy is not Strategy.mixed:
        flags = ", ".join("--align/--no-align" if k == "align" else "--" + k.replace("_", "-") for k in options)
        raise fail(f"{flags} {'applies' if len(options) == 1 else 'apply'} only to --strategy mixed")
    sample = sample_frames(
        video, num_frames, strategy.value, size=parse_size(size),
        seed=seed if strategy is Strategy.segment else None, progress=True, **options,
    )
    save_sample(sample, output, quality=quality)
    typer.echo(f"wrote {len(sample)} frames, sheet.jpg and frames.json to {output}", err=True)
