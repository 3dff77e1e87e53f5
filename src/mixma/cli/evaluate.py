"""`mixma eval`: score a trained model on a split."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

from mixma._atomic import write_json, write_text
from mixma.cli.app import app, fail, quiet_transformers


def _run_config(checkpoint: Path) -> dict:
    for candidate in (checkpoint / "config.yaml", checkpoint / "best" / "config.yaml"):
        if candidate.exists():
            return yaml.safe_load(candidate.read_text()) or {}
    return {}


@app.command("eval", no_args_is_help=True)
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A training run folder, a checkpoint folder, or a model folder."),
    split: str = typer.Option("test", "--split", help="Which split of the run's dataset to score."),
    strategy: str = typer.Option(None, "--strategy", help="Frame sampling for evaluation (uniform, mixed); default: the run's."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value, e.g. --set data.num_frames=16."),
    output: Path = typer.Option(None, "-o", "--output", help="Write the metrics here as JSON."),
    predictions: Path = typer.Option(None, "--predictions", help="Write every prediction here as JSONL."),
):
    """Evaluate a trained model on a split of its dataset and print the metrics.

    MA-LMM: top-1 and top-5 exact match for QA and classification (with per-question-type
    numbers), BLEU-4, ROUGE-L, CIDEr (and METEOR when Java is installed) for captioning.
    MAMA: retrieval R@1/5/10, MdR and MnR both ways (t2v, v2t) and after DSL re-normalisation
    (t2v_dsl, v2t_dsl); QA exact-match accuracy.

    Example:

      mixma eval runs/malmm --split test --strategy mixed -o test_metrics.json
    """
    quiet_transformers()
    if not checkpoint.exists():
        raise fail(f"{checkpoint}: no such checkpoint or run folder")
    kind = _run_config(checkpoint).get("kind", "malmm")
    if kind != "malmm":
        from mixma.cli.mama import evaluate_mama_checkpoint  # noqa: PLC0415

        metrics = evaluate_mama_checkpoint(checkpoint, split, overrides, predictions)
    else:
        metrics = _evaluate_malmm(checkpoint, split, strategy, overrides, predictions)
    text = json.dumps(metrics, indent=2)
    typer.echo(text)
    if output is not None:
        write_json(output, metrics)


def _evaluate_malmm(checkpoint: Path, split: str, strategy: str | None, overrides: list[str], predictions: Path | None) -> dict:
    from mixma.train.config import apply_overrides, from_dict, to_dict
    from mixma.train.malmm import MALMMTrainConfig, evaluate_malmm, load_samples, load_trained_malmm

    model, processor, config = load_trained_malmm(checkpoint)
    if config is None:
        raise fail(f"{checkpoint} is a bare model folder: evaluate a training run, whose config names the dataset")
    config = from_dict(MALMMTrainConfig, apply_overrides(to_dict(config), overrides))
    samples = load_samples(config.data, split, train=False, limit=config.data.max_eval_samples)
    metrics, beams = evaluate_malmm(model, processor, samples, config.data, config.generate, strategy=strategy,
                                    batch_size=config.run.eval_batch_size)
    if predictions is not None:
        lines = [json.dumps({"id": s.id, "prompt": s.prompt, "references": list(s.references), "beams": beams[s.id]})
                 for s in samples]
        write_text(predictions, "\n".join(lines) + "\n")
    return {"split": split, "strategy": strategy or config.data.eval_strategy, **metrics}
