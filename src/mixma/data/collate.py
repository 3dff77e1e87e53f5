"""Batches for the video-text models: frames stacked, texts tokenised (never inside `forward`).

`TextCollate` serves MAMA's models: the dual encoder (one text per video), open-ended QA (the
question, its answer id and a caption for the contrastive term) and multiple-choice QA (every
`question + option` text, the options mask and the answer's index). MA-LMM's batches come from
its processor (`MALMMProcessor.collate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def stack_video(items: list[dict]) -> dict[str, Tensor]:
    """The items' `pixel_values` (or a frozen tower's `vision_features`) as one batch tensor."""
    key = "vision_features" if "vision_features" in items[0] else "pixel_values"
    return {key: torch.stack([it[key] for it in items])}


@dataclass
class TextCollate:
    """Items of a `VideoDataset` (`pixel_values`, `index`, `text`, ...) → a model batch.

    Args:
        tokenizer: a Hugging Face tokenizer.
        max_len: tokens per text at most.
        answers: open-ended QA: the answer vocabulary (its `encode_batch` gives `labels`).
        captions: also tokenise each item's `caption` (the QA tasks' contrastive term).
        multiple_choice: tokenise `text + option` for every option (`options`, `label` items).
    """

    tokenizer: Any
    max_len: int
    answers: Any = None
    captions: bool = False
    multiple_choice: bool = False

    def _tokens(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        out = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_len, return_tensors="pt")
        return out.input_ids, out.attention_mask

    def __call__(self, items: list[dict]) -> dict[str, Tensor]:
        batch = {**stack_video(items), "index": torch.tensor([it["index"] for it in items])}
        texts = [it["text"] for it in items]
        if self.multiple_choice:
            batch.update(tokenize_multiple_choice(self.tokenizer, texts, [it["options"] for it in items], self.max_len))
            batch["labels"] = torch.tensor([it["label"] for it in items])
        else:
            batch["input_ids"], batch["attention_mask"] = self._tokens(texts)
        if self.answers is not None:
            batch["labels"] = self.answers.encode_batch([it["answer"] for it in items])
        if self.captions:
            batch["caption_input_ids"], batch["caption_attention_mask"] = self._tokens([it["caption"] for it in items])
        return batch


def tokenize_multiple_choice(
    tokenizer: Any,
    questions: Sequence[str],
    options: Sequence[Sequence[str]],
    max_length: int | None = None,
) -> dict[str, Tensor]:
    """Tokenise `question + " " + option` texts for `MultipleChoiceVideoQA` (use in collate).

    Videos with fewer options are padded up to K with the bare question, masked out by `option_mask`.

    Args:
        tokenizer: a Hugging Face tokenizer.
        questions: `B` questions.
        options: `B` lists of candidate answers.
        max_length: truncate each text to this many tokens (default: the tokenizer's limit).

    Returns:
        `input_ids` and `attention_mask` `[B, K, L]`, `option_mask` `[B, K]` (K = most options).
    """
    if len(questions) != len(options) or any(len(o) == 0 for o in options):
        raise ValueError("need one non-empty option list per question")
    k = max(len(o) for o in options)
    texts = [f"{q} {o[i]}" if i < len(o) else q for q, o in zip(questions, options) for i in range(k)]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {
        "input_ids": enc["input_ids"].view(len(questions), k, -1),
        "attention_mask": enc["attention_mask"].view(len(questions), k, -1),
        "option_mask": torch.tensor([[i < len(o) for i in range(k)] for o in options]),
    }
