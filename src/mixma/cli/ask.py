"""`mixma ask` and `mixma caption`: a trained MA-LMM on one video."""

from __future__ import annotations

from pathlib import Path

import typer

from mixma.cli._common import fail, quiet_transformers, warnings_as_lines

CHECKPOINT_HELP = "An MA-LMM training run folder, a checkpoint folder, or an MA-LMM/InstructBLIP model folder."
STRATEGY_HELP = "Frame sampling: uniform, segment or mixed. [default: as the run evaluates]"


def _assistant(checkpoint: Path, video: Path, strategy: str | None):
    from mixma.video.sampling import STRATEGIES

    if strategy is not None and strategy not in STRATEGIES:
        raise fail(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if not video.exists():
        raise fail(f"{video}: no such file")
    quiet_transformers()
    from mixma.inference import VideoAssistant

    return VideoAssistant.from_checkpoint(checkpoint)


def _show(answer, beams: bool) -> None:
    if not answer.text.strip():  # a blank line alone reads as a failure
        typer.echo("warning: the model generated no text (only special tokens); "
                   "is the checkpoint trained, and for this kind of question?", err=True)
    if not beams:
        typer.echo(answer.text)
        return
    for i, text in enumerate(answer.beams):
        score = f"{answer.scores[i]:8.3f}  " if i < len(answer.scores) else ""
        typer.echo(f"{score}{text}")


def ask(
    video: Path = typer.Argument(..., help="The video file."),
    question: str = typer.Argument(..., help="The question, in quotes."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help=CHECKPOINT_HELP),
    num_frames: int = typer.Option(None, "-n", "--num-frames", min=1, help="Frames to sample. [default: as trained]"),
    strategy: str = typer.Option(None, "--strategy", help=STRATEGY_HELP),
    beams: bool = typer.Option(False, "--beams", help="Print every beam, best first, each with its score (log-probability)."),
):
    """Answer a question about a video with a trained MA-LMM.

    Example:

      mixma ask clip.mp4 "how many times did the red circle appear?" -c runs/malmm
    """
    if not question.strip():
        raise fail("the question is empty")
    assistant = _assistant(checkpoint, video, strategy)
    with warnings_as_lines():
        _show(assistant.ask(video, question, num_frames=num_frames, strategy=strategy), beams)


def caption(
    video: Path = typer.Argument(..., help="The video file."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help=CHECKPOINT_HELP),
    num_frames: int = typer.Option(None, "-n", "--num-frames", min=1, help="Frames to sample. [default: as trained]"),
    strategy: str = typer.Option(None, "--strategy", help=STRATEGY_HELP),
    beams: bool = typer.Option(False, "--beams", help="Print every beam, best first, each with its score (log-probability)."),
):
    """Describe a video with a trained MA-LMM.

    Example:

      mixma caption clip.mp4 -c runs/malmm-captions
    """
    assistant = _assistant(checkpoint, video, strategy)
    with warnings_as_lines():
        _show(assistant.caption(video, num_frames=num_frames, strategy=strategy), beams)
