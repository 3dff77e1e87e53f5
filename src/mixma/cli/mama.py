"""MAMA evaluation for `mixma eval` (retrieval and QA)."""

from __future__ import annotations

from pathlib import Path

from mixma.train.config import apply_overrides, from_dict, to_dict


def evaluate_mama_checkpoint(checkpoint: Path, split: str, overrides: list[str], predictions: Path | None) -> dict:
    from mixma.train.mama import MAMATrainConfig, evaluate_qa, evaluate_retrieval, load_records, load_trained_mama

    model, tokenizer, config = load_trained_mama(checkpoint)
    config = from_dict(MAMATrainConfig, apply_overrides(to_dict(config), overrides))
    records = load_records(config.data, split)
    if config.data.task == "qa":
        metrics = evaluate_qa(model, tokenizer, records, config.data, batch_size=config.run.eval_batch_size)
    else:
        metrics = evaluate_retrieval(model, tokenizer, records, config.data, batch_size=config.run.eval_batch_size)
    return {"split": split, "strategy": config.data.eval_strategy, **metrics}
