"""Training MA-LMM on QA, classification or captioning data (`mixma train malmm`).

The configuration (`mixma.runs.malmm.MALMMRunConfig`; `configs/malmm_synthetic.yaml` is an
example) names a dataset from the reader registry, a task, how frames are sampled for training
(`segment` by default, as MA-LMM trains) and for evaluation (`uniform`, as it evaluates; `mixed`
for MixedFrame), and the model: an InstructBLIP or MA-LMM checkpoint in transformers format, or a
small model built from scratch (`model.init: null`, saved as the run's `base/`). Evaluation during
training is `mixma.eval.malmm.evaluate_malmm`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from mixma.config import dump_config
from mixma.data.dataset import VideoDataset, prepare
from mixma.data.features import model_inputs
from mixma.data.records import load_records
from mixma.data.samples import Sample, make_samples
from mixma.errors import MixmaError
from mixma.eval.malmm import eval_samples, evaluate_malmm, flat_metrics
from mixma.models.malmm import MALMM
from mixma.models.malmm.processing import MALMMProcessor, visual_token_count
from mixma.models.malmm.small import build_small_malmm
from mixma.runs.folder import BASE, resolve_source, save_folder, store_source
from mixma.runs.malmm import MALMMRunConfig, load_base
from mixma.train.distributed import Distributed, barrier, setup, teardown
from mixma.train.loop import TrainingJob, check_output, fit


def train_samples(config: MALMMRunConfig) -> tuple[list[Sample], dict]:
    """The training samples, and what loading them left out (for the run's summary)."""
    data = config.data
    records = load_records(data, data.train_split)
    samples = make_samples(records.records, data.root, data.task, train=True, prompts=data.prompts)[: data.max_train_samples]
    if not samples:
        raise MixmaError(f"no {data.task} samples in the {data.train_split} split of {data.dataset} at {data.root}")
    return samples, records.summary()


def prepare_model(config: MALMMRunConfig, samples: list[Sample], out: Path, info: Distributed, resume: bool) -> tuple[MALMM, MALMMProcessor]:
    """The model to train: the run's own base when resuming, the configured checkpoint, or a small
    one built from scratch and saved as the run's base. Records the base in `config.model.init`."""
    section = config.model
    if resume and (out / BASE).exists():
        section.init = BASE
    if section.init is not None:
        model, processor = load_base(resolve_source(section.init, out, "model.init", allow_cwd=True), section)
        section.init = store_source(resolve_source(section.init, out, "model.init", allow_cwd=True), out)
    else:
        texts = [s.prompt for s in samples] + [s.target for s in samples]
        model, processor = build_small_malmm(texts, section.small, image_size=config.data.image_size,
                                             **section.model_options())
        if info.is_main:
            save_folder(out / BASE, lambda tmp: (model.save_pretrained(tmp), processor.save_pretrained(tmp)))
        section.init = BASE  # relative to the run folder, so the run can move
    model.freeze_for_training(section.train_vision, section.train_llm)
    return model.to(info.device), processor


def train_malmm(config: MALMMRunConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Train MA-LMM as `config` says; returns the training summary."""
    info = setup(config.run.device)
    try:
        torch.manual_seed(config.run.seed)
        out = Path(config.run.output_dir)
        check_output(out, resume)  # before anything is written into the folder
        config.data.absolute()  # the saved config works from any folder
        data = config.data
        samples, loaded = train_samples(config)
        evaluation = eval_samples(data, data.eval_split, data.max_eval_samples) if data.eval_split else []
        model, processor = prepare_model(config, samples, out, info, resume)
        num_visual = visual_token_count(model.config, data.num_frames)
        train_items = [s.item() for s in samples]
        train_video, store = model_inputs(data, model, data.train_strategy, augment=data.augment)
        shard = dict(rank=info.rank, world=info.world_size, progress=progress and info.is_main)
        prepare(train_items, train_video, store, what="training", **shard)
        prepare([s.item() for s in evaluation], *model_inputs(data, model, data.eval_strategy), what="evaluation", **shard)
        barrier(info)  # every process's share of the caches is written

        def loss(batch, step, lr):
            inputs = {k: v for k, v in batch.items() if k != "index"}  # pixel_values, or vision_features
            return model(**inputs, memory_gradients=config.model.memory_gradients).loss

        def evaluate():
            metrics, _ = evaluate_malmm(model, processor, evaluation, data, config.generate,
                                        batch_size=config.run.eval_batch_size, device=info.device, progress=progress)
            return flat_metrics(metrics)

        job = TrainingJob(
            model=model,
            dataset=VideoDataset(train_items, train_video, seed=config.run.seed, features=store),
            collate=partial(processor.collate, num_visual_tokens=num_visual, with_targets=True), loss=loss,
            evaluate=evaluate if evaluation else None,
            metric="CIDEr" if data.task == "captioning" else "top1",
            no_decay={"query_tokens", "temporal_embedding.weight"},
            summary={"data": {data.train_split: loaded}},
        )
        return fit(job, config.optim, config.run, dump_config(config), info, resume=resume, progress=progress)
    finally:
        teardown()
