"""The captioner interface: visual input in, several cleaned and filtered captions out.

A backend implements one method, `generate`, that samples raw texts; the base class turns those
into captions the MAMA way:

1. clean: strip, join lines, and say "video" where the model said "image(s)" (it sees one
   mosaic image but describes a video);
2. filter: drop empty captions, duplicates of a caption already kept, and, when a length tokenizer
   is given (MAMA: bert-base-uncased), captions longer than `max_caption_tokens` tokens counting
   [CLS] and [SEP] (MAMA's `max_seq_len` of 40);
3. retry: sample again for the missing captions, at most `max_retries` times (MAMA's cap was
   meant to be 10 but never fired), then return what passed, possibly fewer than asked.

Backends declare what they take in `input_kind`: "grid" backends (LLaVA) get one RGB image per
video, the keyframe mosaic; "frames" backends (a video LLM such as MA-LMM) get the keyframes
themselves as a `[K, H, W, 3]` array. The pipeline builds whichever the captioner asks for.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from mixma.errors import MixmaError

PROMPTS = {
    # demo_mama.py (the released pipeline) -- the default
    "process": "In a sentence, describe the process in the video.",
    # demo_lvlm.py (the earlier one), which spells out the grid's reading order
    "order": "Write a caption sentence for the video in order from left to right, top to bottom.",
}
DEFAULT_PROMPT = PROMPTS["process"]

InputKind = Literal["grid", "frames"]


class CaptionerError(MixmaError):
    """A captioning model cannot be loaded (missing folder, wrong kind of model, ...)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def resolve_prompt(prompt: str) -> str:
    """A preset name from `PROMPTS` ("process", "order") becomes its text; other text is kept."""
    return PROMPTS.get(prompt.strip(), prompt)


@dataclass(frozen=True)
class CaptionConfig:
    """Sampling and filtering of captions; every default lives here."""

    temperature: float = 0.2  # MAMA/LLaVA; 0 means greedy decoding (one caption per video only)
    max_new_tokens: int = 40  # generated tokens per caption (MAMA allowed 1024 for one sentence)
    max_caption_tokens: int = 40  # length tokenizer's tokens incl. [CLS]/[SEP]; needs a tokenizer
    max_retries: int = 5  # extra sampling rounds for captions that were filtered out
    distinct: bool = True  # a video's captions must differ (ignoring case and spacing)

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.max_new_tokens < 1 or self.max_caption_tokens < 3 or self.max_retries < 0:
            raise ValueError("max_new_tokens must be >= 1, max_caption_tokens >= 3 and max_retries >= 0")


class LengthTokenizer(Protocol):
    """Anything called like a Hugging Face tokenizer (e.g. `AutoTokenizer` of bert-base-uncased)."""

    def __call__(self, text: str, **kwargs: Any) -> Any: ...


@dataclass
class CaptionResult:
    """The captions of one visual input.

    Attributes:
        captions: the captions that passed, in the order they were sampled.
        rejected: `(cleaned text, reason)` for each sample that did not.
        rounds: sampling rounds used (1 + retries).
    """

    captions: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    rounds: int = 0


_IMAGE_WORD = re.compile(r"\bimages?\b", re.IGNORECASE)


def clean_caption(text: str) -> str:
    """Strip, join lines into one, and replace the words "image"/"images" by "video", keeping
    the case of the replaced word ("Image" -> "Video", "IMAGES" -> "VIDEO"). Words that merely
    contain them ("imagery", "imagine") are left alone."""

    def video(match: re.Match) -> str:
        word = match.group(0)
        if word.isupper():
            return "VIDEO"
        return "Video" if word[0].isupper() else "video"

    return _IMAGE_WORD.sub(video, " ".join(text.split()))


def count_tokens(tokenizer: LengthTokenizer, text: str) -> int:
    """Tokens of `text` including the special tokens ([CLS] and [SEP] for BERT)."""
    return len(tokenizer(text, add_special_tokens=True)["input_ids"])


def round_seed(seed: int, round_index: int) -> int:
    """The seed of one sampling round, derived from the call's seed (independent streams)."""
    return int(np.random.SeedSequence([seed, round_index]).generate_state(1)[0])


class Captioner(ABC):
    """Base class of captioning backends (see the module docstring).

    Args:
        config: sampling and filtering options.
        length_tokenizer: counts caption length for the `max_caption_tokens` filter; None turns
            the filter off.
    """

    input_kind: ClassVar[InputKind] = "grid"

    def __init__(self, config: CaptionConfig = CaptionConfig(), *, length_tokenizer: LengthTokenizer | None = None):
        self.config = config
        self.length_tokenizer = length_tokenizer

    @abstractmethod
    def generate(self, inputs: Sequence[np.ndarray], prompt: str, num_samples: int, seed: int) -> list[list[str]]:
        """Sample raw texts, `num_samples` for each input, reproducibly from `seed`.

        Args:
            inputs: per video, `uint8 [H, W, 3]` (grid backends) or `[K, H, W, 3]` (frames).
            prompt: the instruction, without any chat template (the backend applies its own).
            num_samples: texts to sample per input.
            seed: the same inputs, prompt and seed give the same texts.

        Returns:
            One list of `num_samples` texts per input.
        """

    def describe(self) -> dict[str, Any]:
        """Everything that shapes the captions (saved with resumable progress, so a run is never
        continued with other settings). Backends add their model and options."""
        return {"backend": type(self).__name__, "config": asdict(self.config),
                "length_filter": self.length_tokenizer is not None}

    def check(self, text: str, kept: Sequence[str]) -> str | None:
        """Why a cleaned caption is rejected, or None when it passes."""
        if not text:
            return "empty"
        if self.config.distinct and text.lower() in {k.lower() for k in kept}:
            return "duplicate"
        if self.length_tokenizer is not None:
            n = count_tokens(self.length_tokenizer, text)
            if n > self.config.max_caption_tokens:
                return f"too long ({n} > {self.config.max_caption_tokens} tokens)"
        return None

    def caption_detailed(
        self, inputs: Sequence[np.ndarray], prompt: str = DEFAULT_PROMPT, num_captions: int = 1, seed: int = 0,
    ) -> list[CaptionResult]:
        """Like `caption`, with the rejected samples and the rounds used per input."""
        if num_captions < 1:
            raise ValueError(f"num_captions must be at least 1, got {num_captions}")
        if self.config.temperature == 0 and num_captions > 1:
            raise ValueError("greedy decoding (temperature 0) gives one caption per video; raise the temperature")
        results = [CaptionResult() for _ in inputs]
        for round_index in range(self.config.max_retries + 1):
            pending = [i for i, r in enumerate(results) if len(r.captions) < num_captions]
            if not pending:
                break
            need = max(num_captions - len(results[i].captions) for i in pending)
            texts = self.generate([inputs[i] for i in pending], prompt, need, round_seed(seed, round_index))
            for i, samples in zip(pending, texts):
                result = results[i]
                result.rounds += 1
                for raw in samples:
                    if len(result.captions) == num_captions:
                        break
                    text = clean_caption(raw)
                    reason = self.check(text, result.captions)
                    if reason is None:
                        result.captions.append(text)
                    else:
                        result.rejected.append((text, reason))
        return results

    def caption(
        self, inputs: Sequence[np.ndarray], prompt: str = DEFAULT_PROMPT, num_captions: int = 1, seed: int = 0,
    ) -> list[list[str]]:
        """Captions for each input: up to `num_captions` each (fewer when samples kept failing the
        filters after `max_retries` extra rounds), reproducible from `seed`.

        Args:
            inputs: per video, what `input_kind` says: an `[H, W, 3]` image or `[K, H, W, 3]` frames.
            prompt: the instruction (see `PROMPTS`).
            num_captions: captions wanted per input.
            seed: sampling seed.
        """
        return [r.captions for r in self.caption_detailed(inputs, prompt, num_captions, seed)]
