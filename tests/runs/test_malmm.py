"""The MA-LMM run config: the model section's memory options reach the model."""

from __future__ import annotations

from mixma.config import load_config
from mixma.models.malmm.small import SmallConfig, build_small_malmm
from mixma.runs.malmm import MALMMRunConfig


def test_memory_options_reach_the_model():
    config = load_config(MALMMRunConfig, None, ["model.memory_bank_length=3", "model.compression=fifo",
                                                "model.memory_banks=visual"])
    assert config.model.model_options() == {"memory_bank_length": 3, "memory_banks": "visual", "compression": "fifo"}
    tiny = SmallConfig(vision_hidden=16, vision_layers=1, qformer_hidden=16, qformer_layers=1, llm_hidden=16, llm_layers=1,
                       heads=2, num_query_tokens=2)
    model, _ = build_small_malmm(["a b"], tiny, image_size=32, **config.model.model_options())
    assert (model.config.memory_bank_length, model.config.compression, model.config.memory_banks) == (3, "fifo", "visual")
    assert load_config(MALMMRunConfig, None, []).model.model_options() == {}  # the checkpoint's own
