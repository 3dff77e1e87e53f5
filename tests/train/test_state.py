"""Training state: exact round trips in formats that cannot hold code, and pickles refused."""

from __future__ import annotations

import json
import math
import pickle
import random

import numpy as np
import pytest
import torch

from mixma.train.state import (
    LEGACY_PICKLE,
    RunState,
    UnsafeCheckpoint,
    flatten,
    load_state,
    restore_rng,
    rng_state,
    save_state,
    unflatten,
)


def test_flatten_round_trips_every_kind_of_value():
    value = {
        "tensor": torch.arange(6, dtype=torch.float16).view(2, 3), "scalar": torch.tensor(3.5),
        "array": np.arange(5, dtype=np.uint32), "ints": {0: "a", 1: (2, None)}, "odd": {"$tensor": 1},
        "nested": [{"x": 1.5, "y": [True, "s"]}], "nan": float("nan"), "inf": -math.inf, "numpy": np.float64(2.0),
    }
    tensors = {}
    back = unflatten(json.loads(json.dumps(flatten(value, tensors))), tensors)
    assert torch.equal(back["tensor"], value["tensor"]) and back["tensor"].dtype == torch.float16
    assert back["scalar"].shape == () and back["scalar"].item() == 3.5
    assert back["array"].dtype == np.uint32 and (back["array"] == value["array"]).all()
    assert back["ints"] == {0: "a", 1: (2, None)} and back["odd"] == {"$tensor": 1}
    assert back["nested"] == value["nested"] and math.isnan(back["nan"]) and back["inf"] == -math.inf
    assert back["numpy"] == 2.0 and type(back["numpy"]) is float
    with pytest.raises(TypeError, match="cannot store a object"):
        flatten(object(), {})


def test_optimizer_and_random_streams_restore_exactly(tmp_path):
    param = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = torch.optim.AdamW([param], lr=0.1)
    for _ in range(3):
        param.grad = torch.randn_like(param)
        optimizer.step()
    save_state(tmp_path, {**RunState(step=3, history=[{"step": 2, "eval": {"top1": 1.0}}]).to_json(),
                          "optimizer": optimizer.state_dict(), "rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    state = load_state(tmp_path)
    restore_rng(state["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and (np.random.rand(3) == expected[1]).all() and random.random() == expected[2]
    again = torch.optim.AdamW([torch.nn.Parameter(param.detach().clone())], lr=0.1)
    again.load_state_dict(state["optimizer"])
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(again.state_dict()["state"][0][key], optimizer.state_dict()["state"][0][key])
    run = RunState.from_json(state)
    assert run.step == 3 and run.history[0]["eval"]["top1"] == 1.0


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what an attacker's pickle does when it is loaded
        return (open, (self.marker, "w"))


def test_a_pickled_state_is_refused_and_never_loaded(tmp_path):
    marker = tmp_path / "executed"
    with open(tmp_path / LEGACY_PICKLE, "wb") as f:
        pickle.dump({"optimizer": _Payload(str(marker))}, f)
    with pytest.raises(UnsafeCheckpoint, match="pickle .* can run code"):
        load_state(tmp_path)
    assert not marker.exists()


def test_a_damaged_state_is_a_clear_error(tmp_path):
    save_state(tmp_path, {"step": 1, "t": torch.zeros(2)})
    (tmp_path / "training_state.json").write_text('{"step": 1, "t": {"$tensor": "state/t"')
    with pytest.raises(Exception, match="damaged training state"):
        load_state(tmp_path)


def test_a_damaged_tensor_file_is_a_clear_error(tmp_path):
    save_state(tmp_path, {"step": 1, "t": torch.zeros(2)})
    (tmp_path / "training_state.safetensors").write_bytes(b"truncated")
    with pytest.raises(Exception, match="damaged training state"):
        load_state(tmp_path)
