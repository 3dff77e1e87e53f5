"""LVLM caption augmentation (MAMA §3): keyframes, a keyframe mosaic, captions from a
vision-language model, added to an annotation file's `augmented` captions.

- `extract_keyframes` (`keyframes`): exactly K keyframes, by frame-difference peaks or MixedFrame.
- `make_grid` (`grid`): the rows x cols mosaic.
- `Captioner` (`captioner`): the backend interface, with MAMA's cleaning, filtering and retries;
  `LlavaCaptioner` (`llava`) is the LLaVA backend (imported on first use: it needs torch and
  transformers).
- `augment_captions` (`pipeline`): the resumable run over an annotation file.
"""

from __future__ import annotations

from typing import Any

from mixma.augment.captioner import (
    DEFAULT_PROMPT, PROMPTS, CaptionConfig, Captioner, CaptionerError, CaptionResult, clean_caption, resolve_prompt,
)
from mixma.augment.grid import GridConfig, make_grid, pad_to_square, parse_grid
from mixma.augment.keyframes import KeyframeConfig, Keyframes, extract_keyframes
from mixma.augment.pipeline import AugmentConfig, AugmentSummary, Failure, ProgressError, augment_captions

__all__ = [
    "DEFAULT_PROMPT", "PROMPTS", "AugmentConfig", "AugmentSummary", "CaptionConfig", "CaptionResult", "Captioner",
    "CaptionerError", "Failure", "GridConfig", "KeyframeConfig", "Keyframes", "LlavaCaptioner", "ProgressError",
    "augment_captions", "clean_caption", "extract_keyframes", "make_grid", "pad_to_square", "parse_grid",
    "resolve_prompt",
]


def __getattr__(name: str) -> Any:
    if name == "LlavaCaptioner":  # torch and transformers load only when the backend is used
        from mixma.augment.llava import LlavaCaptioner

        return LlavaCaptioner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
