"""From annotation records to training and evaluation samples: video frames plus text.

A record becomes one or more `Sample`s depending on the task:
- `qa`: one sample per question; the prompt is the question in the task's template, the target
  its answer;
- `classification`: one sample per record; the target is its label;
- `captioning`: for training, one sample per reference caption; for evaluation, one sample per
  record whose references are all its captions.

`VideoTextDataset` turns samples into tensors. Every random choice (which frames, which crop)
comes from a generator seeded by (seed, epoch, sample index), so what a sample yields depends on
nothing else: not the number of workers, not the order of the batches, not a resumed run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mixma.data.annotations import VideoRecord
from mixma.data.frame_cache import FrameLoader, FrameSpec
from mixma.data.transforms import VideoTransform
from mixma.errors import VideoError
from mixma.video.reader import probe

TASKS = ("qa", "classification", "captioning")


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
        video = r.video_path(root)
        clip = (r.start, r.end) if r.start is not None or r.end is not None else None
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


def check_videos(samples: list[Sample]) -> tuple[list[Sample], dict[str, str]]:
    """Open each distinct video once; returns the samples whose video reads and, for the others,
    `{video path: reason}`, so a batch job can report them and go on with the rest."""
    bad: dict[str, str] = {}
    for video in sorted({s.video for s in samples}):
        try:
            probe(video)
        except VideoError as exc:
            bad[str(video)] = exc.reason
    return [s for s in samples if str(s.video) not in bad], bad


class VideoTextDataset(Dataset):
    """`Sample`s as `{"pixel_values": [T, 3, S, S], "prompt", "target", "index"}`."""

    def __init__(
        self, samples: list[Sample], frames: FrameLoader, spec: FrameSpec, transform: VideoTransform, seed: int = 0
    ):
        self.samples, self.frames, self.spec, self.transform, self.seed = samples, frames, spec, transform, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frames = self.frames.load(sample.video, self.spec, rng, sample.clip)
        return {
            "pixel_values": self.transform(frames, rng if self.transform.train else None),
            "prompt": sample.prompt,
            "target": sample.target,
            "index": index,
        }


def stack(items: list[dict]) -> dict:
    """Default collate for what the dataset yields (text stays a list of strings)."""
    return {
        "pixel_values": torch.stack([it["pixel_values"] for it in items]),
        "prompt": [it["prompt"] for it in items],
        "target": [it["target"] for it in items],
        "index": torch.tensor([it["index"] for it in items]),
    }
