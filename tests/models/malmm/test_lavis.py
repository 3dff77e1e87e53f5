"""LAVIS (MA-LMM's released checkpoints) ↔ mixma conversion, on checkpoints written in the LAVIS
layout from known weights. The LAVIS names are written out here literally, layer by layer, as
LAVIS's modules name them (MA-LMM ffe9fa9: `Qformer.py`, `eva_vit.py`, `blip2_vicuna_instruct.py`),
independently of the converter's rename rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mixma.errors import MixmaError
from mixma.models.malmm import MALMM
from mixma.models.malmm.lavis import (
    CheckpointError,
    convert_from_lavis,
    convert_to_lavis,
    read_checkpoint,
    to_hf_name,
    to_lavis_name,
)
from tests.models.malmm.conftest import batch

TRAINED = ("qformer.", "query_tokens", "language_projection.", "vision_model.post_layernorm.", "temporal_embedding.")


@pytest.fixture(scope="module")
def source(instructblip_dir) -> MALMM:
    """An MA-LMM whose trained parts differ from the base InstructBLIP, as after LAVIS training,
    computing ln_vision with LAVIS's epsilon."""
    torch.manual_seed(1)
    model = MALMM.from_pretrained(instructblip_dir, memory_bank_length=3, post_layernorm_eps=1e-5).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(TRAINED):
                param.add_(torch.randn_like(param) * 0.05)
    return model


def lavis_state(model: MALMM, full: bool = False) -> dict[str, torch.Tensor]:
    """What LAVIS's `_save_checkpoint` writes for this model: the trained tensors and the buffers
    (every tensor with `full`, EVA-style: separate q and v biases)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    config = model.config
    out = {"query_tokens": sd["query_tokens"], "image_pe.weight": sd["temporal_embedding.weight"]}
    for t in ("weight", "bias"):
        out[f"llm_proj.{t}"] = sd[f"language_projection.{t}"]
        out[f"ln_vision.{t}"] = sd[f"vision_model.post_layernorm.{t}"]
        out[f"Qformer.bert.embeddings.LayerNorm.{t}"] = sd[f"qformer.embeddings.layernorm.{t}"]
    out["Qformer.bert.embeddings.word_embeddings.weight"] = sd["qformer.embeddings.word_embeddings.weight"]
    out["Qformer.bert.embeddings.position_embeddings.weight"] = sd["qformer.embeddings.position_embeddings.weight"]
    out["Qformer.bert.embeddings.position_ids"] = torch.arange(config.qformer_config.max_position_embeddings).expand(1, -1)
    q = config.qformer_config
    for i in range(q.num_hidden_layers):
        lv, hf = f"Qformer.bert.encoder.layer.{i}.", f"qformer.encoder.layer.{i}."
        for block in ["attention"] + (["crossattention"] if i % q.cross_attention_frequency == 0 else []):
            for t in ("weight", "bias"):
                for w in ("query", "key", "value"):
                    out[f"{lv}{block}.self.{w}.{t}"] = sd[f"{hf}{block}.attention.{w}.{t}"]
                out[f"{lv}{block}.output.dense.{t}"] = sd[f"{hf}{block}.output.dense.{t}"]
                out[f"{lv}{block}.output.LayerNorm.{t}"] = sd[f"{hf}{block}.output.LayerNorm.{t}"]
        for t in ("weight", "bias"):
            for part in ("intermediate", "intermediate_query"):
                out[f"{lv}{part}.dense.{t}"] = sd[f"{hf}{part}.dense.{t}"]
            for part in ("output", "output_query"):
                out[f"{lv}{part}.dense.{t}"] = sd[f"{hf}{part}.dense.{t}"]
                out[f"{lv}{part}.LayerNorm.{t}"] = sd[f"{hf}{part}.LayerNorm.{t}"]
    text = config.text_config
    head = text.hidden_size // text.num_attention_heads
    for i in range(text.num_hidden_layers):
        out[f"llm_model.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, head, 2).float() / head))
    if full:
        v = config.vision_config
        out["visual_encoder.cls_token"] = sd["vision_model.embeddings.class_embedding"]
        out["visual_encoder.pos_embed"] = sd["vision_model.embeddings.position_embedding"]
        for t in ("weight", "bias"):
            out[f"visual_encoder.patch_embed.proj.{t}"] = sd[f"vision_model.embeddings.patch_embedding.{t}"]
        for i in range(v.num_hidden_layers):
            lv, hf = f"visual_encoder.blocks.{i}.", f"vision_model.encoder.layers.{i}."
            bias = sd[f"{hf}self_attn.qkv.bias"]
            out[f"{lv}attn.q_bias"], out[f"{lv}attn.v_bias"] = bias[: v.hidden_size], bias[2 * v.hidden_size :]
            out[f"{lv}attn.qkv.weight"] = sd[f"{hf}self_attn.qkv.weight"]
            for t in ("weight", "bias"):
                out[f"{lv}attn.proj.{t}"] = sd[f"{hf}self_attn.projection.{t}"]
                out[f"{lv}norm1.{t}"], out[f"{lv}norm2.{t}"] = sd[f"{hf}layer_norm1.{t}"], sd[f"{hf}layer_norm2.{t}"]
                out[f"{lv}mlp.fc1.{t}"], out[f"{lv}mlp.fc2.{t}"] = sd[f"{hf}mlp.fc1.{t}"], sd[f"{hf}mlp.fc2.{t}"]
        out.update({"llm_model." + k.removeprefix("language_model."): v for k, v in sd.items() if k.startswith("language_model.")})
    return out


def save_lavis(path: Path, state: dict, **config) -> Path:
    """A LAVIS training checkpoint around `state` (optimizer moments, scaler, run config, epoch)."""
    names = [n for n in state if not n.endswith(("position_ids", "inv_freq"))]
    optimizer = {"state": {i: {"step": torch.tensor(7.0), "exp_avg": torch.randn(3), "exp_avg_sq": torch.rand(3)} for i in range(2)},
                 "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": list(range(len(names)))}]}
    torch.save({"model": state, "optimizer": optimizer, "epoch": 4,
                "config": {"run": {"init_lr": 1e-4, "batch_size_train": 16},
                           "model": {"arch": "blip2_vicuna_instruct", "memory_bank_length": 3, "num_frames": 5, **config}},
                "scaler": {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 3}},
               path)
    return path


def logits(model: MALMM, t: int = 5) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch(t=t, seed=t)).logits


def test_names_follow_the_issue_table_and_round_trip(source):
    assert to_hf_name("Qformer.bert.encoder.layer.2.crossattention.self.key.weight") == "qformer.encoder.layer.2.crossattention.attention.key.weight"
    assert to_hf_name("Qformer.bert.embeddings.LayerNorm.bias") == "qformer.embeddings.layernorm.bias"
    assert to_hf_name("ln_vision.weight") == "vision_model.post_layernorm.weight"
    assert to_hf_name("llm_proj.bias") == "language_projection.bias"
    assert to_hf_name("visual_encoder.blocks.7.attn.v_bias") == "vision_model.encoder.layers.7.self_attn.qkv.bias"
    for name in source.state_dict():
        if not name.endswith("qkv.bias"):  # split in two, see hf_to_lavis
            assert to_hf_name(to_lavis_name(name)) == name
    for bad in ("Qformer.cls.predictions.bias", "visual_encoder.norm.weight"):
        with pytest.raises(KeyError):
            to_hf_name(bad)


def test_converted_model_equals_the_model_the_weights_came_from(source, instructblip_dir, tmp_path):
    checkpoint = save_lavis(tmp_path / "checkpoint_best.pth", lavis_state(source))
    report = convert_from_lavis(checkpoint, instructblip_dir, tmp_path / "malmm")
    converted = MALMM.from_pretrained(tmp_path / "malmm").eval()
    assert converted.config.memory_bank_length == 3  # from the run configuration
    assert converted.config.max_num_frames == 120 and converted.vision_model.post_layernorm.eps == 1e-5
    torch.testing.assert_close(logits(converted), logits(source), rtol=0, atol=0)
    assert report.tensors == sum(1 for n in source.state_dict() if n.startswith(TRAINED))
    assert (tmp_path / "malmm" / "conversion.json").exists()


def test_round_trip_is_exact(source, instructblip_dir, tmp_path):
    for full in (False, True):
        state = lavis_state(source, full)
        checkpoint = save_lavis(tmp_path / f"in{full}.pth", state)
        convert_from_lavis(checkpoint, instructblip_dir, tmp_path / f"malmm{full}")
        back = convert_to_lavis(tmp_path / f"malmm{full}", tmp_path / f"out{full}.pth", include_frozen=full)
        again = read_checkpoint(back.path)["model"]
        assert set(again) == set(state)
        assert all(torch.equal(again[k], state[k].reshape(again[k].shape)) for k in state), full


def test_a_full_checkpoint_with_eva_vision_weights(source, instructblip_dir, tmp_path):
    """Trained vision and LLM weights too (EVA's q/v biases joined, a zero key bias)."""
    model = MALMM.from_pretrained(instructblip_dir, memory_bank_length=3, post_layernorm_eps=1e-5).eval()
    model.load_state_dict(source.state_dict())
    c = model.config.vision_config.hidden_size
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(("vision_model.", "language_model.")):
                param.add_(torch.randn_like(param) * 0.05)
            if name.endswith("qkv.bias"):
                param[c : 2 * c] = 0  # EVA has no key bias
    convert_from_lavis(save_lavis(tmp_path / "full.pth", lavis_state(model, full=True)), instructblip_dir, tmp_path / "malmm")
    torch.testing.assert_close(logits(MALMM.from_pretrained(tmp_path / "malmm").eval()), logits(model), rtol=0, atol=0)


def test_a_model_trained_here_goes_to_lavis_with_notes(source, instructblip_dir, tmp_path):
    """From a model in memory; its optimizer state loads into LAVIS's two AdamW groups."""
    model = MALMM.from_pretrained(instructblip_dir, memory_bank_length=3)  # transformers' eps, 1e-6
    model.load_state_dict(source.state_dict())
    report = convert_to_lavis(model, tmp_path / "ours.pth", num_frames=20)
    assert any("eps 1e-06" in note for note in report.notes)
    checkpoint = read_checkpoint(report.path)
    assert checkpoint["config"]["model"]["num_frames"] == 20 and checkpoint["epoch"] == 0
    state = checkpoint["model"]
    params = [n for n in state if not n.endswith(("position_ids", "inv_freq"))]
    decay = [torch.nn.Parameter(state[n].float()) for n in params
             if state[n].dim() >= 2 and not any(s in n for s in ("bias", "ln", "bn"))]
    no_decay = [torch.nn.Parameter(state[n].float()) for n in params
                if state[n].dim() < 2 or any(s in n for s in ("bias", "ln", "bn"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0}])
    optimizer.load_state_dict(checkpoint["optimizer"])  # what LAVIS's runner does before evaluating
    torch.amp.GradScaler("cpu").load_state_dict(checkpoint["scaler"])


def test_the_temporal_table_is_padded_or_sliced_and_said_so(source, instructblip_dir, tmp_path):
    checkpoint = save_lavis(tmp_path / "c.pth", lavis_state(source))
    table = source.temporal_embedding.weight.detach()
    longer = convert_from_lavis(checkpoint, instructblip_dir, tmp_path / "long", max_num_frames=130)
    weight = MALMM.from_pretrained(tmp_path / "long").temporal_embedding.weight.detach()
    assert torch.equal(weight[:120], table) and torch.equal(weight[120:], table[-1:].expand(10, -1))
    assert any("padded from 120 to 130" in note for note in longer.notes)
    shorter = convert_from_lavis(checkpoint, instructblip_dir, tmp_path / "short", max_num_frames=8, memory_bank_length=2)
    model = MALMM.from_pretrained(tmp_path / "short")
    assert torch.equal(model.temporal_embedding.weight.detach(), table[:8]) and model.config.memory_bank_length == 2
    assert any("sliced from 120 to 8" in note for note in shorter.notes)


class Payload:
    """Unpickling this runs code: it creates the file named in `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_pickle_with_code_is_refused_and_never_run(source, instructblip_dir, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": lavis_state(source), "optimizer": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused without running it"):
        convert_from_lavis(path, instructblip_dir, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_checkpoints_that_do_not_fit_are_refused_with_the_tensors_named(source, instructblip_dir, tmp_path):
    state = lavis_state(source)
    cases = [
        ({**state, "Qformer.cls.predictions.bias": torch.zeros(3)}, "no counterpart.*Qformer.cls.predictions.bias"),
        ({k: v for k, v in state.items() if k != "llm_proj.bias"}, "missing from the checkpoint: language_projection.bias"),
        ({**state, "llm_proj.weight": torch.zeros(5, 5)}, r"shaped unlike.*language_projection.weight \[5, 5\]"),
        ({**state, "Qformer.bert.embeddings.position_ids": torch.zeros(1, 512, dtype=torch.long)}, "buffers that differ"),
        ({**state, "llm_model.model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(4)}, "buffers that differ"),
    ]
    for i, (bad, match) in enumerate(cases):
        with pytest.raises(CheckpointError, match=match):
            convert_from_lavis(save_lavis(tmp_path / f"bad{i}.pth", bad), instructblip_dir, tmp_path / f"out{i}")
        assert not (tmp_path / f"out{i}").exists()
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a LAVIS checkpoint"):
        read_checkpoint(tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_checkpoint(tmp_path / "junk.pth")
    good = save_lavis(tmp_path / "good.pth", state)
    (tmp_path / "exists").mkdir()
    with pytest.raises(MixmaError, match="exists"):  # a FileExistsError too
        convert_from_lavis(good, instructblip_dir, tmp_path / "exists")
    convert_from_lavis(good, instructblip_dir, tmp_path / "exists", overwrite=True)
    assert MALMM.from_pretrained(tmp_path / "exists").config.memory_bank_length == 3


def test_mixma_ask_answers_with_a_converted_model(indexed_video, tmp_path):
    """A base with its tokenizers (transformers' InstructBLIP processor layout) converts into a
    folder that `mixma ask` (`VideoAssistant.from_checkpoint`) uses, answering as the source does."""
    from mixma.inference import VideoAssistant
    from mixma.models.malmm.small import SmallConfig, build_small_malmm

    torch.manual_seed(0)
    texts = ["Question: what moves? Short answer:", "the background", "a block"]
    sizes = SmallConfig(vision_hidden=32, qformer_hidden=32, llm_hidden=32, num_query_tokens=4, vision_layers=1, qformer_layers=2)
    base, processor = build_small_malmm(texts, sizes, image_size=32, memory_bank_length=2)
    base.save_pretrained(tmp_path / "base")
    processor.save_pretrained(tmp_path / "base")
    trained = MALMM.from_pretrained(tmp_path / "base", post_layernorm_eps=1e-5).eval()
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if name.startswith(TRAINED):
                param.add_(torch.randn_like(param) * 0.1)
    trained.save_pretrained(tmp_path / "source")
    processor.save_pretrained(tmp_path / "source")
    convert_from_lavis(save_lavis(tmp_path / "c.pth", lavis_state(trained), memory_bank_length=2), tmp_path / "base",
                       tmp_path / "converted")
    answers = [VideoAssistant.from_checkpoint(tmp_path / name).ask(indexed_video, "what moves?", num_frames=6, max_new_tokens=4)
               for name in ("source", "converted")]
    assert answers[0].beams == answers[1].beams and answers[0].text
    # an MA-LMM base (its own temporal table) takes a checkpoint's table of another length too
    convert_from_lavis(tmp_path / "c.pth", tmp_path / "base", tmp_path / "longer", max_num_frames=130)
    assert MALMM.from_pretrained(tmp_path / "longer").temporal_embedding.weight.shape[0] == 130
