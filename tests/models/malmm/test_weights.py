"""Weights written shard by shard load back, through safetensors and through transformers."""

from __future__ import annotations

import json

import pytest
import torch

from mixma.models.malmm import MALMM
from mixma.models.malmm.weights import INDEX, WeightsError, open_tensors, read_index, write_shards


def test_shards_index_and_lazy_reading(tmp_path):
    tensors = {f"t{i}": torch.randn(10, i + 1, dtype=torch.float64 if i % 2 else torch.float32) for i in range(5)}
    produced = []

    def produce(name):
        produced.append(name)
        return tensors[name]

    entries = [(n, tuple(t.shape), t.dtype) for n, t in tensors.items()]
    files = write_shards(tmp_path, entries, produce, max_shard_bytes=200)
    assert files[-1] == INDEX and len(files) > 2 and produced == list(tensors)
    index = read_index(tmp_path)
    assert list(index) == list(tensors)
    assert all(index[n].shape == tuple(t.shape) and index[n].dtype == t.dtype for n, t in tensors.items())
    with open_tensors(tmp_path, index) as get:
        assert all(torch.equal(get(n), t) for n, t in tensors.items())
    total = json.loads((tmp_path / INDEX).read_text())["metadata"]["total_size"]
    assert total == sum(t.numel() * t.element_size() for t in tensors.values())
    with pytest.raises(ValueError, match="planned"):
        write_shards(tmp_path / "x", [("t0", (1,), torch.float32)], produce)


def test_a_sharded_model_folder_loads_in_transformers(instructblip_dir, tmp_path):
    model = MALMM.from_pretrained(instructblip_dir)
    state = model.state_dict()
    index = read_index(instructblip_dir)
    with open_tensors(instructblip_dir, index) as get:
        write_shards(tmp_path, [(n, i.shape, i.dtype) for n, i in index.items()], get, max_shard_bytes=100_000)
    model.config.save_pretrained(tmp_path)
    again = MALMM.from_pretrained(tmp_path)
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    assert all(torch.equal(again.state_dict()[k], v) for k, v in state.items() if k != "temporal_embedding.weight")


def test_a_folder_without_safetensors_is_named(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(WeightsError, match="pytorch_model.bin: convert them to safetensors"):
        read_index(tmp_path)
