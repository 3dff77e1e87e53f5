"""`mixma ask` and `mixma caption`: a trained MA-LMM on one video."""

from __future__ import annotations

from pathlib import Path

import typer

from mixma.cli.app import app, quiet_transformers

CHECKPOINT_HELP = "A training run folder, a checkpoint folder, or an MA-LMM/InstructBLIP model folder."


@app.command(no_args_is_help=True)
def ask(
    video: Path = typer.Argument(..., help="The video file."),
    question: str = typer.Argument(..., help="The question, in quotes."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help=CHECKPOINT_HELP),
    num_frames: int = typer.Option(None, "-n", "--num-frames", min=1, help="Frames to sample (default: as trained)."),
    strategy: str = typer.Option(None, "--strategy", help="uniform, segment or mixed (default: as evaluated)."),
    beams: bool = typer.Option(False, "--beams", help="Print every beam, best first."),
):
    """Answer a question about a video with a trained MA-LMM.

    Example:

      mixma ask clip.mp4 "how many times did the red circle appear?" -c runs/malmm
    """
    quiet_transformers()
    from mixma.inference import VideoAssistant

    answer = VideoAssistant.from_checkpoint(checkpoint).ask(video, question, num_frames=num_frames, strategy=strategy)
    typer.echo("\n".join(answer.beams) if beams else answer.text)


@app.command(no_args_is_help=True)
def caption(
    video: Path = typer.Argument(..., help="The video file."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help=CHECKPOINT_HELP),
    num_frames: int = typer.Option(None, "-n", "--num-frames", min=1, help="Frames to sample (default: as trained)."),
    strategy: str = typer.Option(None, "--strategy", help="uniform, segment or mixed (default: as evaluated)."),
):
    """Describe a video with a trained MA-LMM.

    Example:

      mixma caption clip.mp4 -c runs/malmm-captions
    """
    quiet_transformers()
    from mixma.inference import VideoAssistant

    typer.echo(VideoAssistant.from_checkpoint(checkpoint).caption(video, num_frames=num_frames, strategy=strategy).text)
