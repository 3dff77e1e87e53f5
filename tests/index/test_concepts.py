"""The concept bank's text side: kinds, class texts, similarities and weights; on real clips, slow."""

from __future__ import annotations

import numpy as np
import pytest

from mixma.index.concepts import (
    KIND_LISTS, KIND_RUNS, ConceptOptions, class_similarity, class_texts, class_weights, kind_members,
)
from mixma.models.vision import imagenet_classes


def test_every_kind_names_real_classes_and_the_known_runs_have_their_sizes():
    names = imagenet_classes()
    kinds = kind_members(names.labels)  # KeyError if a name is not a display name
    counts = {k: sum(v == k for v in kinds.values()) for k in [*KIND_RUNS, *KIND_LISTS]}
    assert counts["dog"] == 118 and counts["cat"] == 5 and counts["big cat"] == 8
    assert names.labels[min(i for i, k in kinds.items() if k == "dog")] == "Chihuahua"
    assert kinds[names.index("passenger car")] == "train" and kinds[names.index("sports car")] == "car"


def test_class_texts_carry_the_kind_and_cover_every_synonym():
    names = imagenet_classes()
    texts, owner = class_texts(names.labels, names.synonyms)
    assert set(owner) == set(range(1000))
    golden = names.index("golden retriever")
    mine = [t for t, o in zip(texts, owner) if o == golden]
    assert "golden retriever, a dog" in mine and "a dog" in mine and "golden retriever" not in mine
    hotdog = names.index("hotdog")
    assert all("a dog" not in t for t, o in zip(texts, owner) if o == hotdog)


def test_similarity_is_the_best_text_per_class():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((9, 4)).astype(np.float32)
    owner = np.array([0, 0, 1, 2, 2, 2, 3, 3, 4])
    query = rng.standard_normal(4).astype(np.float32)
    expected = [max(float(emb[j] @ query) for j in np.flatnonzero(owner == c)) for c in range(5)]
    np.testing.assert_allclose(class_similarity(query, emb, owner, 5), expected, rtol=1e-6)


def test_weights_sum_to_one_over_the_classes_within_the_margin():
    sims = np.array([0.50, 0.49, 0.45, 0.30, 0.47, 0.10], dtype=np.float32)
    w = class_weights(sims, ConceptOptions(margin=0.04, top_k=10, temperature=0.05))
    assert w.sum() == pytest.approx(1.0) and set(np.flatnonzero(w)) == {0, 1, 4}
    assert w[0] > w[1] > w[4]
    assert w[0] / w[1] == pytest.approx(np.exp(0.01 / 0.05), rel=1e-4)
    capped = class_weights(sims, ConceptOptions(margin=1.0, top_k=2))
    assert set(np.flatnonzero(capped)) == {0, 1}


@pytest.mark.slow
def test_queries_reach_the_classes_they_mean():
    from mixma.index.models import ConceptModel

    model = ConceptModel()
    kinds = kind_members(imagenet_classes().labels)

    def mass(query, kind):
        w = model.query_weights(query)
        return sum(float(w[i]) for i in np.flatnonzero(w) if kinds.get(i) == kind)

    assert mass("a dog", "dog") > 0.99
    assert mass("a red car", "car") > 0.9
    assert mass("a bicycle", "bicycle") > 0.9
    assert mass("a boat on the water", "boat") > 0.8
    w = model.query_weights("a golden retriever")
    assert int(np.argmax(w)) == imagenet_classes().index("golden retriever")
