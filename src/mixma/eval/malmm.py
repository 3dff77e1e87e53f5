"""Evaluating MA-LMM: generate for every sample of a split and score it as the paper does.

QA and classification: top-1 (first beam) and top-5 (any of five beams) exact match, with
per-question-type numbers for QA; captioning: BLEU/ROUGE-L/CIDEr (METEOR with Java).
`evaluate_malmm` scores a model on samples; `evaluate_malmm_run` does it for a run folder, as
`mixma eval` does.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixma._atomic import write_text
from mixma.data.dataset import evaluation_dataset
from mixma.data.features import model_inputs
from mixma.data.records import load_records
from mixma.data.samples import Sample, make_samples
from mixma.video.sampling import Strategy
from mixma.errors import MixmaError
from mixma.eval.metrics import FIRST_WORD_DATASETS, caption_metrics, exact_match_accuracy
from mixma.models.malmm import MALMM
from mixma.models.malmm.processing import MALMMProcessor, visual_token_count
from mixma.runs.malmm import GenerateSection, MALMMDataSection, load_malmm_run

TOP_K = 5  # top-5 accuracy needs five beams


def eval_samples(data: MALMMDataSection, split: str, limit: int | None = None) -> list[Sample]:
    """The evaluation samples of a split (one per question, label or video)."""
    records = load_records(data, split).records
    samples = make_samples(records, data.root, data.task, train=False, prompts=data.prompts)[:limit]
    if not samples:
        raise MixmaError(f"no {data.task} samples in the {split} split of {data.dataset} at {data.root}")
    return samples


def score(predictions: dict[str, list[str]], samples: list[Sample], data: MALMMDataSection) -> dict:
    """Metrics of `{sample id: beams}` against the samples' references."""
    if data.task == "captioning":
        return caption_metrics({s.id: predictions[s.id][0] for s in samples}, {s.id: list(s.references) for s in samples})
    return exact_match_accuracy(
        predictions, {s.id: s.references[0] for s in samples},
        types={s.id: s.kind for s in samples} if data.task == "qa" else None,
        first_word=data.dataset in FIRST_WORD_DATASETS,
    )


@torch.no_grad()
def evaluate_malmm(model: MALMM, processor: MALMMProcessor, samples: list[Sample], data: MALMMDataSection,
                   generate: GenerateSection, *, strategy: Strategy | None = None, batch_size: int = 16,
                   device: torch.device = torch.device("cpu"), progress: bool = True) -> tuple[dict, dict[str, list[str]]]:
    """Generate for every sample and score it; returns (metrics, {sample id: beams})."""
    model.eval()
    items = [s.item() for s in samples]
    dataset = evaluation_dataset(items, *model_inputs(data, model, strategy or data.eval_strategy), progress=progress)
    collate = partial(processor.collate, num_visual_tokens=visual_token_count(model.config, data.num_frames), with_targets=False)
    keep = min(TOP_K, generate.num_beams)
    predictions: dict[str, list[str]] = {}
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size, collate_fn=collate), desc="eval", unit="batch",
                      disable=not progress, leave=False):
        index = batch.pop("index")
        batch = {k: v.to(device) for k, v in batch.items()}
        texts = processor.decode(model.generate(**batch, **generate.kwargs(keep)), batch["input_ids"].shape[1])
        for j, i in enumerate(index.tolist()):
            predictions[samples[i].id] = texts[j * keep : (j + 1) * keep]
    return score(predictions, samples, data), predictions


def flat_metrics(metrics: dict) -> dict[str, float]:
    """Numbers only, nested groups flattened: `{"per_type": {"what": {"top1": 50}}}` → `top1/what`."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = value
        elif key == "per_type" and isinstance(value, dict):
            for kind, scores in value.items():
                for name, number in scores.items():
                    if isinstance(number, (int, float)):
                        flat[f"{name}/{kind}"] = number
    return flat


def evaluate_malmm_run(path: str | os.PathLike, split: str, *, strategy: Strategy | None = None,
                       overrides: list[str] = (), predictions: str | os.PathLike | None = None,
                       batch_size: int | None = None, progress: bool = True) -> dict:
    """Score a trained MA-LMM run on a split of its dataset (`mixma eval`).

    Args:
        path: the run (or checkpoint) folder.
        split: the split to score.
        strategy: frame sampling (default: the run's evaluation strategy).
        overrides: `section.key=value` changes to the run's config.
        predictions: also write every sample's prompt, references and beams here (JSONL).
        batch_size: default: the run's evaluation batch size.

    Raises:
        RunError, MixmaError: not an MA-LMM run, or nothing to evaluate.
    """
    trained = load_malmm_run(path, overrides=overrides)
    if trained.config is None:
        raise MixmaError(f"{path} is a bare model folder: evaluate a training run, whose config names the dataset")
    config = trained.config
    samples = eval_samples(config.data, split, config.data.max_eval_samples)
    metrics, beams = evaluate_malmm(trained.model, trained.processor, samples, config.data, config.generate,
                                    strategy=strategy, batch_size=batch_size or config.run.eval_batch_size, progress=progress)
    if predictions is not None:
        lines = [json.dumps({"id": s.id, "prompt": s.prompt, "references": list(s.references), "beams": beams[s.id]})
                 for s in samples]
        write_text(Path(predictions), "\n".join(lines) + "\n")
    return {"split": split, "strategy": strategy or config.data.eval_strategy, **metrics}
