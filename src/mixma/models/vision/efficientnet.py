"""EfficientNet-Lite0/1/2: network specs and the lukemelas (EfficientNet-PyTorch) state-dict names.

EfficientNet-Lite is EfficientNet-B0's stage table with the parts that quantise or run badly on
mobile hardware removed: no squeeze-and-excitation, ReLU6 instead of swish. The larger variants
scale widths and depths like EfficientNet, except that the stem (32 channels), the head (1280)
and the repeats of the first and last stages stay fixed. Trained in TensorFlow: TF "SAME"
padding, BatchNorm epsilon 1e-3, inputs `(pixel - 127) / 128`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mixma.models.vision.mbconv import NetSpec, StageSpec, block_positions

BN_EPS = 1e-3  # TensorFlow's BatchNorm default, which the weights were trained with
CHANNEL_DIVISOR = 8  # scaled widths are rounded to multiples of this
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

# EfficientNet-B0's stages, which Lite0 keeps (expand, kernel, stride, repeats, channels).
B0_STAGES = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(6, 3, 2, 2, 24),
    StageSpec(6, 5, 2, 2, 40),
    StageSpec(6, 3, 2, 3, 80),
    StageSpec(6, 5, 1, 3, 112),
    StageSpec(6, 5, 2, 4, 192),
    StageSpec(6, 3, 1, 1, 320),
)


@dataclass(frozen=True)
class LiteScale:
    """Compound scaling of one Lite variant."""

    width: float
    depth: float
    image_size: int  # the resolution it was trained at
    dropout: float


LITE_SCALES = {
    "efficientnet-lite0": LiteScale(1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": LiteScale(1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": LiteScale(1.1, 1.2, 260, 0.3),
}


def round_channels(channels: int, width: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """EfficientNet's width rounding: nearest multiple of `divisor`, never more than 10% below."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def lite_spec(name: str) -> NetSpec:
    """The `NetSpec` of `"efficientnet-lite0"`, `-lite1` or `-lite2`.

    Raises:
        KeyError: another name.
    """
    scale = LITE_SCALES[name]
    last = len(B0_STAGES) - 1
    stages = tuple(
        StageSpec(
            s.expand, s.kernel, s.stride,
            s.repeats if i in (0, last) else math.ceil(s.repeats * scale.depth),  # Lite fixes both ends
            round_channels(s.channels, scale.width),
        )
        for i, s in enumerate(B0_STAGES)
    )
    return NetSpec(stem=STEM_CHANNELS, stages=stages, head=HEAD_CHANNELS, bn_eps=BN_EPS, padding="tf_same",
                   dropout=scale.dropout)


def lukemelas_names(spec: NetSpec) -> dict[str, str]:
    """Module names in lukemelas' EfficientNet-PyTorch → ours (`InvertedResidualNet`).

    Its blocks are one flat list `_blocks.N`, each with `_expand_conv`/`_bn0` (absent when the
    block does not expand), `_depthwise_conv`/`_bn1` and `_project_conv`/`_bn2`.
    """
    names = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
             "_fc": "classifier"}
    for n, (s, i) in enumerate(block_positions(spec.stages)):
        theirs, ours = f"_blocks.{n}", f"stages.{s}.{i}"
        if spec.stages[s].expand != 1:
            names |= {f"{theirs}._expand_conv": f"{ours}.expand.conv", f"{theirs}._bn0": f"{ours}.expand.bn"}
        names |= {
            f"{theirs}._depthwise_conv": f"{ours}.depthwise.conv", f"{theirs}._bn1": f"{ours}.depthwise.bn",
            f"{theirs}._project_conv": f"{ours}.project.conv", f"{theirs}._bn2": f"{ours}.project.bn",
        }
    return names
