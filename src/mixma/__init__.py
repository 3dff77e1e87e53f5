"""mixma: long-video understanding with language models.

The public surface (see README): `sample_frames`, `FrameSample`, `VideoReader`, `VideoInfo`,
`VideoError`, and the model and loss APIs added alongside them.
"""

from mixma.errors import AnnotationError, MixmaError, VideoError
from mixma.video.mixed import MixedConfig
from mixma.video.reader import VideoInfo, VideoReader, probe
from mixma.video.sampling import FrameSample, sample_frames

__version__ = "0.1.0"

__all__ = [
    "AnnotationError",
    "FrameSample",
    "MixedConfig",
    "MixmaError",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "probe",
    "sample_frames",
]
