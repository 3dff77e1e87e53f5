"""EfficientNet-Lite specs and lukemelas names, checked against the published state dicts."""

from __future__ import annotations

import pytest

from mixma.models.vision.efficientnet import B0_STAGES, lite_spec, lukemelas_names, round_channels
from mixma.models.vision.encoder import ARCHS
from mixma.models.vision.errors import MissingWeightsError
from mixma.models.vision.mbconv import InvertedResidualNet
from mixma.models.vision.weights import load_strict, mismatches, package_file, read_state_dict, translate

LITES = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]


def published(name: str) -> dict:
    spec = ARCHS[name]
    try:
        return read_state_dict(package_file(spec.package, spec.version, spec.file))
    except MissingWeightsError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", LITES)
def test_published_weights_load_strictly(name):
    state = published(name)
    net = InvertedResidualNet(lite_spec(name))
    ours = translate(state, lukemelas_names(net.spec))
    assert mismatches(net, ours) == []
    load_strict(net, ours, name)
    assert len(ours) == len(net.state_dict())  # every published tensor found a place


def test_lite0_is_b0_without_excitation():
    state = published("efficientnet-lite0")
    assert len(state) == 296
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == 4_652_008
    assert not any("_se_" in k for k in state)
    assert lite_spec("efficientnet-lite0").stages == B0_STAGES


def test_scaled_variants():
    lite1, lite2 = lite_spec("efficientnet-lite1"), lite_spec("efficientnet-lite2")
    assert [s.repeats for s in lite1.stages] == [1, 3, 3, 4, 4, 5, 1]  # first and last stage not deepened
    assert [s.channels for s in lite2.stages] == [16, 24, 48, 88, 120, 208, 352]
    assert lite2.stem == 32 and lite2.head == 1280  # Lite fixes stem and head


def test_round_channels():
    assert [round_channels(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert round_channels(32, 1.0) == 32
    assert round_channels(10, 1.0) == 16  # never below 90% of the scaled width (10 → 8 would be)
