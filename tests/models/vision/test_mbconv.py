"""The shared inverted-residual layers: TF-SAME padding, BatchNorm folding, output grid sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixma.models.vision.efficientnet import lite_spec
from mixma.models.vision.mbconv import ConvBNAct, InvertedResidualNet, NetSpec, StageSpec, same_padding
from mixma.models.vision.mobilenet import mobilenet_v2_spec


def tf_docs_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The formula of TensorFlow's convolution docs ("SAME" padding), written as they state it."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - (size % stride), 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_same_padding_matches_tensorflow_docs(kernel, stride):
    for size in range(1, 80):
        assert same_padding(size, kernel, stride) == tf_docs_padding(size, kernel, stride), size


@pytest.mark.parametrize("size", [7, 8, 14, 15, 112, 224, 225])
@pytest.mark.parametrize("kernel, stride", [(3, 2), (5, 2), (3, 1), (5, 1)])
def test_same_padding_output_positions_are_centred_like_tensorflow(size, kernel, stride):
    """TF SAME by its definition: ceil(n/s) outputs; output j's window starts at j*s - pad_before,
    and the windows overhang the input by at most one pixel more at the end than at the start."""
    before, after = same_padding(size, kernel, stride)
    out = (size + before + after - kernel) // stride + 1
    assert out == math.ceil(size / stride)
    assert 0 <= after - before <= 1
    last_window_end = (out - 1) * stride - before + kernel  # one past the last input index it covers
    assert last_window_end == size + after


def test_stride_one_same_padding_equals_torch_same():
    x = torch.randn(1, 2, 13, 10)
    w = torch.randn(4, 2, 5, 5)
    before, after = same_padding(13, 5, 1)
    ours = F.conv2d(F.pad(x, (*same_padding(10, 5, 1), before, after)), w)
    torch.testing.assert_close(ours, F.conv2d(x, w, padding="same"))


def test_stem_pads_bottom_right_at_224():
    assert same_padding(224, 3, 2) == (0, 1)  # the lopsided case symmetric padding gets wrong
    assert same_padding(56, 5, 2) == (1, 2)


def _randomise_bn(bn: nn.BatchNorm2d) -> None:
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.1, 2.0)


@pytest.mark.parametrize("padding", ["tf_same", "symmetric"])
@pytest.mark.parametrize("size", [15, 16])
@pytest.mark.parametrize("groups", [1, 6])
def test_eval_conv_bn_act_equals_torch_layers(padding, size, groups):
    """Folded BatchNorm equals nn.Conv2d → nn.BatchNorm2d → nn.ReLU6 on explicitly padded input."""
    torch.manual_seed(0)
    layer = ConvBNAct(6, 12, 3, 2, groups=groups, eps=1e-3, padding=padding).eval()
    _randomise_bn(layer.bn)
    x = torch.randn(2, 6, size, size + 1) * 3
    if padding == "tf_same":
        pad = (*same_padding(size + 1, 3, 2), *same_padding(size, 3, 2))
    else:
        pad = (1, 1, 1, 1)
    conv = nn.Conv2d(6, 12, 3, 2, groups=groups, bias=False)
    conv.weight = layer.conv.weight
    reference = nn.Sequential(conv, layer.bn, nn.ReLU6()).eval()
    torch.testing.assert_close(layer(x), reference(F.pad(x, pad)), rtol=1e-5, atol=1e-5)
    assert not layer(x).requires_grad or layer.conv.weight.requires_grad


def test_training_mode_uses_batch_statistics_and_updates_them():
    torch.manual_seed(0)
    layer = ConvBNAct(3, 4, 1, eps=1e-3, padding="symmetric", act=False).train()
    x = torch.randn(8, 3, 5, 5) + 2
    out = layer(x)
    torch.testing.assert_close(out.mean((0, 2, 3)), layer.bn.bias.detach(), atol=1e-4, rtol=0)
    assert layer.bn.num_batches_tracked == 1
    assert not torch.equal(layer.bn.running_mean, torch.zeros(4))


def test_gradients_flow_through_folded_batch_norm():
    layer = ConvBNAct(3, 4, 3, eps=1e-3, padding="tf_same").eval()
    layer(torch.randn(2, 3, 8, 8)).sum().backward()
    assert layer.conv.weight.grad is not None and layer.bn.weight.grad is not None


@pytest.mark.parametrize("spec", [lite_spec("efficientnet-lite0"), mobilenet_v2_spec()], ids=["lite0", "mobilenet"])
def test_grid_size_matches_forward(spec):
    net = InvertedResidualNet(spec).eval().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        for h, w in [(224, 224), (97, 130), (33, 32)]:
            fmap = net.forward_features(torch.zeros(1, 3, h, w).contiguous(memory_format=torch.channels_last))
            assert fmap.shape == (1, spec.head, *spec.grid_size(h, w))
    assert spec.grid_size(224, 224) == (7, 7)
    assert spec.total_stride == 32


def test_residual_only_where_shape_is_kept():
    net = InvertedResidualNet(lite_spec("efficientnet-lite0"))
    flags = [[block.residual for block in stage] for stage in net.stages]
    assert flags == [[False], [False, True], [False, True], [False, True, True], [False, True, True],
                     [False, True, True, True], [False]]


def test_spec_rejects_bad_padding():
    with pytest.raises(ValueError, match="padding"):
        NetSpec(stem=8, stages=(StageSpec(1, 3, 1, 1, 8),), head=16, bn_eps=1e-3, padding="same", dropout=0.0)
