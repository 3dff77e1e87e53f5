"""`mixma eval`: score a trained model on a split of its dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mixma._atomic import write_json
from mixma.cli._common import fail, quiet_transformers


def evaluate(
    run: Path = typer.Argument(..., help="A training run folder or one of its checkpoint folders."),
    split: str = typer.Option("test", "--split", help="Which split of the run's dataset to score."),
    strategy: str = typer.Option(None, "--strategy", help="Frame sampling: uniform, segment or mixed. [default: the run's]"),
    overrides: list[str] = typer.Option([], "--set", help="Override a value of the run's config, e.g. --set data.num_frames=16."),
    output: Path = typer.Option(None, "-o", "--output", help="Write the metrics here as JSON."),
    predictions: Path = typer.Option(None, "--predictions", help="Write every prediction here as JSONL."),
):
    """Evaluate a trained model on a split of its dataset and print the metrics.

    MA-LMM: top-1 and top-5 exact match for QA and classification (with per-question-type
    numbers), BLEU-4, ROUGE-L, CIDEr (and METEOR when Java is installed) for captioning.
    MAMA: retrieval R@1/5/10, MdR and MnR both ways (t2v, v2t) and after DSL re-normalisation
    (t2v_dsl, v2t_dsl); QA accuracy (open-ended and multiple choice).

    Example:

      mixma eval runs/malmm --split test --strategy mixed -o test_metrics.json
    """
    quiet_transformers()
    from mixma.runs.folder import run_kind
    from mixma.train.registry import TRAINERS

    from mixma.video.sampling import STRATEGIES

    if strategy is not None and strategy not in STRATEGIES:
        raise fail(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    kind = run_kind(run)
    if kind not in TRAINERS:
        raise fail(f"{run}: a run of an unknown trainer {kind!r}")
    metrics = TRAINERS[kind].evaluate(run, split, strategy=strategy, overrides=overrides, predictions=predictions)
    typer.echo(json.dumps(metrics, indent=2))
    if output is not None:
        write_json(output, metrics)
