"""`ImageEncoder` as the vision tower of a larger model (MAMA's dual encoder, MA-LMM).

A model that holds a tower saves the tower's description in its own config: for an
`ImageEncoder` that is `tower_config(encoder)`, a dict marked with `model_type:
"mixma_image_encoder"` (so it sits beside Hugging Face tower configs, which carry theirs), and
`build_tower` rebuilds the (randomly initialised) encoder from it before the model's weights are
loaded. `is_encoder_name` tells a name such as "efficientnet-lite0" from a checkpoint path or hub
id. The pixel normalisation a tower was trained with is `input_normalization`, on the 0..1 scale
the video transforms use.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from mixma.models.vision.encoder import ARCHS, ImageEncoder, ImageEncoderConfig

MODEL_TYPE = "mixma_image_encoder"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # what CLIP and BLIP/InstructBLIP towers expect
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def is_encoder_name(source: Any) -> bool:
    """Whether `source` names one of `ImageEncoder`'s pretrained networks."""
    return isinstance(source, str) and source in ARCHS


def tower_config(encoder: ImageEncoder) -> dict[str, Any]:
    return {"model_type": MODEL_TYPE, **dataclasses.asdict(encoder.config)}


def is_tower_config(config: dict[str, Any]) -> bool:
    return config.get("model_type") == MODEL_TYPE


def build_tower(config: dict[str, Any]) -> ImageEncoder:
    """A randomly initialised `ImageEncoder` from `tower_config`'s dict (weights come later)."""
    options = {k: v for k, v in config.items() if k != "model_type"}
    return ImageEncoder(ImageEncoderConfig(**options))


def input_normalization(tower: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per RGB channel on the 0..1 scale that `tower` expects its input normalised with."""
    encoder = tower if isinstance(tower, ImageEncoder) else getattr(tower, "encoder", None)
    if isinstance(encoder, ImageEncoder):  # the tower, or a wrapper around it (MA-LMM's)
        return tuple(m / 255 for m in encoder.arch.mean), tuple(s / 255 for s in encoder.arch.std)
    return CLIP_MEAN, CLIP_STD
