"""mixma: long-video understanding with language models.

The public surface (see README):

- video: `sample_frames`, `FrameSample`, `MixedConfig`, `VideoReader`, `VideoInfo`, `probe`;
- MA-LMM: `MALMM`, `MALMMConfig`, `compress_memory`;
- MAMA: `angular_margin_loss`, `retrieval_metrics`, `DualEncoder`;
- pretrained vision: `ImageEncoder` (ImageNet EfficientNet-Lite / MobileNetV2, offline);
- errors: `MixmaError`, `VideoError`, `AnnotationError`.

Model and loss names are imported on first use, so `import mixma` (and the video commands) do
not pay for importing torch and transformers.
"""

from importlib import import_module

from mixma.errors import AnnotationError, MixmaError, VideoError
from mixma.video.mixed import MixedConfig
from mixma.video.reader import VideoInfo, VideoReader, probe
from mixma.video.sampling import FrameSample, sample_frames

__version__ = "0.1.0"

_LAZY = {
    "MALMM": "mixma.models.malmm",
    "MALMMConfig": "mixma.models.malmm",
    "compress_memory": "mixma.models.malmm",
    "angular_margin_loss": "mixma.losses.contrastive",
    "retrieval_metrics": "mixma.eval.retrieval",
    "DualEncoder": "mixma.models.dual_encoder",
    "ImageEncoder": "mixma.models.vision",
}

__all__ = [
    "AnnotationError", "FrameSample", "MixedConfig", "MixmaError", "VideoError", "VideoInfo", "VideoReader",
    "probe", "sample_frames", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mixma' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
