"""MAMA's video question answering models: open-ended (answer classification) and multiple choice.

Both put a small cross-modal fusion transformer on top of a `DualEncoder`:

    video tokens  = Linear(per-frame features [B, T, Dv]) + temporal position + type 0
                    (or every vision token of every frame: video_tokens="patches")
    text tokens   = Linear(text-tower token states [B, L, Dt]) + type 1
    fused         = TransformerEncoder([CLS; video tokens; text tokens])[CLS]      (pre-LN, masked)

- `OpenEndedVideoQA`: an MLP on the fused CLS → logits over an `AnswerVocab` (the usual
  classification formulation of MSVD-QA / MSRVTT-QA). MAMA's VIOLET code instead predicts one
  WordPiece at a `[MASK]`, which cannot answer multi-token answers; a closed answer set can.
- `MultipleChoiceVideoQA`: each `question + option` text is fused with the video and an MLP maps
  the fused CLS to one score (as VIOLETv2's multiple-choice heads); softmax over the options,
  prediction = argmax.

`forward` returns per-sample losses (`reduction='none'`) when labels are given, so the caller can
apply MAMA's meta-learned sample weights, plus the dual encoder's L2-normalised `video_emb` and text
embeddings (question, options and optionally an LVLM caption) for the auxiliary angular-margin
contrastive term. Text is tokenised outside the model (`mixma.data.collate`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.utils import ModelOutput

from mixma._atomic import atomic_open
from mixma.models.dual_encoder import DualEncoder, DualEncoderConfig, TextFeatures, VideoFeatures, no_weight_decay_names
from mixma.models.folder import ModelFolderMixin
from mixma.models.temporal import EMBED_INIT_STD

IGNORE_INDEX = -100  # label of a sample without a usable answer: its loss is 0 (F.cross_entropy's default)
ANSWERS_NAME = "answers.json"
VideoTokens = Literal["frames", "patches"]
VIDEO_TOKEN_KINDS: tuple[str, ...] = get_args(VideoTokens)


# ---------------------------------------------------------------------------------------------
# answer vocabulary


def normalize_answer(answer: str) -> str:
    """Lower-case, strip and collapse whitespace: `" A  Dog "` → `"a dog"`."""
    return " ".join(answer.lower().split())


class AnswerVocab:
    """A closed answer set for open-ended QA: answers ↔ class ids.

    Answers are normalised with `normalize_answer` on the way in, so ids are case- and
    whitespace-insensitive. An answer outside the vocabulary encodes to `IGNORE_INDEX`: at train
    time such a sample contributes a loss of exactly 0 (and should preferably be filtered out by the
    data pipeline, as is usual for VQA-style classifiers); at evaluation it simply counts as wrong,
    since no prediction can equal it.

    Args:
        answers: distinct answers in id order.
    """

    def __init__(self, answers: Sequence[str]):
        normalised = [normalize_answer(a) for a in answers]
        if not normalised:
            raise ValueError("an answer vocabulary needs at least one answer")
        if len(set(normalised)) != len(normalised):
            raise ValueError("answers must be distinct after normalisation")
        self.answers: list[str] = normalised
        self._ids = {a: i for i, a in enumerate(normalised)}

    @classmethod
    def build(cls, answers: Iterable[str], min_count: int = 1, max_size: int | None = None) -> AnswerVocab:
        """The most frequent training answers.

        Args:
            answers: every training answer (one per question; repeats count).
            min_count: keep answers seen at least this often.
            max_size: keep at most this many (the most frequent; ties broken alphabetically).

        Returns:
            The vocabulary, most frequent answer first.
        """
        if min_count < 1 or (max_size is not None and max_size < 1):
            raise ValueError(f"need min_count >= 1 and max_size >= 1, got {min_count}, {max_size}")
        counts = Counter(normalize_answer(a) for a in answers)
        ranked = sorted((a for a, c in counts.items() if c >= min_count), key=lambda a: (-counts[a], a))
        return cls(ranked[:max_size])

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, answer: object) -> bool:
        return isinstance(answer, str) and normalize_answer(answer) in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnswerVocab) and self.answers == other.answers

    def encode(self, answer: str) -> int:
        """Class id of `answer`, or `IGNORE_INDEX` if it is not in the vocabulary."""
        return self._ids.get(normalize_answer(answer), IGNORE_INDEX)

    def encode_batch(self, answers: Sequence[str]) -> Tensor:
        """`[B]` int64 labels for a batch of answers."""
        return torch.tensor([self.encode(a) for a in answers], dtype=torch.long)

    def decode(self, index: int) -> str:
        """Answer string of class `index`."""
        return self.answers[index]

    def decode_batch(self, ids: Tensor | Sequence[int]) -> list[str]:
        """Answer strings of `[B]` class ids."""
        return [self.answers[int(i)] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        """Write the answers as a JSON list (atomically)."""
        with atomic_open(path) as f:
            json.dump(self.answers, f, ensure_ascii=False, indent=0)

    @classmethod
    def load(cls, path: str | os.PathLike) -> AnswerVocab:
        """Read a vocabulary written by `save`."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------
# config and outputs


@dataclass(kw_only=True)
class VideoQAOptions:
    """The QA models' own options; every default lives here (the encoder's in `DualEncoderOptions`).

    A training config's `model.qa` section is this dataclass; `VideoQAConfig` adds the encoder.
    """

    video_tokens: VideoTokens = "frames"  # fusion input: one pooled token per frame, or all vision tokens
    fusion_dim: int = 512  # width of the fusion transformer
    fusion_layers: int = 2  # its layers
    fusion_heads: int = 8  # its attention heads (must divide fusion_dim)
    fusion_dropout: float = 0.1  # dropout in the fusion transformer and the heads
    head_hidden_mult: int = 2  # head MLP: fusion_dim → mult·fusion_dim → outputs (VIOLETv2: 768→1536→1)

    def __post_init__(self) -> None:
        if self.video_tokens not in VIDEO_TOKEN_KINDS:
            raise ValueError(f"video_tokens must be one of {VIDEO_TOKEN_KINDS}, got {self.video_tokens!r}")
        for name in ("fusion_dim", "fusion_layers", "fusion_heads", "head_hidden_mult"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.fusion_dim % self.fusion_heads:
            raise ValueError(f"fusion_heads ({self.fusion_heads}) must divide fusion_dim ({self.fusion_dim})")
        if not 0 <= self.fusion_dropout < 1:
            raise ValueError(f"fusion_dropout must be in [0, 1), got {self.fusion_dropout}")


@dataclass
class VideoQAConfig(VideoQAOptions):
    """A QA model: its dual encoder, its options, and (open-ended) the number of answers."""

    encoder: DualEncoderConfig  # the towers, projections and temporal aggregation
    num_answers: int = 0  # open-ended: answer classes (the AnswerVocab's size); unused for multiple choice

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = DualEncoderConfig.from_dict(self.encoder)
        super().__post_init__()
        if self.num_answers < 0:
            raise ValueError(f"num_answers must be >= 0, got {self.num_answers}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoQAConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown VideoQAConfig keys: {sorted(unknown)}")
        return cls(**data)


@dataclass
class VideoQAOutput(ModelOutput):
    """What the QA models' `forward` returns.

    Args:
        loss: `[B]` per-sample cross-entropy (0 where the label is `IGNORE_INDEX`); only with labels.
        logits: `[B, num_answers]` (open-ended) or `[B, K]` option scores (multiple choice; masked
            options hold the dtype's minimum).
        video_emb: `[B, P]` L2-normalised dual-encoder video embeddings.
        text_emb: `[B, P]` question embeddings (open-ended) or `[B, K, P]` `question + option`
            embeddings (multiple choice), L2-normalised.
        caption_emb: `[B, P]` L2-normalised embeddings of the given captions (e.g. LVLM captions).
        fused: `[B, fusion_dim]` (open-ended) or `[B, K, fusion_dim]` fused CLS states.
    """

    loss: Tensor | None = None
    logits: Tensor | None = None
    video_emb: Tensor | None = None
    text_emb: Tensor | None = None
    caption_emb: Tensor | None = None
    fused: Tensor | None = None


# ---------------------------------------------------------------------------------------------
# fusion


class FusionEncoder(nn.Module):
    """`[CLS; video tokens; text tokens]` through a pre-LN transformer encoder → fused CLS state.

    Args:
        video_dim: width `Dv` of the video features.
        text_dim: width `Dt` of the text token states.
        config: fusion options.
        max_frames: size of the temporal position table.
    """

    no_weight_decay_params = ("cls", "frame_position", "modality")

    def __init__(self, video_dim: int, text_dim: int, config: VideoQAConfig, max_frames: int):
        super().__init__()
        dim = config.fusion_dim
        self.max_frames = max_frames
        self.video_in = nn.Linear(video_dim, dim)
        self.text_in = nn.Linear(text_dim, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * EMBED_INIT_STD)
        self.frame_position = nn.Parameter(torch.randn(max_frames, dim) * EMBED_INIT_STD)
        self.modality = nn.Parameter(torch.randn(2, dim) * EMBED_INIT_STD)  # 0: video, 1: text
        layer = nn.TransformerEncoderLayer(dim, config.fusion_heads, 4 * dim, config.fusion_dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.fusion_layers, norm=nn.LayerNorm(dim),
                                             enable_nested_tensor=False)

    def forward(self, video: Tensor, frame_mask: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        """Fuse one video per text.

        Args:
            video: `[N, T, S, Dv]` S tokens per frame (S = 1 for pooled frames).
            frame_mask: `[N, T]` bool, true for real frames.
            text: `[N, L, Dt]` text token states.
            text_mask: `[N, L]` bool, true for real tokens.

        Returns:
            `[N, fusion_dim]` the CLS output.
        """
        n, num_frames, per_frame, _ = video.shape
        if num_frames > self.max_frames:
            raise ValueError(f"{num_frames} frames exceed the fusion position table ({self.max_frames}); "
                             "raise max_frames in the encoder config")
        video = self.video_in(video) + self.frame_position[:num_frames, None] + self.modality[0]  # [N, T, S, F]
        video = video.flatten(1, 2)  # [N, T*S, F]
        video_mask = frame_mask[:, :, None].expand(-1, -1, per_frame).flatten(1)  # [N, T*S]
        text = self.text_in(text) + self.modality[1]  # [N, L, F]
        tokens = torch.cat([self.cls.expand(n, -1, -1), video, text], 1)  # [N, 1+T*S+L, F]
        keep = torch.cat([frame_mask.new_ones(n, 1), video_mask, text_mask], 1)  # [N, 1+T*S+L]
        return self.encoder(tokens, src_key_padding_mask=~keep)[:, 0]


def _head(dim: int, mult: int, outputs: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mult * dim, outputs))


class _VideoQABase(ModelFolderMixin, nn.Module):
    """Encoder + fusion shared by both QA models; saved and loaded by `ModelFolderMixin`."""

    config_class = VideoQAConfig

    def __init__(self, config: VideoQAConfig, encoder: DualEncoder | None = None):
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else DualEncoder(config.encoder)
        self.fusion = FusionEncoder(self.encoder.vision_dim, self.encoder.text_dim, config, config.encoder.max_frames)

    def _video(self, pixel_values: Tensor | None, frame_mask: Tensor | None,
               vision_features: Tensor | None = None) -> tuple[VideoFeatures, Tensor, Tensor]:
        """Video features, the fusion's video tokens `[B, T, S, Dv]` and the video embedding `[B, P]`
        (`vision_features`: a frozen tower's cached per-frame outputs instead of the pixels)."""
        features = self.encoder.encode_video(pixel_values, frame_mask, return_tokens=self.config.video_tokens == "patches",
                                             vision_features=vision_features)
        tokens = features.frame_embeds[:, :, None] if features.token_embeds is None else features.token_embeds
        return features, tokens, self.encoder.video_embedding(features)

    def _caption_emb(self, input_ids: Tensor | None, attention_mask: Tensor | None) -> Tensor | None:
        return None if input_ids is None else self.encoder.embed_texts(input_ids, attention_mask)

    @property
    def input_normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The dual encoder's (see `DualEncoder.input_normalization`)."""
        return self.encoder.input_normalization

    def vision_backbone(self, frames: Tensor) -> Tensor:
        """The dual encoder's (see `DualEncoder.vision_backbone`)."""
        return self.encoder.vision_backbone(frames)

    def vision_backbone_digest(self) -> str:
        return self.encoder.vision_backbone_digest()

    def no_weight_decay(self) -> set[str]:
        """Parameter names of the learned tokens/position tables (encoder's and fusion's)."""
        return no_weight_decay_names(self)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute the towers' activations in the backward pass (see `DualEncoder`)."""
        self.encoder.gradient_checkpointing_enable()


# ---------------------------------------------------------------------------------------------
# open-ended


class OpenEndedVideoQA(_VideoQABase):
    """Open-ended video QA as classification over an answer vocabulary.

    Args:
        config: options; `config.num_answers` must equal `len(answers)`.
        answers: the answer vocabulary.
        encoder: an already-built dual encoder (else built from `config.encoder`, random weights).
    """

    def __init__(self, config: VideoQAConfig, answers: AnswerVocab, encoder: DualEncoder | None = None):
        if config.num_answers != len(answers):
            raise ValueError(f"config.num_answers ({config.num_answers}) != vocabulary size ({len(answers)})")
        super().__init__(config, encoder)
        self.answers = answers
        self.classifier = _head(config.fusion_dim, config.head_hidden_mult, config.num_answers, config.fusion_dropout)

    @classmethod
    def from_encoder(cls, encoder: DualEncoder, answers: AnswerVocab, **options: Any) -> OpenEndedVideoQA:
        """Build on a (pretrained) dual encoder; `options` are `VideoQAConfig` fields."""
        config = VideoQAConfig(encoder=encoder.config, num_answers=len(answers), **options)
        return cls(config, answers, encoder).train()

    @classmethod
    def _build(cls, config: VideoQAConfig, directory: Path) -> OpenEndedVideoQA:
        return cls(config, AnswerVocab.load(directory / ANSWERS_NAME))

    def _save_extra(self, directory: Path) -> None:
        self.answers.save(directory / ANSWERS_NAME)

    def forward(
        self,
        pixel_values: Tensor | None,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        frame_mask: Tensor | None = None,
        labels: Tensor | None = None,
        caption_input_ids: Tensor | None = None,
        caption_attention_mask: Tensor | None = None,
        vision_features: Tensor | None = None,
    ) -> VideoQAOutput:
        """Answer one question per video.

        Args:
            pixel_values: `[B, T, 3, H, W]` normalised frames.
            input_ids: `[B, L]` question token ids.
            attention_mask: `[B, L]` question mask.
            frame_mask: `[B, T]` frame mask.
            labels: `[B]` answer ids (`AnswerVocab.encode_batch`; `IGNORE_INDEX` = no usable answer).
            caption_input_ids: `[B, Lc]` optional caption per video (for the contrastive term).
            caption_attention_mask: `[B, Lc]` its mask.

        Returns:
            `VideoQAOutput`; `loss` only when `labels` is given.
        """
        video, video_tokens, video_emb = self._video(pixel_values, frame_mask, vision_features)
        text: TextFeatures = self.encoder.encode_text(input_ids, attention_mask)
        fused = self.fusion(video_tokens, video.frame_mask, text.token_embeds, text.attention_mask)  # [B, F]
        logits = self.classifier(fused)  # [B, A]
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels, reduction="none", ignore_index=IGNORE_INDEX)  # [B]
        return VideoQAOutput(
            loss=loss, logits=logits, video_emb=video_emb, text_emb=self.encoder.text_embedding(text),
            caption_emb=self._caption_emb(caption_input_ids, caption_attention_mask), fused=fused,
        )

    def predict(self, logits: Tensor) -> list[str]:
        """Top-1 answer strings for `[B, num_answers]` logits."""
        return self.answers.decode_batch(logits.argmax(-1))


# ---------------------------------------------------------------------------------------------
# multiple choice


class MultipleChoiceVideoQA(_VideoQABase):
    """Multiple-choice video QA: one fused score per `question + option`, softmax over options.

    Args:
        config: options (`num_answers` is unused).
        encoder: an already-built dual encoder (else built from `config.encoder`, random weights).
    """

    def __init__(self, config: VideoQAConfig, encoder: DualEncoder | None = None):
        super().__init__(config, encoder)
        self.scorer = _head(config.fusion_dim, config.head_hidden_mult, 1, config.fusion_dropout)

    @classmethod
    def from_encoder(cls, encoder: DualEncoder, **options: Any) -> MultipleChoiceVideoQA:
        """Build on a (pretrained) dual encoder; `options` are `VideoQAConfig` fields."""
        return cls(VideoQAConfig(encoder=encoder.config, **options), encoder).train()

    def forward(
        self,
        pixel_values: Tensor | None,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        frame_mask: Tensor | None = None,
        option_mask: Tensor | None = None,
        labels: Tensor | None = None,
        caption_input_ids: Tensor | None = None,
        caption_attention_mask: Tensor | None = None,
        vision_features: Tensor | None = None,
    ) -> VideoQAOutput:
        """Score K candidate answers per video.

        Args:
            pixel_values: `[B, T, 3, H, W]` normalised frames.
            input_ids: `[B, K, L]` token ids of each `question + option` text.
            attention_mask: `[B, K, L]` their masks.
            frame_mask: `[B, T]` frame mask.
            option_mask: `[B, K]` true for real options (videos may have fewer); `None`: all real.
            labels: `[B]` index of the correct option (`IGNORE_INDEX`: none).
            caption_input_ids: `[B, Lc]` optional caption per video (for the contrastive term).
            caption_attention_mask: `[B, Lc]` its mask.

        Returns:
            `VideoQAOutput`; `loss` only when `labels` is given; prediction = `logits.argmax(-1)`.
        """
        if input_ids.ndim != 3:
            raise ValueError(f"input_ids must be [B, K, L], got shape {tuple(input_ids.shape)}")
        batch, num_options, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if option_mask is None:
            option_mask = torch.ones(batch, num_options, dtype=torch.bool, device=input_ids.device)
        option_mask = option_mask.bool()
        if option_mask.shape != (batch, num_options) or not bool(option_mask.any(1).all()):
            raise ValueError(f"option_mask must be [B, K] = {(batch, num_options)} with a real option per row")

        video, video_tokens, video_emb = self._video(pixel_values, frame_mask, vision_features)
        text = self.encoder.encode_text(input_ids.flatten(0, 1), attention_mask.flatten(0, 1))  # B*K texts
        # each video is fused with each of its K options: repeat the video tokens K times
        video_tokens = video_tokens.repeat_interleave(num_options, 0)  # [B*K, T, S, Dv]
        frames = video.frame_mask.repeat_interleave(num_options, 0)  # [B*K, T]
        fused = self.fusion(video_tokens, frames, text.token_embeds, text.attention_mask)  # [B*K, F]
        scores = self.scorer(fused).view(batch, num_options)  # [B, K]
        logits = scores.masked_fill(~option_mask, torch.finfo(scores.dtype).min)
        loss = None
        if labels is not None:
            real = labels != IGNORE_INDEX
            if not bool(option_mask[real.nonzero()[:, 0], labels[real]].all()):
                raise ValueError("a label points at a masked-out option")
            loss = F.cross_entropy(logits, labels, reduction="none", ignore_index=IGNORE_INDEX)  # [B]
        option_emb = self.encoder.text_embedding(text).view(batch, num_options, -1)  # [B, K, P]
        return VideoQAOutput(
            loss=loss, logits=logits, video_emb=video_emb, text_emb=option_emb,
            caption_emb=self._caption_emb(caption_input_ids, caption_attention_mask),
            fused=fused.view(batch, num_options, -1),
        )
