"""MobileNetV2 (width 1.0): network spec and torchvision's state-dict names.

The same inverted-residual network as EfficientNet-Lite with MobileNetV2's stage table, trained in
PyTorch: symmetric padding, BatchNorm epsilon 1e-5, inputs normalised with the ImageNet mean and
standard deviation.
"""

from __future__ import annotations

from mixma.models.vision.mbconv import NetSpec, StageSpec, block_positions

BN_EPS = 1e-5  # PyTorch's BatchNorm default
STAGES = (  # MobileNetV2 paper, table 2: (t, c, n, s) → expand, kernel, stride, repeats, channels
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(6, 3, 2, 2, 24),
    StageSpec(6, 3, 2, 3, 32),
    StageSpec(6, 3, 2, 4, 64),
    StageSpec(6, 3, 1, 3, 96),
    StageSpec(6, 3, 2, 3, 160),
    StageSpec(6, 3, 1, 1, 320),
)


def mobilenet_v2_spec() -> NetSpec:
    """The `NetSpec` of torchvision's ImageNet MobileNetV2."""
    return NetSpec(stem=32, stages=STAGES, head=1280, bn_eps=BN_EPS, padding="symmetric", dropout=0.2)


def torchvision_names(spec: NetSpec) -> dict[str, str]:
    """Module names in torchvision's `MobileNetV2` → ours (`InvertedResidualNet`).

    torchvision numbers everything in one `features` Sequential: `features.0` is the stem, then
    one entry per block, then the head. A block's `conv` Sequential holds ConvBNReLU pairs
    (`.0` conv, `.1` BatchNorm) for the expansion (absent when it does not expand) and the
    depthwise conv, then the projection conv and its BatchNorm as two plain entries.
    """
    names = {"features.0.0": "stem.conv", "features.0.1": "stem.bn", "classifier.1": "classifier"}
    positions = block_positions(spec.stages)
    for n, (s, i) in enumerate(positions, start=1):
        theirs, ours = f"features.{n}.conv", f"stages.{s}.{i}"
        parts = ["expand", "depthwise"] if spec.stages[s].expand != 1 else ["depthwise"]
        for j, part in enumerate(parts):
            names |= {f"{theirs}.{j}.0": f"{ours}.{part}.conv", f"{theirs}.{j}.1": f"{ours}.{part}.bn"}
        names |= {f"{theirs}.{len(parts)}": f"{ours}.project.conv", f"{theirs}.{len(parts) + 1}": f"{ours}.project.bn"}
    head = len(positions) + 1
    names |= {f"features.{head}.0": "head.conv", f"features.{head}.1": "head.bn"}
    return names
