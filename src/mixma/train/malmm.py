"""Training and evaluating MA-LMM on QA, classification or captioning data.

The configuration (see `MALMMTrainConfig`, and `configs/malmm_synthetic.yaml` for an example)
names a dataset from the reader registry, a task, how frames are sampled for training (`segment`
by default, as MA-LMM trains) and for evaluation (`uniform`, as it evaluates; `mixed` for
MixedFrame), and the model: an InstructBLIP or MA-LMM checkpoint in transformers format, or a
small model built from scratch (`model.init: null`). Evaluation generates with beam search and
scores top-1 (first beam) and top-5 (any of five beams) exact match for QA and classification,
and BLEU/ROUGE-L/CIDEr (METEOR with Java) for captioning, as the paper does.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixma.data.frame_cache import FrameLoader, FrameSpec
from mixma.data.readers import read_dataset
from mixma.data.transforms import TransformConfig, VideoTransform
from mixma.data.video_text import Prompts, Sample, VideoTextDataset, check_videos, make_samples, stack
from mixma.errors import MixmaError
from mixma.eval.metrics import FIRST_WORD_DATASETS, caption_metrics, exact_match_accuracy
from mixma.models.malmm import MALMM
from mixma.models.malmm.processing import MALMMProcessor
from mixma.models.malmm.small import SmallConfig, build_small_malmm
from mixma.train import checkpoint as ckpt
from mixma.train.config import OptimConfig, RunConfig, dump_config, from_dict, load_config
from mixma.train.distributed import Distributed, setup, teardown
from mixma.train.loop import TrainingJob, check_output, fit


@dataclass
class ModelSection:
    init: str | None = None  # InstructBLIP / MA-LMM checkpoint folder; None builds `small` from scratch
    small: SmallConfig = field(default_factory=SmallConfig)
    memory_bank_length: int = 10  # M; 0 turns memory off (all frames' tokens go to the LLM)
    train_vision: bool = False  # MA-LMM keeps the vision encoder frozen
    train_llm: bool = False  # ... and the LLM; a from-scratch model needs both trained
    memory_gradients: bool = False  # backpropagate through every frame and the memory (MA-LMM: only
    # the last frame; fine with a frozen pretrained encoder, too little for one trained from scratch)


@dataclass
class DataSection:
    dataset: str = "synthetic"  # a name from `mixma data list`
    root: str = "bench"
    task: str = "qa"  # qa | classification | captioning
    train_split: str = "train"
    eval_split: str = "val"
    options: dict[str, Any] = field(default_factory=dict)  # reader options, e.g. {task: genre} for LVU
    num_frames: int = 8  # T, frames per video
    train_strategy: str = "segment"  # MA-LMM trains on TSN samples
    eval_strategy: str = "uniform"  # ... and evaluates on evenly spaced frames
    mixed: dict[str, Any] = field(default_factory=dict)  # MixedFrame options when a strategy is mixed
    image_size: int = 224  # model input side
    decode_size: int | None = None  # frames are decoded with this shorter side (default: image_size)
    cache_dir: str | None = None  # decoded-frame cache (default: <root>/.frame_cache)
    prompts: Prompts = field(default_factory=Prompts)
    max_train_samples: int | None = None
    max_eval_samples: int | None = None


@dataclass
class GenerateSection:
    num_beams: int = 5
    max_new_tokens: int = 10  # MA-LMM: 10 for QA, 20 for Breakfast/COIN, 50 for captions
    min_new_tokens: int = 1
    repetition_penalty: float = 1.5
    length_penalty: float = 0.0  # MA-LMM: 0 for QA, 1 for captioning and classification


@dataclass
class MALMMTrainConfig:
    kind: Literal["malmm"] = "malmm"  # which trainer wrote a run (read by `mixma eval`)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def report(message: str) -> None:
    print(message, file=sys.stderr)


def load_samples(data: DataSection, split: str, *, train: bool, limit: int | None) -> list[Sample]:
    """Records → samples with readable videos; bad annotation lines and videos are reported and skipped."""
    errors: list = []
    records = read_dataset(data.dataset, data.root, split, errors=errors, **data.options)
    for error in errors[:5]:
        report(f"skipped: {error}")
    if len(errors) > 5:
        report(f"skipped {len(errors) - 5} more bad annotation entries")
    samples = make_samples(records, data.root, data.task, train=train, prompts=data.prompts)
    samples, bad = check_videos(samples)
    for path, reason in list(bad.items())[:5]:
        report(f"skipped video {path}: {reason}")
    if len(bad) > 5:
        report(f"skipped {len(bad) - 5} more unreadable videos")
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise MixmaError(f"no usable {data.task} samples in the {split} split of {data.dataset} at {data.root}")
    return samples


def frame_spec(data: DataSection, strategy: str) -> FrameSpec:
    return FrameSpec(data.num_frames, strategy, data.decode_size or data.image_size, dict(data.mixed))


def frame_loader(data: DataSection) -> FrameLoader:
    return FrameLoader(data.cache_dir or Path(data.root) / ".frame_cache")


def visual_tokens(model: MALMM, num_frames: int) -> int:
    m = model.config.num_query_tokens
    return m if model.config.memory_bank_length > 0 else m * num_frames


def malmm_collate(processor: MALMMProcessor, num_visual: int, with_targets: bool):
    def collate(items):
        batch = stack(items)
        text = processor(batch["prompt"], batch["target"] if with_targets else None, num_visual)
        return {"pixel_values": batch["pixel_values"], "index": batch["index"], **text}
    return collate


@torch.no_grad()
def evaluate_malmm(model: MALMM, processor: MALMMProcessor, samples: list[Sample], data: DataSection,
                   generate: GenerateSection, *, strategy: str | None = None, batch_size: int = 16,
                   device: torch.device = torch.device("cpu"), progress: bool = True) -> tuple[dict, dict[str, list[str]]]:
    """Generate for every sample and score it; returns (metrics, {sample id: beams})."""
    model.eval()
    dataset = VideoTextDataset(samples, frame_loader(data), frame_spec(data, strategy or data.eval_strategy),
                               VideoTransform(TransformConfig(size=data.image_size), train=False))
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=malmm_collate(processor, visual_tokens(model, data.num_frames), False))
    keep = min(5, generate.num_beams)  # top-5 needs five beams
    predictions: dict[str, list[str]] = {}
    for batch in tqdm(loader, desc="eval", unit="batch", disable=not progress, leave=False):
        index = batch.pop("index")
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model.generate(
            **batch, num_beams=generate.num_beams, num_return_sequences=keep, max_new_tokens=generate.max_new_tokens,
            min_new_tokens=generate.min_new_tokens, repetition_penalty=generate.repetition_penalty,
            length_penalty=generate.length_penalty, do_sample=False,
        )
        texts = processor.decode(out, batch["input_ids"].shape[1])
        for j, i in enumerate(index.tolist()):
            predictions[samples[i].id] = texts[j * keep : (j + 1) * keep]
    if data.task == "captioning":
        metrics = caption_metrics({s.id: predictions[s.id][0] for s in samples}, {s.id: list(s.references) for s in samples})
    else:
        metrics = exact_match_accuracy(
            predictions, {s.id: s.references[0] for s in samples},
            types={s.id: s.kind for s in samples} if data.task == "qa" else None,
            first_word=data.dataset in FIRST_WORD_DATASETS,
        )
    return metrics, predictions


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


def save_model_folder(target: Path, model: MALMM, processor: MALMMProcessor) -> None:
    """`save_pretrained` model and processor into `target`, atomically (a temporary folder renamed)."""
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def build_model(config: MALMMTrainConfig, train_samples: list[Sample], out: Path, info: Distributed):
    """The model and processor: loaded from `model.init`, or built small and saved as `out/base`."""
    if config.model.init is not None:
        model = MALMM.from_pretrained(config.model.init, memory_bank_length=config.model.memory_bank_length)
        processor = MALMMProcessor.from_pretrained(config.model.init)
    else:
        texts = [s.prompt for s in train_samples] + [s.target for s in train_samples]
        model, processor = build_small_malmm(texts, config.model.small, image_size=config.data.image_size,
                                             memory_bank_length=config.model.memory_bank_length)
        if info.is_main:
            save_model_folder(out / "base", model, processor)
    model.freeze_for_training(config.model.train_vision, config.model.train_llm)
    return model.to(info.device), processor


def train_malmm(config: MALMMTrainConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Train MA-LMM as `config` says; returns the training summary."""
    info = setup(config.run.device)
    try:
        torch.manual_seed(config.run.seed)
        out = Path(config.run.output_dir)
        check_output(out, resume)  # before anything is written into the folder
        data = config.data
        train_samples = load_samples(data, data.train_split, train=True, limit=data.max_train_samples)
        eval_samples = load_samples(data, data.eval_split, train=False, limit=data.max_eval_samples) if data.eval_split else []
        if resume and config.model.init is None and (out / "base").exists():
            config.model.init = str(out / "base")  # the resumed run continues the same from-scratch model
            model = MALMM.from_pretrained(config.model.init, memory_bank_length=config.model.memory_bank_length)
            processor = MALMMProcessor.from_pretrained(config.model.init)
            model.freeze_for_training(config.model.train_vision, config.model.train_llm)
            model = model.to(info.device)
        else:
            model, processor = build_model(config, train_samples, out, info)
            if config.model.init is None:
                config.model.init = str(out / "base")  # recorded in the saved config for inference
        dataset = VideoTextDataset(train_samples, frame_loader(data), frame_spec(data, data.train_strategy),
                                   VideoTransform(TransformConfig(size=data.image_size), train=True), seed=config.run.seed)

        def loss(batch, step, lr):
            batch.pop("index")
            return model(**batch, memory_gradients=config.model.memory_gradients).loss

        def evaluate():
            metrics, _ = evaluate_malmm(model, processor, eval_samples, data, config.generate,
                                        batch_size=config.run.eval_batch_size, device=info.device, progress=progress)
            return flat_metrics(metrics)

        job = TrainingJob(
            model=model, dataset=dataset,
            collate=malmm_collate(processor, visual_tokens(model, data.num_frames), True), loss=loss,
            evaluate=evaluate if eval_samples else None,
            metric="CIDEr" if data.task == "captioning" else "top1",
            no_decay={"query_tokens", "temporal_embedding.weight"},
        )
        return fit(job, config.optim, config.run, dump_config(config), info, resume=resume, progress=progress)
    finally:
        teardown()


def load_trained_malmm(path: str | Path, memory_bank_length: int | None = None) -> tuple[MALMM, MALMMProcessor, MALMMTrainConfig | None]:
    """An MA-LMM for inference from a run folder (its best, else latest checkpoint), a checkpoint
    folder, or a plain model folder saved with `save_pretrained` (processor files alongside).

    Raises:
        MixmaError: nothing loadable at `path`.
    """
    path = Path(path)
    if not path.exists():
        raise MixmaError(f"{path}: no such checkpoint or model folder")
    if (path / "best" / ckpt.TRAINED).exists():
        path = path / "best"
    elif (path / "checkpoints").exists():
        latest = ckpt.latest_checkpoint(path)
        if latest is None:
            raise MixmaError(f"{path}: the run has no complete checkpoint yet")
        path = latest
    if (path / ckpt.TRAINED).exists():
        config = load_config(MALMMTrainConfig, path / "config.yaml")
        overrides = {} if memory_bank_length is None else {"memory_bank_length": memory_bank_length}
        model = MALMM.from_pretrained(config.model.init, **{"memory_bank_length": config.model.memory_bank_length, **overrides})
        state = ckpt.load_trained(path)
        missing = set(state) - set(dict(model.named_parameters()))
        if missing:
            raise MixmaError(f"{path}: trained tensors do not fit the model: {sorted(missing)[:3]}")
        model.load_state_dict(state, strict=False)
        return model.eval(), MALMMProcessor.from_pretrained(config.model.init), config
    if (path / "config.json").exists():
        kwargs = {} if memory_bank_length is None else {"memory_bank_length": memory_bank_length}
        return MALMM.from_pretrained(path, **kwargs).eval(), MALMMProcessor.from_pretrained(path), None
    raise MixmaError(f"{path}: neither a run, a checkpoint nor a model folder")


def config_from_file(path: str | None, overrides: list[str]) -> MALMMTrainConfig:
    return load_config(MALMMTrainConfig, path, overrides)


__all__ = ["MALMMTrainConfig", "train_malmm", "evaluate_malmm", "load_trained_malmm", "config_from_file", "from_dict"]
