"""`mixma convert`: checkpoints of the original research code into mixma's formats and back."""

from __future__ import annotations

from pathlib import Path

import typer

from mixma.cli._common import fail, quiet_transformers


def malmm_lavis(
    source: Path = typer.Argument(..., metavar="CHECKPOINT", help="A LAVIS checkpoint (checkpoint_best.pth); with --to lavis, a mixma MA-LMM run or model folder."),
    output: Path = typer.Option(..., "-o", "--output", help="The MALMM folder to write (with --to lavis: the .pth file)."),
    base: Path = typer.Option(None, "--base", help="The InstructBLIP the checkpoint was trained from, in transformers format (e.g. a download of Salesforce/instructblip-vicuna-7b)."),
    to: str = typer.Option("mixma", "--to", help="mixma: a LAVIS checkpoint into a MALMM folder; lavis: a mixma MA-LMM into a checkpoint the original code evaluates."),
    memory_bank_length: int = typer.Option(None, "--memory-bank-length", min=0, help="M. [default: the checkpoint's run configuration]"),
    max_num_frames: int = typer.Option(None, "--max-num-frames", min=1, help="Rows of the temporal table. [default: the checkpoint's, 120]"),
    include_frozen: bool = typer.Option(False, "--include-frozen", help="--to lavis: also write the vision encoder and the LLM."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
):
    """Convert a released MA-LMM checkpoint (LAVIS) into a MALMM folder, or back.

    The checkpoint is read as weights only: a pickle that holds code is refused. Every tensor is
    mapped onto the base InstructBLIP; unknown, missing or misshaped tensors are refused by name.
    The result loads with `MALMM.from_pretrained` and answers with `mixma ask -c OUT_DIR`.

    Examples:

      mixma convert malmm-lavis lvu_genre/checkpoint_best.pth --base instructblip-vicuna-7b -o malmm-lvu-genre

      mixma convert malmm-lavis runs/malmm --to lavis -o runs/malmm/lavis.pth
    """
    quiet_transformers()
    from mixma.models.malmm.lavis import convert_from_lavis, convert_to_lavis

    if to not in ("mixma", "lavis"):
        raise fail(f"--to must be mixma or lavis, got {to!r}")
    if to == "lavis":
        notes = convert_to_lavis(_malmm(source), output, include_frozen=include_frozen).notes
    else:
        if base is None:
            raise fail("--base INSTRUCTBLIP_DIR is required: the checkpoint holds only the trained parts")
        if output.exists() and not overwrite:  # the library's message names its argument, not the flag
            raise fail(f"{output} exists (pass --overwrite to replace it)")
        notes = convert_from_lavis(source, base, output, memory_bank_length=memory_bank_length,
                                   max_num_frames=max_num_frames, overwrite=overwrite).notes
    for note in notes or ():
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {output}", err=True)


def _malmm(path: Path):
    """A MALMM from a run folder (its best checkpoint) or a model folder."""
    from mixma.runs.malmm import load_malmm_run

    return load_malmm_run(path).model
