"""From annotation records to what a task trains and evaluates on: `VideoItem`s (see `dataset`).

MA-LMM's generative tasks make `Sample`s, a record becoming one or more depending on the task:
- `qa`: one sample per question; the prompt is the question in the task's template, the target
  its answer;
- `classification`: one sample per record; the target is its label;
- `captioning`: for training, one sample per reference caption; for evaluation, one sample per
  record whose references are all its captions.

MAMA's tasks pair each video with texts: `retrieval_items` (the caption pool a training caption is
drawn from each epoch), `qa_items` (a question, its answer, and a caption for the contrastive
term) and `multiple_choice_items` (a question and its options).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from mixma.data.annotations import VideoRecord
from mixma.data.dataset import VideoItem

MALMMTask = Literal["qa", "classification", "captioning"]  # what MA-LMM's samples serve
TASKS: tuple[str, ...] = get_args(MALMMTask)
CaptionPool = Literal["original", "augmented", "both"]


@dataclass(frozen=True)
class Prompts:
    """Instruction templates; MA-LMM's by default (`{question}`, `{task}` are filled in)."""

    qa: str = "Question: {question} Short answer:"
    classification: str = "what is the {task} in the video?"
    captioning: str = "what does the video describe?"


@dataclass(frozen=True)
class Sample:
    id: str  # unique within a split: the record id, plus a question or caption number
    record_id: str
    video: Path
    clip: tuple[float | None, float | None] | None
    prompt: str
    target: str  # what training teaches
    references: tuple[str, ...]  # what evaluation accepts
    kind: str | None = None  # question type, for per-type metrics

    def item(self) -> VideoItem:
        return VideoItem(self.video, self.clip, {"prompt": (self.prompt,), "target": (self.target,)})


def make_samples(
    records: Iterable[VideoRecord], root: str | Path, task: str, *, train: bool, prompts: Prompts = Prompts()
) -> list[Sample]:
    """Samples for `task` from `records` whose videos are relative to `root`.

    Records without what the task needs (no QA pairs, no label, no captions) are skipped.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    samples = []
    for r in records:
        video, clip = r.video_path(root), r.clip
        if task == "qa":
            for i, qa in enumerate(r.qa):
                prompt = prompts.qa.format(question=qa.question)
                samples.append(Sample(f"{r.id}/q{i}", r.id, video, clip, prompt, qa.answer, (qa.answer,), qa.type))
        elif task == "classification" and r.label is not None:
            prompt = prompts.classification.format(task=r.meta.get("task", "object"))
            samples.append(Sample(r.id, r.id, video, clip, prompt, r.label, (r.label,)))
        elif task == "captioning" and r.captions:
            if train:
                for i, caption in enumerate(r.captions):
                    samples.append(Sample(f"{r.id}/c{i}", r.id, video, clip, prompts.captioning, caption, tuple(r.captions)))
            else:
                samples.append(Sample(r.id, r.id, video, clip, prompts.captioning, r.captions[0], tuple(r.captions)))
    return samples


def retrieval_items(records: Iterable[VideoRecord], root: str | Path, captions: CaptionPool) -> list[VideoItem]:
    """One item per video with captions in `captions`; its `text` is drawn from them each epoch."""
    items = []
    for r in records:
        pool = {"original": r.captions, "augmented": r.augmented, "both": r.captions + r.augmented}[captions]
        if pool:
            items.append(VideoItem(r.video_path(root), r.clip, {"text": tuple(pool)}))
    return items


def qa_items(records: Iterable[VideoRecord], root: str | Path) -> list[VideoItem]:
    """One item per question: `text` (the question), `answer`, and a `caption` of the video (an
    augmented one when there are, for the contrastive term)."""
    return [
        VideoItem(r.video_path(root), r.clip,
                  {"text": (qa.question,), "answer": (qa.answer,), "caption": tuple(r.augmented or r.captions)})
        for r in records for qa in r.qa
    ]


def multiple_choice_items(records: Iterable[VideoRecord], root: str | Path) -> list[VideoItem]:
    """One item per multiple-choice question: `text` (the question), `options` and `label` (the
    index of the answer among them), and a `caption` as in `qa_items`."""
    return [
        VideoItem(r.video_path(root), r.clip, {"text": (qa.question,), "caption": tuple(r.augmented or r.captions)},
                  {"options": tuple(qa.options), "label": qa.options.index(qa.answer)})
        for r in records for qa in r.qa if qa.options
    ]
