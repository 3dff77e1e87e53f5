"""MA-LMM's real sizes: the configuration, random checkpoints written tensor by tensor, and the
GPU script (run here with tiny sizes on the CPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from mixma.models.malmm import MALMM
from mixma.models.malmm.sizes import meta_model, random_tensor, real_config, write_random_checkpoint

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_real_size.py"


def test_real_config_has_malmm_sizes_and_costs_no_memory():
    model = meta_model(real_config())
    counts = {part: sum(t.numel() for n, t in model.state_dict().items() if n.startswith(part))
              for part in ("vision_model.", "qformer.", "language_model.")}
    assert 0.98e9 < counts["vision_model."] < 0.99e9  # EVA ViT-g without its last layer: 986 M
    assert 185e6 < counts["qformer."] < 187e6  # InstructBLIP's Q-Former with text embeddings
    assert 6.7e9 < counts["language_model."] < 6.8e9  # Vicuna-7B with [PAD]
    assert all(p.is_meta for p in model.parameters())
    vision = model.config.vision_config
    assert (vision.num_hidden_layers, vision.hidden_size, (vision.image_size // vision.patch_size) ** 2 + 1) == (39, 1408, 257)


def test_random_checkpoint_loads_with_its_values(tmp_path):
    config = real_config({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
                          "vocab_size": 32001})
    v, q = config.vision_config, config.qformer_config  # the real structure, narrower (a few MB)
    v.hidden_size, v.intermediate_size, v.num_hidden_layers, v.image_size = 64, 128, 1, 28
    q.hidden_size, q.intermediate_size, q.num_hidden_layers, q.encoder_hidden_size, q.vocab_size = 48, 96, 2, 64, 100
    written = write_random_checkpoint(config, tmp_path, torch.float32, max_shard_bytes=4 << 20)
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    model = MALMM.from_pretrained(tmp_path)
    state = model.state_dict()
    assert written == sum(t.numel() * t.element_size() for t in state.values())
    for name in ("qformer.encoder.layer.0.crossattention.attention.key.weight", "vision_model.post_layernorm.weight", "query_tokens"):
        assert torch.equal(state[name], random_tensor(name, tuple(state[name].shape), torch.float32)), name
    assert 0.015 < state["query_tokens"].std() < 0.025 and torch.all(state["vision_model.post_layernorm.weight"] == 1)


def test_the_gpu_script_runs_tiny_on_the_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_real_size", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    result = script.main(["--tiny", "--frames", "6", "--chunk", "2", "--total", "6", "--memory-bank-length", "2", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "gpu_real_size.json").read_text())
    assert saved["summary"] == result["summary"] and [c["frames"] for c in saved["streaming"]] == [2, 4, 6]
    assert (tmp_path / "gpu_real_size.png").stat().st_size > 10_000
    assert saved["generate"]["seconds"] > 0 and saved["memory_off"]["peak_gib"] > 0
