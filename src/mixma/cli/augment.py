"""`mixma augment-captions`: add LVLM captions to an annotation file (MAMA's data augmentation)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from mixma.augment.captioner import PROMPTS, CaptionConfig
from mixma.augment.grid import GridConfig, parse_grid
from mixma.augment.keyframes import KeyframeConfig
from mixma.augment.pipeline import AugmentConfig, augment_captions
from mixma.cli._common import fail, quiet_transformers
from mixma.data.annotations import read_records

_KEYFRAMES, _GRID, _CAPTION, _AUGMENT = KeyframeConfig(), GridConfig(), CaptionConfig(), AugmentConfig()
SAMPLING = "Sampling and filtering"
RUN = "Run"


class Method(str, Enum):
    diff = "diff"
    mixed = "mixed"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


def augment_captions_command(
    annotations: Path = typer.Argument(..., help="The annotation file (canonical JSONL); video paths are relative to its folder."),
    model: Path = typer.Option(..., "--model", "-m", help="A LLaVA model folder in Hugging Face layout, e.g. a download of llava-hf/llava-1.5-7b-hf."),
    output: Path = typer.Option(..., "-o", "--output", help="The annotation file to write, with the captions added to 'augmented'."),
    keyframes: Method = typer.Option(
        Method(_KEYFRAMES.method), "--keyframes",
        help="diff: frames where the picture changes (frame-difference peaks, MAMA), filled up with evenly spaced frames. "
        "mixed: the middle frames of MixedFrame's motion-coherent segments.",
    ),
    num_keyframes: int = typer.Option(None, "--num-keyframes", min=1, help="Keyframes per video. [default: rows x columns of --grid]"),
    grid: str = typer.Option(f"{_GRID.rows}x{_GRID.cols}", "--grid", help="Mosaic layout, ROWSxCOLUMNS; keyframes fill it left to right, top to bottom."),
    captions_per_video: int = typer.Option(_AUGMENT.captions_per_video, "--captions-per-video", "-n", min=1, help="Captions to add per video, each sampled separately."),
    prompt: str = typer.Option(
        _AUGMENT.prompt, "--prompt",
        help=f"The instruction, or a preset: {', '.join(f'{k} ({v!r})' for k, v in PROMPTS.items())}.",
    ),
    temperature: float = typer.Option(_CAPTION.temperature, "--temperature", min=0, help="Sampling temperature; 0 decodes greedily (one caption per video).", rich_help_panel=SAMPLING),
    max_new_tokens: int = typer.Option(_CAPTION.max_new_tokens, "--max-new-tokens", min=1, help="Generated tokens per caption at most.", rich_help_panel=SAMPLING),
    length_tokenizer: Path = typer.Option(
        None, "--length-tokenizer",
        help="A tokenizer folder (MAMA: bert-base-uncased) for --max-caption-tokens. Without it captions are not length-filtered.",
        rich_help_panel=SAMPLING,
    ),
    max_caption_tokens: int = typer.Option(_CAPTION.max_caption_tokens, "--max-caption-tokens", min=3, help="Drop captions longer than this (length-tokenizer tokens, [CLS] and [SEP] included) and sample again.", rich_help_panel=SAMPLING),
    max_retries: int = typer.Option(_CAPTION.max_retries, "--max-retries", min=0, help="Extra sampling rounds for captions that were dropped; then a video keeps what it has.", rich_help_panel=SAMPLING),
    seed: int = typer.Option(_AUGMENT.seed, "--seed", min=0, help="Sampling seed; each video's own seed derives from it and the video's id.", rich_help_panel=SAMPLING),
    save_grids: Path = typer.Option(None, "--save-grids", help="Also save each video's mosaic as DIR/<id>.jpg, for inspection.", rich_help_panel=RUN),
    limit: int = typer.Option(None, "--limit", min=0, help="Caption and write only the first N records (a trial run; a later full run continues from it).", rich_help_panel=RUN),
    replace: bool = typer.Option(_AUGMENT.replace, "--replace", help="Replace the records' existing augmented captions instead of appending to them.", rich_help_panel=RUN),
    restart: bool = typer.Option(False, "--restart", help="Discard the progress of an earlier, unfinished run and start over.", rich_help_panel=RUN),
    device: str = typer.Option("auto", "--device", help="auto (a GPU if there is one), cpu, cuda, cuda:1, ...", rich_help_panel=RUN),
    dtype: DType = typer.Option(DType.auto, "--dtype", help="Model precision; auto is float16 on a GPU, float32 on the CPU.", rich_help_panel=RUN),
):
    """Caption every video of an annotation file with LLaVA and add the captions to 'augmented'.

    MAMA's augmentation: per video, keyframes are tiled into one mosaic (3x4), LLaVA describes it, "image(s)" becomes "video", and captions that are too long are sampled again.

    The run is resumable: finished videos are logged to OUTPUT.progress as they finish, and running the same command again continues where a stopped run left off, giving the same file as one uninterrupted run. Videos that cannot be read are skipped and listed at the end (a rerun retries them).

    Exit code: 0 when at least one video was captioned (or there was nothing to caption); 1 when none was, and nothing is written; 2 for bad input (annotation file, model folder, options).

    Examples:

      mixma augment-captions train.jsonl --model llava-1.5-7b-hf -o train_aug.jsonl

      mixma augment-captions train.jsonl -m llava-1.5-7b-hf -o train_aug.jsonl -n 2 --keyframes mixed --save-grids grids/ --limit 20
    """
    try:
        rows, cols = parse_grid(grid)
    except ValueError as exc:
        raise fail(f"--grid: {exc}") from None
    if num_keyframes is not None and num_keyframes != rows * cols:
        raise fail(f"--num-keyframes {num_keyframes} does not fill a {rows}x{cols} grid ({rows * cols} frames)")
    config = AugmentConfig(
        keyframes=KeyframeConfig(method=keyframes.value, num_keyframes=rows * cols),
        grid=GridConfig(rows=rows, cols=cols),
        prompt=prompt,
        captions_per_video=captions_per_video,
        seed=seed,
        replace=replace,
    )
    caption_config = CaptionConfig(temperature=temperature, max_new_tokens=max_new_tokens,
                                   max_caption_tokens=max_caption_tokens, max_retries=max_retries)
    if temperature == 0 and captions_per_video > 1:
        raise fail("--temperature 0 decodes greedily and gives one caption per video; raise it for --captions-per-video > 1")
    read_records(annotations)  # bad input fails here, before a model of several GB loads

    quiet_transformers()
    from mixma.augment.llava import LlavaCaptioner

    tokenizer = _load_tokenizer(length_tokenizer) if length_tokenizer is not None else None
    captioner = LlavaCaptioner.from_pretrained(model, caption_config, device=device, dtype=dtype.value, length_tokenizer=tokenizer)
    summary = augment_captions(annotations, output, captioner, config, save_grids=save_grids, limit=limit,
                               resume=not restart, progress=True)
    for line in summary.lines():
        typer.echo(line, err=True)
    if not summary.ok:
        raise typer.Exit(1)


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    if not path.is_dir():
        raise fail(f"--length-tokenizer {path}: no such folder")
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(f"--length-tokenizer {path}: cannot load a tokenizer ({first})") from None
