"""MALMMProcessor.from_pretrained: local folders as saved, and hub ids asked for by name."""

from __future__ import annotations

from types import SimpleNamespace

import transformers

from mixma.models.malmm import processing
from mixma.models.malmm.processing import MALMMProcessor
from mixma.models.malmm.small import SmallConfig, build_small_malmm

TEXTS = ["which colour was the star", "red", "blue"]
HUB_ID = "Salesforce/instructblip-vicuna-7b"


def saved(tmp_path):
    _, processor = build_small_malmm(TEXTS, SmallConfig(num_query_tokens=4), image_size=32)
    processor.save_pretrained(tmp_path)
    return processor


def test_a_saved_processor_loads_back(tmp_path):
    processor = saved(tmp_path)
    again = MALMMProcessor.from_pretrained(tmp_path)
    assert again.config == processor.config
    assert again(["which colour"])["qformer_input_ids"].tolist() == processor(["which colour"])["qformer_input_ids"].tolist()


def test_a_hub_id_asks_for_the_qformer_tokenizer_as_a_subfolder(tmp_path, monkeypatch):
    """A hub id is not a path: `id/qformer_tokenizer` would be a repository of that name."""
    processor = saved(tmp_path)
    asked, load = [], processing.AutoTokenizer.from_pretrained

    def hub(source, subfolder=None):  # the hub, served from the saved folder
        asked.append((source, subfolder))
        return load(tmp_path / subfolder if subfolder else tmp_path)

    monkeypatch.setattr(processing.AutoTokenizer, "from_pretrained", hub)
    config = transformers.AutoConfig.from_pretrained
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained",
                        lambda source, **kw: SimpleNamespace(num_query_tokens=4) if source == HUB_ID else config(source, **kw))
    again = MALMMProcessor.from_pretrained(HUB_ID)
    assert asked == [(HUB_ID, None), (HUB_ID, "qformer_tokenizer")]
    assert again(["which colour"])["qformer_input_ids"].tolist() == processor(["which colour"])["qformer_input_ids"].tolist()
