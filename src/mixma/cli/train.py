"""`mixma train KIND`: train a model from a config file (one process, or many under torchrun).

One command per entry of `mixma.train.registry.TRAINERS`, built by `train_command`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mixma.cli._common import quiet_transformers, training_summary

SET_HELP = "Override a config value, e.g. --set optim.lr=3e-4 --set run.epochs=2 (repeatable)."
EXAMPLES = {
    "malmm": "mixma train malmm configs/malmm_synthetic.yaml --set data.root=bench -o runs/malmm",
    "mama": "mixma train mama configs/mama_synthetic.yaml --set loss.weighting=meta -o runs/mama",
}


def train_command(kind: str, summary: str):
    """The `mixma train KIND` command."""

    def command(
        config: Path = typer.Argument(None, help="YAML config (see configs/); omit to use the defaults."),
        overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
        output: Path = typer.Option(None, "-o", "--output", help="Run folder (overrides run.output_dir)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in the output folder from its latest checkpoint."),
    ):
        quiet_transformers()
        from mixma.config import load_config
        from mixma.train.registry import TRAINERS

        trainer = TRAINERS[kind]
        if output is not None:
            overrides = [*overrides, f"run.output_dir={output}"]
        cfg = load_config(trainer.config, str(config) if config else None, overrides)
        result = trainer.train(cfg, resume=resume)
        typer.echo(training_summary(result, cfg.run.output_dir), err=True)

    command.__doc__ = f"""Train {summary}

Writes config.yaml, base/, checkpoints/, best/, metrics.jsonl and summary.json into the run
folder. Runs the same under torchrun, e.g.
`torchrun --nproc_per_node 2 -m mixma train {kind} CONFIG`.

Example:

  {EXAMPLES[kind]}
"""
    return command
