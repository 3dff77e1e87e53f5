"""MAMA's retrieval model: a video-text dual encoder built from Hugging Face towers.

Video: `pixel_values [B, T, 3, H, W]` (normalised frames) → the frames of all videos are folded
into one batch and encoded by an image model (e.g. `CLIPVisionModel`; any `AutoModel` vision model
with a pooled output or a CLS token) → one vector per frame → temporal aggregation (masked mean or a
residual temporal transformer, see `mixma.models.temporal`) → linear projection → L2 norm.

Text: `input_ids [B, L]` (tokenised in collate) → a text model (`CLIPTextModel`, or a BERT-family
encoder such as the offline MiniLM) → pooling (the model's own pooler, the CLS state or the masked
mean) → linear projection → L2 norm.

The contrastive loss and its learnable logit scale are not part of the model: `forward` returns the
two embeddings and the caller applies `mixma.losses` (angular margin, meta-weighting).

Build from pretrained towers with `DualEncoder.from_towers` (one two-tower checkpoint such as
`openai/clip-vit-base-patch32` gives both towers *and* its projections), then round-trip with
`save_pretrained` / `from_pretrained` (a `config.json` that embeds both towers' configs, plus
`model.safetensors`; loading needs no hub access).

Second-order gradients (MAMA's bi-level meta step differentiates through a virtual SGD step):
PyTorch's fused attention kernels (flash / memory-efficient SDPA, used by the towers and by
`nn.TransformerEncoder`) have no double backward. Run the meta step under
`torch.nn.attention.sdpa_kernel(SDPBackend.MATH)`; plain training steps need nothing special.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from mixma.models.folder import ModelFolderMixin, weights_digest
from mixma.models.vision.encoder import ImageEncoder
from mixma.models.vision.tower import build_tower, input_normalization, is_encoder_name, is_tower_config, tower_config
from mixma.models.temporal import TEMPORAL_KINDS, TemporalKind, build_temporal, check_frame_mask

FramePooling = Literal["pooler", "cls", "mean"]
TextPooling = Literal["auto", "pooler", "cls", "mean"]
FRAME_POOLINGS: tuple[str, ...] = get_args(FramePooling)
TEXT_POOLINGS: tuple[str, ...] = get_args(TextPooling)


@dataclass(kw_only=True)
class DualEncoderOptions:
    """Everything about a `DualEncoder` but its towers; every default lives here.

    A training config's `model.encoder` section is this dataclass; `DualEncoderConfig` adds the
    towers' configs.
    """

    projection_dim: int = 512  # joint-space width (CLIP B/32 and CLIP-ViP use 512)
    frame_pooling: FramePooling = "pooler"  # per-frame vector: the tower's pooler_output (CLIP: post-LN CLS), its CLS token or the token mean
    text_pooling: TextPooling = "auto"  # "pooler" (CLIP: EOS token), "cls", "mean" (masked); auto: pooler for *_text_model towers, else mean
    temporal: TemporalKind = "mean"  # frame aggregation: masked mean, or a residual temporal transformer (starts as mean)
    temporal_layers: int = 2  # encoder layers of the temporal transformer
    temporal_heads: int = 8  # its attention heads (must divide the vision width)
    temporal_dropout: float = 0.1  # its dropout
    max_frames: int = 64  # temporal position table size (temporal transformer and QA fusion)
    freeze_vision: bool = False  # vision backbone: no gradients and kept in eval mode
    freeze_text: bool = False  # text backbone: no gradients and kept in eval mode
    vision_stages: int | None = None  # an ImageEncoder tower: train only its last k stages (None: all);
    # its BatchNorm statistics stay as pretrained either way

    def __post_init__(self) -> None:
        if self.vision_stages is not None and self.vision_stages < 0:
            raise ValueError(f"vision_stages must be >= 0, got {self.vision_stages}")
        for name, value, allowed in (
            ("frame_pooling", self.frame_pooling, FRAME_POOLINGS),
            ("text_pooling", self.text_pooling, TEXT_POOLINGS),
            ("temporal", self.temporal, TEMPORAL_KINDS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name in ("projection_dim", "temporal_layers", "temporal_heads", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.temporal_dropout < 1:
            raise ValueError(f"temporal_dropout must be in [0, 1), got {self.temporal_dropout}")


@dataclass
class DualEncoderConfig(DualEncoderOptions):
    """Architecture and options of a `DualEncoder`: the towers' Hugging Face configs as dicts
    (`PretrainedConfig.to_dict()`, including `model_type`), so a saved model rebuilds its towers
    with `AutoModel.from_config` and no hub access, plus `DualEncoderOptions`."""

    vision_config: dict[str, Any]  # HF config of the image tower (e.g. a CLIPVisionConfig dict)
    text_config: dict[str, Any]  # HF config of the text tower (e.g. CLIPTextConfig, BertConfig dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("vision_config", "text_config"):
            if "model_type" not in getattr(self, name):
                raise ValueError(f"{name} must be a transformers config dict with a 'model_type'")
            # hold exactly what config.json will hold (e.g. id2label's int keys become strings),
            # so a config equals its saved-and-loaded self
            setattr(self, name, json.loads(json.dumps(getattr(self, name))))

    @property
    def options(self) -> DualEncoderOptions:
        return DualEncoderOptions(**{f.name: getattr(self, f.name) for f in fields(DualEncoderOptions)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DualEncoderConfig:
        """Inverse of `to_dict`; unknown keys are an error (they would be silently ignored)."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown DualEncoderConfig keys: {sorted(unknown)}")
        return cls(**data)


@dataclass
class VideoFeatures(ModelOutput):
    """Pre-projection video features from `DualEncoder.encode_video`.

    Args:
        frame_embeds: `[B, T, Dv]` one vector per frame (zeros at padded frames).
        frame_mask: `[B, T]` bool, true for real frames.
        token_embeds: `[B, T, N, Dv]` every vision token of every frame (zeros at padded frames);
            only when requested.
    """

    frame_embeds: Tensor | None = None
    frame_mask: Tensor | None = None
    token_embeds: Tensor | None = None


@dataclass
class TextFeatures(ModelOutput):
    """Pre-projection text features from `DualEncoder.encode_text`.

    Args:
        pooled: `[B, Dt]` one vector per text (per `text_pooling`).
        token_embeds: `[B, L, Dt]` the text model's last hidden states.
        attention_mask: `[B, L]` bool, true for real tokens.
    """

    pooled: Tensor | None = None
    token_embeds: Tensor | None = None
    attention_mask: Tensor | None = None


@dataclass
class DualEncoderOutput(ModelOutput):
    """What `DualEncoder.forward` returns.

    Args:
        video_emb: `[B, P]` L2-normalised video embeddings.
        text_emb: `[B, P]` L2-normalised text embeddings.
        frame_embeds: `[B, T, Dv]` per-frame features before aggregation (zeros at padded frames).
    """

    video_emb: Tensor | None = None
    text_emb: Tensor | None = None
    frame_embeds: Tensor | None = None


# ---------------------------------------------------------------------------------------------
# loading towers


def _config_from_dict(data: dict[str, Any]) -> PretrainedConfig:
    data = dict(data)
    return AutoConfig.for_model(data.pop("model_type"), **data)


def _is_two_tower(config: PretrainedConfig) -> bool:
    return hasattr(config, "vision_config") and hasattr(config, "text_config")


@dataclass
class _Tower:
    model: nn.Module  # a transformers model, or an ImageEncoder
    projection: nn.Linear | None  # the checkpoint's own projection into its joint space, if any

    def config_dict(self) -> dict[str, Any]:
        if isinstance(self.model, ImageEncoder):
            return tower_config(self.model)
        return self.model.config.to_dict()


def _build_tower(config: dict[str, Any]) -> nn.Module:
    """A randomly initialised tower from its config dict (its weights are loaded afterwards)."""
    return build_tower(config) if is_tower_config(config) else AutoModel.from_config(_config_from_dict(config))


def _load_towers(
    vision: str | os.PathLike | PretrainedConfig,
    text: str | os.PathLike | PretrainedConfig | None,
    tower_kwargs: dict[str, Any],
) -> tuple[_Tower, _Tower]:
    """Resolve the two tower sources; a two-tower checkpoint named twice is loaded once."""
    cache: dict[str, nn.Module] = {}

    def one(source: str | os.PathLike | PretrainedConfig, side: str, both: bool) -> _Tower:
        if side == "vision" and is_encoder_name(source):  # a pretrained ImageNet CNN that ships in a package
            return _Tower(ImageEncoder.from_pretrained(source), None)
        if isinstance(source, PretrainedConfig):
            if both and not _is_two_tower(source):
                raise ValueError(f"text=None needs a two-tower config (e.g. CLIPConfig), got {type(source).__name__}")
            config = getattr(source, f"{side}_config") if _is_two_tower(source) else source
            return _Tower(AutoModel.from_config(config), None)  # random init
        key = str(source)
        if key not in cache:
            cache[key] = AutoModel.from_pretrained(key, **tower_kwargs)
        loaded = cache[key]
        if not _is_two_tower(loaded.config):
            if both:
                raise ValueError(f"text=None needs a two-tower checkpoint (e.g. CLIP); {key} holds a "
                                 f"{type(loaded).__name__}: pass the text tower separately")
            return _Tower(loaded, None)
        # CLIP-like checkpoint: `vision_model` / `text_model` are complete PreTrainedModels
        # (transformers 5), so their state-dict keys match `AutoModel.from_config(sub_config)`
        tower = getattr(loaded, f"{side}_model", None)
        if not isinstance(tower, PreTrainedModel):
            raise ValueError(f"{key}: a {type(loaded).__name__} has no `{side}_model` tower usable here")
        projection = getattr(loaded, "visual_projection" if side == "vision" else "text_projection", None)
        return _Tower(tower, projection if isinstance(projection, nn.Linear) else None)

    both = text is None
    return one(vision, "vision", both), one(vision if both else text, "text", both)


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names of the learned tokens and position tables that modules list in `no_weight_decay_params`."""
    return {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        for name in getattr(module, "no_weight_decay_params", ())
    }


# ---------------------------------------------------------------------------------------------
# the model


def _resolve_text_pooling(pooling: str, text_config: dict[str, Any]) -> str:
    if pooling != "auto":
        return pooling
    # the text half of a two-tower model (clip_text_model, siglip_text_model, ...) was trained
    # contrastively through its pooler; BERT-family poolers were trained for next-sentence
    # prediction, and sentence encoders (MiniLM) use the masked mean
    return "pooler" if text_config["model_type"].endswith("_text_model") else "mean"


class DualEncoder(ModelFolderMixin, nn.Module):
    """Video-text dual encoder (see the module docstring); saved and loaded with
    `save_pretrained` / `from_pretrained` (`mixma.models.folder`).

    Args:
        config: architecture and options.
        vision_model: an already-loaded vision tower; `None` builds one from
            `config.vision_config` with random weights (as `from_pretrained` does before loading).
        text_model: same for the text tower.
    """

    config_class = DualEncoderConfig

    def __init__(
        self,
        config: DualEncoderConfig,
        vision_model: PreTrainedModel | None = None,
        text_model: PreTrainedModel | None = None,
    ):
        super().__init__()
        self.config = config
        self.vision_model = vision_model if vision_model is not None else _build_tower(config.vision_config)
        self.text_model = text_model if text_model is not None else AutoModel.from_config(
            _config_from_dict(config.text_config))
        self.text_pooling = _resolve_text_pooling(config.text_pooling, config.text_config)
        if self.text_pooling != "pooler" and isinstance(getattr(self.text_model, "pooler", None), nn.Module):
            # BERT's pooler would get no gradient (DDP's unused-parameter error) and waste compute
            self.text_model.pooler = None

        vision_dim, text_dim = self.vision_dim, self.text_dim
        self.temporal = build_temporal(config.temporal, vision_dim, config.temporal_layers,
                                       config.temporal_heads, config.temporal_dropout, config.max_frames)
        self.visual_projection = nn.Linear(vision_dim, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(text_dim, config.projection_dim, bias=False)
        self._apply_freezing()

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_towers(
        cls,
        vision: str | os.PathLike | PretrainedConfig,
        text: str | os.PathLike | PretrainedConfig | None = None,
        *,
        projection_dim: int | None = None,
        tower_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> DualEncoder:
        """Build from pretrained Hugging Face towers.

        Each source is a checkpoint (hub id or local directory, loaded with
        `AutoModel.from_pretrained`) or a config (random weights). A two-tower checkpoint (CLIP,
        SigLIP, ...) contributes its `vision_model` as the vision source and its `text_model` as
        the text source; it is loaded once when named for both.

        Args:
            vision: vision tower source.
            text: text tower source; `None` takes it from `vision` (which must be two-tower).
            projection_dim: joint-space width. `None`: the checkpoint's own projection width when
                it has projections (CLIP), else `DualEncoderConfig.projection_dim`. The
                checkpoint's `visual_projection` / `text_projection` weights initialise ours when
                their shapes match; otherwise the projections start random (with a warning).
            tower_kwargs: extra keyword arguments for `AutoModel.from_pretrained` (e.g. `dtype`).
            **options: any other `DualEncoderConfig` field (`temporal`, `freeze_vision`, ...).

        Returns:
            The model, in training mode.
        """
        vision_tower, text_tower = _load_towers(vision, text, tower_kwargs or {})
        own = [t.projection for t in (vision_tower, text_tower) if t.projection is not None]
        if projection_dim is None and own:
            projection_dim = own[0].out_features
        if projection_dim is not None:
            options["projection_dim"] = projection_dim
        config = DualEncoderConfig(vision_config=vision_tower.config_dict(), text_config=text_tower.config_dict(), **options)
        model = cls(config, vision_tower.model, text_tower.model)
        for tower, ours in ((vision_tower, model.visual_projection), (text_tower, model.text_projection)):
            if tower.projection is None:
                continue
            if tower.projection.weight.shape != ours.weight.shape or tower.projection.bias is not None:
                warnings.warn(f"checkpoint projection {tuple(tower.projection.weight.shape)} does not fit "
                              f"{tuple(ours.weight.shape)}: starting from a random projection", stacklevel=2)
                continue
            with torch.no_grad():
                ours.weight.copy_(tower.projection.weight)
        return model.train()

    # -- properties and training helpers ---------------------------------------------------

    @property
    def vision_dim(self) -> int:
        """Width `Dv` of the per-frame features."""
        if isinstance(self.vision_model, ImageEncoder):
            return self.vision_model.output_dim
        return int(self.vision_model.config.hidden_size)

    @property
    def input_normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) per RGB channel, 0..1 scale, that `pixel_values` are normalised with."""
        return input_normalization(self.vision_model)

    @property
    def text_dim(self) -> int:
        """Width `Dt` of the text features."""
        return int(self.text_model.config.hidden_size)

    def _apply_freezing(self) -> None:
        if isinstance(self.vision_model, ImageEncoder):
            self.vision_model.set_trainable(0 if self.config.freeze_vision else self.config.vision_stages)
        else:
            if self.config.vision_stages is not None:
                raise ValueError("vision_stages applies to ImageEncoder towers (efficientnet-lite0, ...) only")
            self.vision_model.requires_grad_(not self.config.freeze_vision)
        self.text_model.requires_grad_(not self.config.freeze_text)

    def train(self, mode: bool = True) -> DualEncoder:
        """Like `nn.Module.train`, but frozen backbones stay in eval mode (no dropout)."""
        super().train(mode)
        if self.config.freeze_vision:
            self.vision_model.eval()
        if self.config.freeze_text:
            self.text_model.eval()
        return self

    def gradient_checkpointing_enable(self) -> None:
        """Recompute the towers' activations in the backward pass (less memory, ~30% slower)."""
        for tower in (self.vision_model, self.text_model):
            if getattr(tower, "supports_gradient_checkpointing", False):
                # transformers 5 renamed it; the old name warns that it goes away in v6
                enable = getattr(tower, "activation_checkpointing_enable", None) or tower.gradient_checkpointing_enable
                enable()

    def no_weight_decay(self) -> set[str]:
        """Parameter names of the learned tokens/position tables added here (timm convention).

        Biases and norm weights are left to the trainer's usual rule (e.g. `p.ndim < 2`).
        """
        return no_weight_decay_names(self)

    # -- video -----------------------------------------------------------------------------

    def frame_features(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """The vision tower on a batch of frames `[n, 3, H, W]`: one vector per frame `[n, Dv]`
        (per `frame_pooling`) and every token `[n, N, Dv]`. With the tower frozen and the frames
        fixed, this is all the model computes from pixels (see `vision_features` below)."""
        out = self.vision_model(pixel_values=frames.to(self.vision_model.dtype))
        tokens = out.last_hidden_state  # [n, N, Dv]
        if self.config.frame_pooling == "pooler":
            if getattr(out, "pooler_output", None) is None:
                raise ValueError(f"{type(self.vision_model).__name__} has no pooler_output; "
                                 "use frame_pooling='cls' or 'mean'")
            return out.pooler_output, tokens
        return (tokens[:, 0] if self.config.frame_pooling == "cls" else tokens.mean(1)), tokens

    def vision_backbone(self, frames: Tensor) -> Tensor:
        """`[n, 3, H, W]` frames → `[n, Dv]` pooled features: all the model computes from pixels
        when the tower is frozen (what `vision_features` caches)."""
        return self.frame_features(frames.to(self.visual_projection.weight.device))[0]

    def vision_backbone_digest(self) -> str:
        """A hash of what `vision_backbone` computes with (its cached outputs' identity)."""
        return f"{weights_digest(self.vision_model)}-{self.config.frame_pooling}"

    def encode_video(
        self, pixel_values: Tensor | None = None, frame_mask: Tensor | None = None, return_tokens: bool = False,
        vision_features: Tensor | None = None,
    ) -> VideoFeatures:
        """Encode every real frame with the vision tower.

        Only real frames are run through the tower (padded frames' pixels are never read), so
        a padded frame cannot influence anything, whatever it holds.

        Args:
            pixel_values: `[B, T, 3, H, W]` normalised frames.
            frame_mask: `[B, T]`, true/1 for real frames; `None`: all real.
            return_tokens: also return every vision token of every frame.
            vision_features: `[B, T, Dv]` what `frame_features` gives for these frames, computed
                earlier (a frozen tower's outputs, cached): the tower is skipped.

        Returns:
            `VideoFeatures`.
        """
        dtype = self.visual_projection.weight.dtype  # towers may run in lower precision than the heads
        if vision_features is not None:
            if vision_features.ndim != 3 or return_tokens:
                raise ValueError("vision_features must be [B, T, Dv] pooled frame features (no tokens)")
            mask = check_frame_mask(frame_mask, *vision_features.shape[:2], vision_features.device)
            return VideoFeatures(frame_embeds=vision_features.to(dtype) * mask[..., None], frame_mask=mask)
        if pixel_values is None or pixel_values.ndim != 5:
            shape = None if pixel_values is None else tuple(pixel_values.shape)
            raise ValueError(f"pixel_values must be [B, T, 3, H, W], got {shape}")
        batch, num_frames = pixel_values.shape[:2]
        mask = check_frame_mask(frame_mask, batch, num_frames, pixel_values.device)
        pooled, tokens = self.frame_features(pixel_values[mask])  # [n_real, Dv]: frames folded into the batch
        frame_embeds = pooled.new_zeros(batch, num_frames, pooled.shape[-1], dtype=dtype)
        frame_embeds[mask] = pooled.to(dtype)  # [B, T, Dv], zeros at padded frames
        token_embeds = None
        if return_tokens:
            token_embeds = tokens.new_zeros(batch, num_frames, *tokens.shape[1:], dtype=dtype)
            token_embeds[mask] = tokens.to(dtype)  # [B, T, N, Dv]
        return VideoFeatures(frame_embeds=frame_embeds, frame_mask=mask, token_embeds=token_embeds)

    def video_embedding(self, features: VideoFeatures) -> Tensor:
        """Aggregate frames over time, project and L2-normalise: `[B, T, Dv]` → `[B, P]`."""
        video = self.temporal(features.frame_embeds, features.frame_mask)  # [B, Dv]
        return F.normalize(self.visual_projection(video), dim=-1)

    def embed_videos(self, pixel_values: Tensor | None = None, frame_mask: Tensor | None = None,
                     vision_features: Tensor | None = None) -> Tensor:
        """`[B, T, 3, H, W]` frames (+ `[B, T]` mask) → `[B, P]` L2-normalised video embeddings."""
        return self.video_embedding(self.encode_video(pixel_values, frame_mask, vision_features=vision_features))

    # -- text ------------------------------------------------------------------------------

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> TextFeatures:
        """Run the text tower and pool.

        Args:
            input_ids: `[B, L]` token ids (tokenised in collate).
            attention_mask: `[B, L]`, 1 for real tokens; `None`: all real.

        Returns:
            `TextFeatures`.
        """
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be [B, L], got shape {tuple(input_ids.shape)}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {tuple(input_ids.shape)}")
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        dtype = self.text_projection.weight.dtype
        tokens = out.last_hidden_state.to(dtype)  # [B, L, Dt]
        mask = attention_mask.bool()
        if self.text_pooling == "pooler":
            pooled = out.pooler_output.to(dtype)  # CLIP: the EOS token's state after the final LN
        elif self.text_pooling == "cls":
            pooled = tokens[:, 0]
        else:
            weights = mask.to(dtype)[..., None]  # [B, L, 1]
            pooled = (tokens * weights).sum(1) / weights.sum(1).clamp_min(1)
        return TextFeatures(pooled=pooled, token_embeds=tokens, attention_mask=mask)

    def text_embedding(self, features: TextFeatures) -> Tensor:
        """Project and L2-normalise pooled text features: `[B, Dt]` → `[B, P]`."""
        return F.normalize(self.text_projection(features.pooled), dim=-1)

    def embed_texts(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """`[B, L]` token ids (+ mask) → `[B, P]` L2-normalised text embeddings."""
        return self.text_embedding(self.encode_text(input_ids, attention_mask))

    # -- both ------------------------------------------------------------------------------

    def forward(
        self,
        pixel_values: Tensor | None = None,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        frame_mask: Tensor | None = None,
        vision_features: Tensor | None = None,
    ) -> DualEncoderOutput:
        """Embed a batch of paired videos and texts (the caller applies the contrastive loss).

        Args:
            pixel_values: `[B, T, 3, H, W]` normalised frames.
            input_ids: `[B, L]` token ids of each video's text.
            attention_mask: `[B, L]` text mask.
            frame_mask: `[B, T]` frame mask.
            vision_features: instead of `pixel_values`, the frozen tower's cached outputs (see
                `encode_video`).

        Returns:
            `DualEncoderOutput` with `video_emb`, `text_emb` (`[B, P]`, unit norm) and `frame_embeds`.
        """
        if input_ids is None:
            raise ValueError("input_ids are required")
        video = self.encode_video(pixel_values, frame_mask, vision_features=vision_features)
        return DualEncoderOutput(
            video_emb=self.video_embedding(video),
            text_emb=self.embed_texts(input_ids, attention_mask),
            frame_embeds=video.frame_embeds,
        )
