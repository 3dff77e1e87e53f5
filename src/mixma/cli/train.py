"""`mixma train`: train a model from a config file (one process, or many under torchrun)."""

from __future__ import annotations

from pathlib import Path

import typer

from mixma.cli.app import app, quiet_transformers

train_app = typer.Typer(help="Train a model from a YAML config (see configs/).", no_args_is_help=True)
app.add_typer(train_app, name="train")

SET_HELP = "Override a config value, e.g. --set optim.lr=3e-4 --set run.epochs=2 (repeatable)."


@train_app.command(no_args_is_help=True)
def malmm(
    config: Path = typer.Argument(None, help="YAML config (sections model, data, generate, optim, run); omit to use defaults."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    output: Path = typer.Option(None, "-o", "--output", help="Run folder (overrides run.output_dir)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the output folder from its latest checkpoint."),
):
    """Train MA-LMM on QA, classification or captioning.

    Runs the same under torchrun, e.g. `torchrun --nproc_per_node 2 -m mixma train malmm cfg.yaml`.
    Writes config.yaml, checkpoints/, best/, metrics.jsonl and summary.json into the run folder.

    Example:

      mixma train malmm configs/malmm_synthetic.yaml --set data.root=bench -o runs/malmm
    """
    quiet_transformers()
    from mixma.train.malmm import config_from_file, train_malmm

    if output is not None:
        overrides = [*overrides, f"run.output_dir={output}"]
    cfg = config_from_file(str(config) if config else None, overrides)
    summary = train_malmm(cfg, resume=resume)
    best = summary.get("best")
    tail = f"; best {best['metric']} {best['value']:.2f} at step {best['step']}" if best else ""
    typer.echo(f"trained {summary['steps']} steps in {summary['seconds']} s{tail}; run in {cfg.run.output_dir}", err=True)


@train_app.command(no_args_is_help=True)
def mama(
    config: Path = typer.Argument(None, help="YAML config (sections model, loss, data, optim, run); omit to use defaults."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    output: Path = typer.Option(None, "-o", "--output", help="Run folder (overrides run.output_dir)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the output folder from its latest checkpoint."),
):
    """Train MAMA: text-video retrieval (dual encoder) or open-ended video QA.

    The angular margin (`loss.margin`, 0 for InfoNCE), meta-learned sample weighting
    (`loss.weighting=meta`, on the clean `loss.meta_split`) and the caption pool (`data.captions`:
    original, augmented or both) are set in the config. Runs the same under torchrun.

    Example:

      mixma train mama configs/mama_synthetic.yaml --set loss.weighting=meta -o runs/mama
    """
    quiet_transformers()
    from mixma.train.mama import MAMATrainConfig, train_mama
    from mixma.train.config import load_config

    if output is not None:
        overrides = [*overrides, f"run.output_dir={output}"]
    cfg = load_config(MAMATrainConfig, str(config) if config else None, overrides)
    summary = train_mama(cfg, resume=resume)
    best = summary.get("best")
    tail = f"; best {best['metric']} {best['value']:.2f} at step {best['step']}" if best else ""
    typer.echo(f"trained {summary['steps']} steps in {summary['seconds']} s{tail}; run in {cfg.run.output_dir}", err=True)
