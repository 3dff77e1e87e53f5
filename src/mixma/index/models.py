"""The models an index can use, behind one interface: `encode_video_moments` / `encode_text`.

- `ConceptModel` ("concepts", the default): no training, no download. A moment's vector is the
  ImageNet class probabilities of its frames (`mixma.ImageEncoder`, EfficientNet-Lite0), max- or
  mean-pooled; a query's vector is its weights over those classes (`concepts.py`, MiniLM).
- `MAMAModel` ("mama:<run folder>"): a dual encoder trained by `mixma train mama`; a moment is
  `data.num_frames` of its frames, spread evenly, through the video tower.
- `CLIPModel` ("clip:<folder>"): a transformers CLIP checkpoint; a moment is the mean of its
  frames' unit image embeddings.

Vectors of the learned models are unit length (cosine = inner product); the concept bank's are
probabilities, scored against query weights that sum to 1. Either way search is by inner product.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixma.errors import MixmaError
from mixma.index.concepts import ConceptOptions, class_similarity, class_texts, class_weights, minilm
from mixma.index.moments import Chunk, centre_frame, read_chunks, thumbnail_jpeg
from mixma.index.options import IndexOptions
from mixma.video.reader import VideoReader

MODEL_KINDS = ("concepts", "mama", "clip")
BATCH = 16  # frames per forward pass: peak memory is one batch of activations (benchmarks/RESULTS.md)


@dataclass
class VideoMoments:
    """What a model makes of one video."""

    duration: float
    spans: np.ndarray  # float64 [M, 2] seconds
    vectors: np.ndarray  # float32 [M, D]
    video_vector: np.ndarray  # float32 [D]
    thumbnails: list[bytes]  # one JPEG per moment


class MomentModel:
    """The interface: subclasses set `name` and `dim` and implement `encode_moments`,
    `encode_text` and `fingerprint`; `encode_video_moments` reads the video for them."""

    name: str
    dim: int

    def fingerprint(self) -> str:
        """What the stored vectors depend on; an index refuses a model whose fingerprint differs."""
        raise NotImplementedError

    def encode_moments(self, chunk: Chunk) -> np.ndarray:
        """`[M, D]` vectors of a chunk's moments."""
        raise NotImplementedError

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """`[Q, D]` query vectors."""
        raise NotImplementedError

    def encode_video(self, vectors: np.ndarray, spans: np.ndarray) -> np.ndarray:
        """The whole video's vector from its moments': duration-weighted mean, unit length."""
        weights = np.maximum(spans[:, 1] - spans[:, 0], 1e-6)[:, None]
        mean = (vectors * weights).sum(0) / weights.sum()
        return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)

    def encode_video_moments(self, path: str | os.PathLike, options: IndexOptions) -> VideoMoments:
        """Read a video once and embed its moments (see `mixma.index.moments`).

        Raises:
            VideoError: the file cannot be read.
        """
        spans, vectors, thumbs = [], [], []
        with VideoReader(path) as reader:
            duration = float(reader.info.duration)
            for chunk in read_chunks(reader, options):
                groups = chunk.frames_of()
                spans.append(chunk.spans)
                vectors.append(self.encode_moments(chunk))
                thumbs += [thumbnail_jpeg(chunk.frames[centre_frame(chunk.times, g, a, b)], options.thumb_width)
                           for g, (a, b) in zip(groups, chunk.spans)]
        if not spans:
            from mixma.errors import VideoError  # noqa: PLC0415

            raise VideoError(path, "no frame could be decoded")
        spans_arr, vectors_arr = np.concatenate(spans), np.concatenate(vectors).astype(np.float32)
        video = self.encode_video(vectors_arr, spans_arr)
        if options.unit == "video":
            spans_arr, vectors_arr = np.array([[0.0, duration]]), video[None]
            thumbs = [thumbs[len(thumbs) // 2]]
        return VideoMoments(duration, spans_arr, vectors_arr, video, thumbs)


class ConceptModel(MomentModel):
    """The concept bank (see the module docstring and `concepts.py`)."""

    dim = 1000

    def __init__(self, pool: str = "max", cache_dir: str | os.PathLike | None = None,
                 concepts: ConceptOptions = ConceptOptions(), arch: str = "efficientnet-lite0"):
        self.name, self.pool, self.arch, self.concepts = "concepts", pool, arch, concepts
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._vision = None
        self._bank = None

    def fingerprint(self) -> str:
        return f"concepts-v1/{self.arch}/{self.pool}"

    @property
    def vision(self):
        if self._vision is None:
            from mixma.models.vision import ImageEncoder  # noqa: PLC0415

            self._vision = ImageEncoder.from_pretrained(self.arch, batch_size=BATCH)
        return self._vision

    def encode_moments(self, chunk: Chunk) -> np.ndarray:
        from mixma.index.moments import pool  # noqa: PLC0415

        probs = self.vision.classify(chunk.frames).float().numpy()
        return pool(probs, chunk.frames_of(), self.pool).astype(np.float32)

    def encode_video(self, vectors: np.ndarray, spans: np.ndarray) -> np.ndarray:
        if self.pool == "max":
            return vectors.max(0).astype(np.float32)
        weights = np.maximum(spans[:, 1] - spans[:, 0], 1e-6)[:, None]
        return ((vectors * weights).sum(0) / weights.sum()).astype(np.float32)

    def class_bank(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit MiniLM embeddings of every class text and the class of each (cached in the index folder)."""
        if self._bank is not None:
            return self._bank
        from mixma.models.vision import imagenet_classes  # noqa: PLC0415

        names = imagenet_classes()
        texts, owner = class_texts(names.labels, names.synonyms)
        key = _digest(texts)
        caches = [p for p in (self.cache_dir, user_cache()) if p is not None]
        for folder in caches:  # the index folder's copy, else this user's (computed once per machine)
            cache = folder / "concept_texts.npz"
            if cache.exists():
                try:
                    with np.load(cache) as saved:
                        if str(saved["key"]) == key:
                            self._bank = (saved["embeddings"], owner)
                            return self._bank
                except (OSError, ValueError, KeyError):
                    pass  # unreadable: computed again and rewritten
        unique = list(dict.fromkeys(texts))  # "a dog" once, not once per breed
        position = {t: i for i, t in enumerate(unique)}
        embeddings = minilm().encode(unique)[[position[t] for t in texts]]
        from mixma._atomic import atomic_path  # noqa: PLC0415

        for folder in caches:
            try:
                folder.mkdir(parents=True, exist_ok=True) if folder != self.cache_dir else None
                if folder.is_dir():
                    with atomic_path(folder / "concept_texts.npz") as tmp:
                        np.savez(tmp, key=key, embeddings=embeddings)
            except OSError:
                pass  # a read-only place: the cache is only a cache
        self._bank = (embeddings, owner)
        return self._bank

    def query_weights(self, text: str) -> np.ndarray:
        embeddings, owner = self.class_bank()
        query = minilm().encode([text])[0]
        return class_weights(class_similarity(query, embeddings, owner, self.dim), self.concepts)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.query_weights(t) for t in texts]).astype(np.float32)

    def explain(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """The classes a query weighs most, with their weights (what `mixma search --explain` shows)."""
        from mixma.models.vision import imagenet_classes  # noqa: PLC0415

        weights = self.query_weights(text)
        labels = imagenet_classes().labels
        return [(labels[i], float(weights[i])) for i in np.argsort(-weights)[:k] if weights[i] > 0]


def user_cache() -> Path | None:
    """Where the concept bank's text embeddings are kept between indexes: $MIXMA_CACHE, else
    $XDG_CACHE_HOME/mixma or ~/.cache/mixma; MIXMA_CACHE=off keeps none."""
    chosen = os.environ.get("MIXMA_CACHE")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "mixma"


def _digest(texts: list[str]) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha1("\n".join(texts).encode()).hexdigest()[:16]


def _unit(x):
    import torch  # noqa: PLC0415

    return torch.nn.functional.normalize(x.float(), dim=-1)


class MAMAModel(MomentModel):
    """A trained MAMA dual encoder (a `mixma train mama` run folder)."""

    def __init__(self, path: str | os.PathLike):
        from mixma.data.transforms import TransformConfig, VideoTransform  # noqa: PLC0415
        from mixma.runs.mama import load_mama_run  # noqa: PLC0415

        self.path = Path(path).resolve()
        self.name = f"mama:{self.path}"
        trained = load_mama_run(self.path)
        self.encoder, self.tokenizer, self.config = trained.encoder.eval(), trained.tokenizer, trained.config
        mean, std = self.encoder.input_normalization
        self.transform = VideoTransform(TransformConfig(size=self.config.data.image_size, mean=mean, std=std))
        self.num_frames = self.config.data.num_frames
        self.dim = int(self.encoder.visual_projection.out_features)
        self._fingerprint = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from mixma.models.folder import weights_digest  # noqa: PLC0415

            self._fingerprint = f"mama/{weights_digest(self.encoder)}"
        return self._fingerprint

    def encode_moments(self, chunk: Chunk) -> np.ndarray:
        import torch  # noqa: PLC0415

        out = []
        groups = chunk.frames_of()
        with torch.inference_mode():
            step = max(1, BATCH // self.num_frames)  # moments per forward pass
            for i in range(0, len(groups), step):
                clips = []
                for group in groups[i:i + step]:
                    pick = group[np.rint(np.linspace(0, len(group) - 1, self.num_frames)).astype(int)]
                    clips.append(self.transform(chunk.frames[pick]))
                out.append(self.encoder.embed_videos(torch.stack(clips)).float().numpy())
        return np.concatenate(out)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        import torch  # noqa: PLC0415

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.config.data.max_text_len,
                               return_tensors="pt")
        with torch.inference_mode():
            return self.encoder.embed_texts(batch["input_ids"], batch["attention_mask"]).float().numpy()


class CLIPModel(MomentModel):
    """A CLIP checkpoint in transformers format (a folder from `save_pretrained`, with its tokenizer)."""

    def __init__(self, path: str | os.PathLike):
        import transformers  # noqa: PLC0415

        from mixma.data.transforms import CLIP_MEAN, CLIP_STD, TransformConfig, VideoTransform  # noqa: PLC0415

        self.path = Path(path).resolve()
        self.name = f"clip:{self.path}"
        try:
            self.model = transformers.CLIPModel.from_pretrained(self.path).eval()
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        except (OSError, ValueError) as exc:
            raise MixmaError(f"{self.path}: not a transformers CLIP folder with its tokenizer ({exc})".splitlines()[0]) \
                from None
        mean, std = CLIP_MEAN, CLIP_STD
        processor = self.path / "preprocessor_config.json"
        if processor.exists():
            saved = json.loads(processor.read_text())
            mean, std = tuple(saved.get("image_mean", mean)), tuple(saved.get("image_std", std))
        size = self.model.config.vision_config.image_size
        self.transform = VideoTransform(TransformConfig(size=size, mean=mean, std=std))
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self._fingerprint = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from mixma.models.folder import weights_digest  # noqa: PLC0415

            self._fingerprint = f"clip/{weights_digest(self.model)}"
        return self._fingerprint

    @staticmethod
    def _pooled(out):
        return out if hasattr(out, "ndim") else out.pooler_output

    def encode_moments(self, chunk: Chunk) -> np.ndarray:
        import torch  # noqa: PLC0415

        from mixma.index.moments import pool  # noqa: PLC0415

        parts = []
        with torch.inference_mode():
            for i in range(0, len(chunk.frames), BATCH):
                pixels = self.transform(chunk.frames[i:i + BATCH])
                parts.append(_unit(self._pooled(self.model.get_image_features(pixel_values=pixels))).numpy())
        means = pool(np.concatenate(parts), chunk.frames_of(), "mean")
        return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        import torch  # noqa: PLC0415

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        with torch.inference_mode():
            out = self.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            return _unit(self._pooled(out)).numpy()


def model_name(spec: str) -> str:
    """A `--model` value in its stored form: "concepts", "mama:<absolute path>" or "clip:<absolute path>".

    A bare folder is a CLIP folder when its config.json says so, else a MAMA run.

    Raises:
        MixmaError: an unknown kind or a missing folder.
    """
    if spec == "concepts":
        return spec
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in MODEL_KINDS or (len(kind) == 1 and os.name == "nt"):
        kind, rest = _guess_kind(spec), spec
    path = Path(rest).expanduser()
    if not path.exists():
        raise MixmaError(f"model {spec!r}: no such folder {path}")
    return f"{kind}:{path.resolve()}"


def _guess_kind(path: str) -> str:
    config = Path(path) / "config.json"
    if config.is_file():
        try:
            if json.loads(config.read_text()).get("model_type") == "clip":
                return "clip"
        except (OSError, ValueError):
            pass
    if Path(path).exists():
        return "mama"
    raise MixmaError(f"unknown model {path!r}: use concepts, mama:<run folder> or clip:<CLIP folder>")


def load_model(name: str, *, pool: str = "max", cache_dir: str | os.PathLike | None = None) -> MomentModel:
    """The model a stored name (see `model_name`) stands for."""
    name = model_name(name)
    if name == "concepts":
        return ConceptModel(pool=pool, cache_dir=cache_dir)
    kind, _, path = name.partition(":")
    return MAMAModel(path) if kind == "mama" else CLIPModel(path)
