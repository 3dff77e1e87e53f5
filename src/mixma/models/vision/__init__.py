"""Pretrained ImageNet vision encoders (EfficientNet-Lite0/1/2, MobileNetV2), written from scratch.

`ImageEncoder.from_pretrained(name)` loads weights shipped inside pip packages, offline; see
`encoder.py` for the API and `mbconv.py` for the network.
"""

from mixma.models.vision.encoder import ARCHS, ImageEncoder, ImageEncoderConfig, ImageFeatures, StreamBatch
from mixma.models.vision.errors import FrameError, MissingWeightsError, WeightsError
from mixma.models.vision.labels import ClassNames, imagenet_classes

__all__ = [
    "ARCHS", "ClassNames", "FrameError", "ImageEncoder", "ImageEncoderConfig", "ImageFeatures",
    "MissingWeightsError", "StreamBatch", "WeightsError", "imagenet_classes",
]
