"""MobileNetV2 spec and torchvision names, checked against the published state dict."""

from __future__ import annotations

import pytest

from mixma.models.vision.encoder import ARCHS
from mixma.models.vision.errors import MissingWeightsError
from mixma.models.vision.mbconv import InvertedResidualNet
from mixma.models.vision.mobilenet import mobilenet_v2_spec, torchvision_names
from mixma.models.vision.weights import load_strict, mismatches, package_file, read_state_dict, translate


def test_published_weights_load_strictly():
    spec = ARCHS["mobilenet-v2"]
    try:
        state = read_state_dict(package_file(spec.package, spec.version, spec.file))
    except MissingWeightsError as exc:
        pytest.skip(str(exc))
    net = InvertedResidualNet(mobilenet_v2_spec())
    ours = translate(state, torchvision_names(net.spec))
    assert mismatches(net, ours) == []
    load_strict(net, ours, "mobilenet-v2")
    assert len(state) == 314
    assert sum(p.numel() for p in net.parameters()) == 3_504_872  # torchvision's MobileNetV2 count


def test_names_cover_every_layer():
    net = InvertedResidualNet(mobilenet_v2_spec())
    ours = set(torchvision_names(net.spec).values())
    modules = {name for name, m in net.named_modules() if not list(m.children()) and list(m.parameters(False))}
    assert ours == modules
