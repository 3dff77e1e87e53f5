"""`mixma frames`: sample frames from a video and write them with a contact sheet."""

from __future__ import annotations

import glob
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
    videos: list[Path] = typer.Argument(..., metavar="VIDEO...", help="Video files, folders (their videos, recursively) or glob patterns."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the frames, sheet.jpg and frames.json (with several videos: a folder per video inside it)."),
    num_frames: int = typer.Option(8, "-n", "--num-frames", min=1, help="How many frames to output (T)."),
    strategy: Strategy = typer.Option(
        Strategy.uniform, "--strategy", "-s",
        help="uniform: evenly spaced frames (MA-LMM eval). segment: one random frame per equal "
        "segment (TSN, MA-LMM training). mixed: MixedFrame, each output composes a segment.",
    ),
    size: str = typer.Option(None, "--size", help="Output size: the shorter side (224) or HEIGHTxWIDTH. Default: the video's."),
    seed: int = typer.Option(None, "--seed", help="Random seed for --strategy segment. [default: 0]"),
    mode: Mode = typer.Option(None, help=f"How a segment becomes one frame: mean (long exposure), ema (recency-weighted trail), strobe (action shot). [default: {_DEFAULTS.mode}]", rich_help_panel=MIXED),
    change_threshold: float = typer.Option(None, help=f"Least change score (0-255; a pixel scores its largest YCbCr channel difference) that can count as a sudden change. [default: {_DEFAULTS.change_threshold:g}]", rich_help_panel=MIXED),
    change_ratio: float = typer.Option(None, help=f"How many times its cell's own baseline (the calmer of the recent and the coming scores) a sudden change must reach. [default: {_DEFAULTS.change_ratio:g}]", rich_help_panel=MIXED),
    cut_fraction: float = typer.Option(None, help=f"A cut: at least this share of the grid's cells jump together (fewer: a local event). [default: {_DEFAULTS.cut_fraction:g}]", rich_help_panel=MIXED),
    max_action_sec: float = typer.Option(None, help=f"Longest span, in seconds, a segment starts with; longer ones form only when T forces it. [default: {_DEFAULTS.max_action_sec:g}]", rich_help_panel=MIXED),
    burst_sec: float = typer.Option(None, help=f"An event closer than this (seconds) to the changes before and after it is inside a burst and gets no output of its own. [default: {_DEFAULTS.burst_sec:g}]", rich_help_panel=MIXED),
    step: int = typer.Option(None, min=1, help="Analyse every STEP-th frame. [default: about 10 frames per second]", rich_help_panel=MIXED),
    size_cap: int = typer.Option(None, min=2, help=f"Without --size: compose (and write) at the source size, shorter side capped at this. [default: {_DEFAULTS.size_cap}]", rich_help_panel=MIXED),
    alpha: float = typer.Option(None, help=f"ema: weight of the newest frame; 0.5 reproduces the MixMA-LMM fork. [default: {_DEFAULTS.alpha:g}]", rich_help_panel=MIXED),
    instances: int = typer.Option(None, min=1, help=f"strobe: how many moments are pasted onto the background. [default: {_DEFAULTS.instances}]", rich_help_panel=MIXED),
    fg_threshold: float = typer.Option(None, help=f"strobe: difference from the background (0-255) that counts as moving foreground. [default: {_DEFAULTS.fg_threshold:g}]", rich_help_panel=MIXED),
    align: bool = typer.Option(None, "--align/--no-align", help=f"strobe: undo the camera's motion (pans, handheld) before the background and the masks. [default: {'--align' if _DEFAULTS.align else '--no-align'}]", rich_help_panel=MIXED),
    max_foreground: float = typer.Option(None, help=f"strobe: when more of the picture than this share moves, use the mean instead. [default: {_DEFAULTS.max_foreground:g}]", rich_help_panel=MIXED),
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
    check_options(strategy, options, seed)
    if output.exists() and not output.is_dir():
        raise fail(f"-o {output}: a file, not a folder")
    from mixma.video.files import expand_paths

    files, unmatched = expand_paths(videos)
    if unmatched:
        raise fail(f"{unmatched[0]}: " + ("no file matches" if glob.has_magic(unmatched[0]) else "no such file"))
    if not files:
        raise fail("no video files found")
    targets = output_folders(files, output)
    failed = [message for path, target in zip(files, targets)
              if (message := write_one(path, target, num_frames, strategy, parse_size(size), seed, options, quality))]
    for message in failed:
        typer.echo(f"error: {message}", err=True)
    if failed:
        if len(failed) < len(files):
            typer.echo(f"{len(files) - len(failed)} of {len(files)} videos written; {len(failed)} could not be read", err=True)
        raise typer.Exit(2)


def check_options(strategy: Strategy, options: dict, seed: int | None) -> None:
    """Options that cannot apply are errors: MixedFrame's without --strategy mixed, a mode's own
    with another mode, --seed without --strategy segment."""
    if options and strategy is not Strategy.mixed:
        flags = ", ".join("--align/--no-align" if k == "align" else "--" + k.replace("_", "-") for k in options)
        raise fail(f"{flags} {'applies' if len(options) == 1 else 'apply'} only to --strategy mixed")
    MixedConfig(**options)  # a value out of range says so first (ValueError: one error line)
    if seed is not None and strategy is not Strategy.segment:
        raise fail("--seed applies only to --strategy segment (the others draw nothing at random)")
    mode = options.get("mode", _DEFAULTS.mode)
    for name, needs in (("alpha", "ema"), ("instances", "strobe"), ("fg_threshold", "strobe"), ("align", "strobe"),
                        ("max_foreground", "strobe")):
        if name in options and mode != needs:
            flag = "--align/--no-align" if name == "align" else "--" + name.replace("_", "-")
            raise fail(f"{flag} applies only to --mode {needs} (the mode is {mode})")


def output_folders(files: list[Path], output: Path) -> list[Path]:
    """One video: `output` itself; several: a folder per video inside it, named by its file name."""
    if len(files) == 1:
        return [output]
    names = [f.stem for f in files]
    return [output / (f.stem if names.count(f.stem) == 1 else f"{f.stem}{f.suffix.replace('.', '_')}") for f in files]


def write_one(video: Path, output: Path, num_frames: int, strategy: Strategy, size, seed: int | None,
              options: dict, quality: int) -> str | None:
    """Sample one video and write its frames; returns why it could not be read (None: written)."""
    from mixma.errors import VideoError
    from mixma.video.reader import VideoReader

    try:
        with VideoReader(video) as reader:
            available = reader.num_frames
            if num_frames > available:
                typer.echo(f"warning: {video} has {available} frames, fewer than -n {num_frames}: writing {available}", err=True)
            wanted = min(num_frames, available)  # repeated frames would only balloon the sheet
            _warn_upscaling(video, size, reader.info.width, reader.info.height)
            sample = sample_frames(reader, wanted, strategy.value, size=size, progress=True,
                                   seed=(0 if seed is None else seed) if strategy is Strategy.segment else None, **options)
    except VideoError as exc:
        return str(exc)
    save_sample(sample, output, quality=quality)
    typer.echo(f"wrote {len(sample)} frames, sheet.jpg and frames.json to {output}", err=True)
    return None


def _warn_upscaling(video: Path, size, width: int, height: int) -> None:
    if size is None:
        return
    larger = size > min(width, height) if isinstance(size, int) else (size[0] > height or size[1] > width)
    if larger:
        typer.echo(f"warning: --size {size if isinstance(size, int) else f'{size[0]}x{size[1]}'} is larger than "
                   f"{video.name}'s {width}x{height}: frames are upscaled", err=True)
