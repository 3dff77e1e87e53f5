"""Real photos with known ImageNet classes, and the pretrained encoders (loaded once per session).

scikit-image's wheel ships a few colour photos (read straight from its data folder: some
`skimage.data` loaders download through pooch, which fails offline). opencv-doc's sample photos
are used too when present (Debian package `opencv-doc`, or `OPENCV_SAMPLES_DATA=<its
examples/data folder>`); tests needing them skip with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import opencv_doc_data

# photo file → ImageNet classes that are right for it (ImageNet has no "astronaut" or "motorcycle":
# the astronaut is used only as an unrelated photo, the motorbike counts as a moped / scooter;
# opencv-doc's apple.jpg is left out: it is red, and ImageNet's only apple is the green Granny Smith)
SKIMAGE_PHOTOS = {
    "chelsea.png": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee.png": {"espresso", "cup", "coffee mug"},
    "rocket.jpg": {"missile", "projectile", "space shuttle"},
    "motorcycle_left.png": {"moped", "motor scooter"},
}
OPENCV_PHOTOS = {
    "baboon.jpg": {"baboon"},
    "squirrel_cls.jpg": {"fox squirrel"},
    "chicky_512.png": {"Pekinese", "Shih-Tzu", "Japanese spaniel", "Lhasa", "Brabancon griffon"},
    "messi5.jpg": {"soccer ball"},
    "orange.jpg": {"orange"},
    "sudoku.png": {"crossword puzzle"},
}


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def skimage_data() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        pytest.skip("scikit-image is not installed (the dev extra installs it): its wheel ships the photos")
    return Path(spec.submodule_search_locations[0]) / "data"


def opencv_data() -> Path | None:
    folder = opencv_doc_data()  # `make test` extracts opencv-doc into .venv/opencv-doc
    return folder if folder is not None and (folder / "baboon.jpg").is_file() else None


@pytest.fixture(scope="session")
def skimage_photos() -> dict[str, tuple[np.ndarray, set[str]]]:
    """scikit-image's photos: name → (uint8 RGB image, right classes)."""
    folder = skimage_data()
    return {name: (read_rgb(folder / name), classes) for name, classes in SKIMAGE_PHOTOS.items()}


@pytest.fixture(scope="session")
def opencv_photos() -> dict[str, tuple[np.ndarray, set[str]]]:
    folder = opencv_data()
    if folder is None:
        pytest.skip("opencv-doc's sample photos are absent: `make test` fetches them (apt-get download opencv-doc), or set MIXMA_OPENCV_DOC")
    return {name: (read_rgb(folder / name), classes) for name, classes in OPENCV_PHOTOS.items()}


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return read_rgb(skimage_data() / "astronaut.png")


@pytest.fixture(scope="session")
def lite0():
    """The default pretrained encoder (EfficientNet-Lite0); tests must not change it."""
    from mixma.models.vision import ImageEncoder

    return ImageEncoder.from_pretrained("efficientnet-lite0")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Shared cores: a second OpenMP thread mostly spins waiting for a busy core (10-20x slower
    when the machine is loaded); speed is measured in benchmarks/, not here."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
