"""Evaluating MAMA's models: text-video retrieval, open-ended and multiple-choice video QA.

Retrieval embeds every video of a split and every one of its reference captions and reports
R@1/5/10, median and mean rank in both directions, plain and after dual-softmax (DSL)
re-normalisation. QA reports exact-match accuracy (open-ended) or the share of questions whose
highest-scored option is the answer (multiple choice, MSRVTT-MC / NExT-QA style).
`evaluate_mama_run` does either for a run folder, as `mixma eval` does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixma._atomic import write_text
from mixma.data.annotations import VideoRecord
from mixma.data.collate import TextCollate, stack_video
from mixma.data.dataset import VideoDataset, VideoItem, evaluation_dataset
from mixma.data.features import model_inputs
from mixma.data.records import load_records
from mixma.data.samples import multiple_choice_items, qa_items
from mixma.video.sampling import Strategy
from mixma.eval.metrics import exact_match_accuracy
from mixma.eval.retrieval import retrieval_metrics
from mixma.models.dual_encoder import DualEncoder
from mixma.models.video_qa import MultipleChoiceVideoQA, OpenEndedVideoQA
from mixma.runs.mama import MAMADataSection, load_mama_run

TEXT_BATCH = 4  # texts are embedded this many times the video batch size at once
SHOWN_RANKS = 5  # videos listed per caption in the predictions file


def _embed_videos(encoder: DualEncoder, dataset: VideoDataset, batch_size: int, device, progress: bool) -> torch.Tensor:
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=stack_video)
    videos = [encoder.embed_videos(**{k: v.to(device) for k, v in batch.items()}).float().cpu()
              for batch in tqdm(loader, desc="embed videos", disable=not progress, leave=False)]
    return torch.cat(videos)


def _embed_texts(encoder: DualEncoder, tokenizer, texts: list[str], max_len: int, batch_size: int, device) -> torch.Tensor:
    out = []
    for start in range(0, len(texts), batch_size):
        tok = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        out.append(encoder.embed_texts(tok.input_ids.to(device), tok.attention_mask.to(device)).float().cpu())
    return torch.cat(out)


def _dataset(model, items: list[VideoItem], data: MAMADataSection, strategy: Strategy | None, progress: bool) -> VideoDataset:
    """The evaluation items as model input (the frozen tower's stored outputs with `data.cache_features`)."""
    return evaluation_dataset(items, *model_inputs(data, model, strategy or data.eval_strategy), progress=progress)


@torch.no_grad()
def evaluate_retrieval(encoder: DualEncoder, tokenizer, records: list[VideoRecord], data: MAMADataSection, *,
                       strategy: Strategy | None = None, batch_size: int = 16, device=torch.device("cpu"),
                       progress: bool = True, ranking: list | None = None) -> dict:
    """Embed every video and every original caption of `records`; R@K both ways, plain and DSL.

    `ranking`, if given, receives per caption its video's id, rank and the top-ranked video ids.
    """
    encoder.eval()
    records = [r for r in records if r.captions]
    items = [VideoItem(r.video_path(data.root), r.clip) for r in records]
    videos = _embed_videos(encoder, _dataset(encoder, items, data, strategy, progress), batch_size, device, progress)
    texts = [c for r in records for c in r.captions]
    owner = np.array([i for i, r in enumerate(records) for _ in r.captions])
    sim = _embed_texts(encoder, tokenizer, texts, data.max_text_len, batch_size * TEXT_BATCH, device) @ videos.T  # [texts, videos]
    if ranking is not None:
        order = torch.argsort(sim, dim=1, descending=True).numpy()
        for t, text in enumerate(texts):
            rank = int(np.nonzero(order[t] == owner[t])[0][0]) + 1
            ranking.append({"text": text, "video": records[owner[t]].id, "rank": rank,
                            "top": [records[v].id for v in order[t, :SHOWN_RANKS]]})
    metrics = retrieval_metrics(sim, owner, dsl=True)
    return {f"{direction}/{name}": value for direction, scores in metrics.items() for name, value in scores.items()}


@torch.no_grad()
def evaluate_qa(model: OpenEndedVideoQA | MultipleChoiceVideoQA, tokenizer, records: list[VideoRecord],
                data: MAMADataSection, *, strategy: Strategy | None = None, batch_size: int = 16,
                device=torch.device("cpu"), progress: bool = True, answers: list | None = None) -> dict:
    """Exact-match accuracy of open-ended QA, or option accuracy of multiple-choice QA.

    `answers`, if given, receives each question, its answer and the prediction.
    """
    model.eval()
    choice = isinstance(model, MultipleChoiceVideoQA)
    items = multiple_choice_items(records, data.root) if choice else qa_items(records, data.root)
    dataset = _dataset(model, items, data, strategy, progress)
    collate = TextCollate(tokenizer, data.max_text_len, multiple_choice=choice)
    predictions, references = {}, {}
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size, collate_fn=collate), desc="eval", disable=not progress, leave=False):
        inputs = {k: v.to(device) for k, v in batch.items() if k not in ("index", "labels")}
        logits = model(**inputs).logits
        if choice:
            guesses = [items[i].fields["options"][j] for i, j in zip(batch["index"].tolist(), logits.argmax(-1).tolist())]
        else:
            guesses = model.predict(logits)
        for i, guess in zip(batch["index"].tolist(), guesses):
            item = items[i]
            truth = item.fields["options"][item.fields["label"]] if choice else item.pools["answer"][0]
            predictions[str(i)], references[str(i)] = guess, truth
            if answers is not None:
                answers.append({"question": item.pools["text"][0], "answer": truth, "prediction": guess})
    return {k: v for k, v in exact_match_accuracy(predictions, references).items() if isinstance(v, (int, float))}


def evaluate_mama_run(path: str | os.PathLike, split: str, *, strategy: Strategy | None = None,
                      overrides: list[str] = (), predictions: str | os.PathLike | None = None,
                      batch_size: int | None = None, progress: bool = True) -> dict:
    """Score a trained MAMA run on a split of its dataset (`mixma eval`); `predictions` receives
    per caption its video's rank and the top videos (retrieval), or per question the prediction."""
    trained = load_mama_run(path, overrides=overrides)
    config = trained.config
    records = load_records(config.data, split).records[: config.data.max_eval_samples]
    options = dict(strategy=strategy, batch_size=batch_size or config.run.eval_batch_size, progress=progress)
    rows: list = []
    if config.data.task == "retrieval":
        metrics = evaluate_retrieval(trained.encoder, trained.tokenizer, records, config.data, ranking=rows, **options)
    else:
        metrics = evaluate_qa(trained.model, trained.tokenizer, records, config.data, answers=rows, **options)
    if predictions is not None:
        write_text(Path(predictions), "".join(json.dumps(row) + "\n" for row in rows))
    return {"split": split, "strategy": strategy or config.data.eval_strategy, **metrics}
