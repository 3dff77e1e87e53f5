"""Inverted-residual ("MBConv") image networks: the layers EfficientNet-Lite and MobileNetV2 share.

Both families are a 3x3 stride-2 stem, stages of inverted residual blocks (1x1 expand → kxk
depthwise → 1x1 linear projection, with a skip connection when the block keeps its shape), a 1x1
head convolution to 1280 channels, global average pooling and a linear classifier. Every
convolution is followed by BatchNorm and, except the projections, ReLU6. The two differ only in
what `NetSpec` records: widths and depths, the BatchNorm epsilon and how convolutions pad.

Padding
-------
TensorFlow's "SAME" padding (EfficientNet-Lite was trained in TF) makes a stride-`s` layer output
`ceil(n / s)` positions and pads `total = max((out - 1) * s + k - n, 0)` pixels, the smaller half
*before* and the larger half *after*. For stride 1 and odd kernels this is PyTorch's symmetric
`(k - 1) // 2`, but for a stride-2 layer on an even size it is lopsided: a 3x3 stride-2 stem on
224 px pads (top 0, bottom 1). PyTorch's own padding would shift every sampling position by one
pixel, and the pretrained network then works noticeably worse. MobileNetV2 (trained in PyTorch)
uses symmetric padding.

BatchNorm folding
-----------------
In eval mode BatchNorm is a fixed per-channel affine map, so `ConvBNAct` folds it into the
convolution's weights and bias on every call (a few microseconds of arithmetic on the weights)
instead of making an extra pass over the activations. Nothing is cached, so a weight update can
never leave a stale copy behind; in training mode the layers run unfolded with batch statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PaddingMode = Literal["tf_same", "symmetric"]
PADDING_MODES: tuple[PaddingMode, ...] = ("tf_same", "symmetric")
RELU6_MAX = 6.0


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one spatial dimension: `(before, after)`.

    Args:
        size: input length.
        kernel: kernel length.
        stride: stride.

    Returns:
        Pixels to pad before and after; the output then has `ceil(size / stride)` positions.
    """
    out = -(-size // stride)  # ceil
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class StageSpec:
    """One stage: `repeats` blocks; the first has `stride` and changes the width to `channels`."""

    expand: int  # hidden width of a block = input width * expand (1: no expansion conv)
    kernel: int  # depthwise kernel size
    stride: int
    repeats: int
    channels: int  # output width


@dataclass(frozen=True)
class NetSpec:
    """Everything that distinguishes one inverted-residual network from another."""

    stem: int  # stem output channels
    stages: tuple[StageSpec, ...]
    head: int  # channels of the last feature map (the pooled embedding's width)
    bn_eps: float
    padding: PaddingMode
    dropout: float  # before the classifier, training only
    num_classes: int = 1000

    def __post_init__(self) -> None:
        if self.padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {self.padding!r}")
        if not self.stages:
            raise ValueError("a network needs at least one stage")

    @property
    def num_blocks(self) -> int:
        return sum(stage.repeats for stage in self.stages)

    @property
    def total_stride(self) -> int:
        stride = 2  # the stem
        for stage in self.stages:
            stride *= stage.stride
        return stride

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Height and width of the last feature map for an input of `height` x `width` pixels.

        Every stride-2 layer outputs `ceil(n / 2)` positions (TF SAME by definition; symmetric
        `(k - 1) // 2` padding of an odd kernel gives the same count), and nested ceilings of
        integer halvings make one: `ceil(n / total_stride)`, 7 at 224 px, 10 at 320.
        """
        for stride in [2, *(s.stride for s in self.stages)]:
            height, width = -(-height // stride), -(-width // stride)
        return height, width


class ConvBNAct(nn.Module):
    """Convolution (no bias) → BatchNorm → optional ReLU6, with TF-SAME or symmetric padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, *,
                 act: bool = True, eps: float, padding: PaddingMode):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)
        self.act = act

    def _pad(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Pad `x` where the padding is lopsided; return it and the symmetric rest for the conv."""
        if self.padding == "symmetric":
            half = (self.kernel - 1) // 2
            return x, (half, half)
        top, bottom = same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel, self.stride)
        if top == bottom and left == right:
            return x, (top, left)  # the conv pads symmetric amounts itself, without a copy
        return F.pad(x, (left, right, top, bottom)), (0, 0)

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._pad(x)
        conv = self.conv
        if self.bn.training:
            x = self.bn(F.conv2d(x, conv.weight, None, conv.stride, padding, 1, conv.groups))
        else:
            weight, bias = fold_batch_norm(conv.weight, self.bn)
            x = F.conv2d(x, weight, bias, conv.stride, padding, 1, conv.groups)
        return F.hardtanh(x, 0.0, RELU6_MAX, inplace=True) if self.act else x


def fold_batch_norm(weight: Tensor, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Weight and bias of the convolution that equals `conv(x, weight)` followed by eval-mode `bn`.

    Args:
        weight: `[Cout, Cin/groups, k, k]` convolution weight (no bias).
        bn: BatchNorm over the `Cout` channels, with running statistics.

    Returns:
        `(weight * scale, bn.bias - running_mean * scale)`, `scale = gamma / sqrt(var + eps)`.
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # [Cout]
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when `expand == 1`) → kxk depthwise → 1x1 linear projection (+ skip)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, *, eps: float,
                 padding: PaddingMode):
        super().__init__()
        hidden = cin * expand
        self.expand = ConvBNAct(cin, hidden, 1, eps=eps, padding=padding) if expand != 1 else None
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, eps=eps, padding=padding)
        self.project = ConvBNAct(hidden, cout, 1, act=False, eps=eps, padding=padding)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class InvertedResidualNet(nn.Module):
    """Stem → stages → head → (pool → classifier); built from a `NetSpec` with random weights.

    Module names (`stem`, `stages.S.B.expand|depthwise|project.conv|bn`, `head`, `classifier`)
    are this project's own; `efficientnet.py` and `mobilenet.py` translate the published state
    dicts into them.
    """

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = spec
        eps, padding = spec.bn_eps, spec.padding
        self.stem = ConvBNAct(3, spec.stem, 3, 2, eps=eps, padding=padding)
        stages, width = [], spec.stem
        for stage in spec.stages:
            blocks = []
            for i in range(stage.repeats):
                blocks.append(InvertedResidual(width, stage.channels, stage.expand, stage.kernel,
                                               stage.stride if i == 0 else 1, eps=eps, padding=padding))
                width = stage.channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = ConvBNAct(width, spec.head, 1, eps=eps, padding=padding)
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = nn.Linear(spec.head, spec.num_classes)

    def units(self) -> list[nn.Module]:
        """The feature extractor's pieces from input to output: stem, each stage, head."""
        return [self.stem, *self.stages, self.head]

    def forward_features(self, x: Tensor) -> Tensor:
        """`[N, 3, H, W]` normalised images → `[N, head, h, w]`, the last map before pooling."""
        for unit in self.units():
            x = unit(x)
        return x

    def forward_head(self, pooled: Tensor) -> Tensor:
        """`[N, head]` pooled features → `[N, num_classes]` logits."""
        return self.classifier(self.dropout(pooled))

    def forward(self, x: Tensor) -> Tensor:
        """`[N, 3, H, W]` → `[N, num_classes]` logits."""
        return self.forward_head(self.forward_features(x).mean((2, 3)))


def block_positions(stages: Sequence[StageSpec]) -> list[tuple[int, int]]:
    """`(stage, index in stage)` of every block in network order (for translating flat indices)."""
    return [(s, i) for s, stage in enumerate(stages) for i in range(stage.repeats)]
