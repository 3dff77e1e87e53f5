"""The model-folder mixin: every non-transformers model saves and loads strictly."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from mixma.models.dual_encoder import DualEncoder
from mixma.models.folder import ModelFolderError
from mixma.models.video_qa import AnswerVocab, MultipleChoiceVideoQA, OpenEndedVideoQA

from .conftest import tiny_bert_config, tiny_clip_vision_config

FUSION = dict(fusion_dim=16, fusion_heads=2, fusion_layers=1)


def models():
    encoder = DualEncoder.from_towers(tiny_clip_vision_config(), tiny_bert_config(), projection_dim=8)
    return {
        "dual": encoder,
        "open": OpenEndedVideoQA.from_encoder(encoder, AnswerVocab(["a", "b"]), **FUSION),
        "choice": MultipleChoiceVideoQA.from_encoder(encoder, **FUSION),
    }


@pytest.mark.parametrize("kind", ["dual", "open", "choice"])
def test_tampered_weights_are_refused_with_their_names(tmp_path, kind):
    model = models()[kind]
    folder = model.save_pretrained(tmp_path / kind)
    loaded = type(model).from_pretrained(folder)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    weights = load_file(str(folder / "model.safetensors"))
    name = next(k for k in weights if k.endswith("projection.weight"))

    extra = {**weights, "surplus.weight": torch.zeros(1)}
    save_file(extra, str(folder / "model.safetensors"))
    with pytest.raises(ModelFolderError, match="unexpected surplus.weight"):
        type(model).from_pretrained(folder)

    missing = {k: v for k, v in weights.items() if k != name}
    save_file(missing, str(folder / "model.safetensors"))
    with pytest.raises(ModelFolderError, match=f"missing {name}"):
        type(model).from_pretrained(folder)

    reshaped = {**weights, name: torch.zeros(3, 3)}
    save_file(reshaped, str(folder / "model.safetensors"))
    with pytest.raises(ModelFolderError, match=rf"another shape than a {type(model).__name__}'s: {name} \(3, 3\)"):
        type(model).from_pretrained(folder)


def test_a_folder_of_another_model_class_is_refused(tmp_path):
    folder = models()["open"].save_pretrained(tmp_path / "open")
    with pytest.raises(ModelFolderError, match="holds a OpenEndedVideoQA, not a MultipleChoiceVideoQA"):
        MultipleChoiceVideoQA.from_pretrained(folder)


def test_a_damaged_weights_file_is_one_clear_error(tmp_path):
    folder = models()["dual"].save_pretrained(tmp_path / "dual")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFolderError, match="damaged or not a safetensors file"):
        DualEncoder.from_pretrained(folder)
