"""LLaVA captioning backend, through transformers' `LlavaForConditionalGeneration`.

Takes models in the Hugging Face LLaVA layout, e.g. a local copy of `llava-hf/llava-1.5-7b-hf`
(MAMA used LLaVA-1.5-7B through the original LLaVA code; these are the same weights, converted).
Two details keep it faithful to MAMA's setup:

- The mosaic is padded to a square with the image processor's mean colour before the processor
  sees it, as LLaVA-1.5 was trained ("pad" aspect ratio). The HF processor alone would resize the
  short side and centre-crop, cutting off the grid's first and last columns.
- The prompt goes through the processor's chat template (LLaVA-1.5: `USER: <image>\\n... ASSISTANT:`);
  a model folder without one falls back to that LLaVA-1.5 format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixma.augment.captioner import CaptionConfig, Captioner, CaptionerError, LengthTokenizer
from mixma.augment.grid import pad_to_square

LLAVA_15_TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" is the GPU when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {str(device)!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: no GPU is available here")
    return device


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """"auto" is float16 on a GPU (as MAMA ran LLaVA) and float32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


class LlavaCaptioner(Captioner):
    """Captions keyframe mosaics with a LLaVA model.

    Args:
        model: a `LlavaForConditionalGeneration` (on its device and dtype).
        processor: the matching `LlavaProcessor` (image processor + tokenizer + chat template).
        config: sampling and filtering options.
        length_tokenizer: tokenizer for the caption length filter (MAMA: bert-base-uncased).
        pad_to_square: pad each image to a square with the processor's mean colour first.
        prompt_template: overrides the chat template; `{prompt}` marks the instruction and the
            processor's image token (`<image>`) must appear once.

    Example:
        >>> captioner = LlavaCaptioner.from_pretrained("models/llava-1.5-7b-hf")  # doctest: +SKIP
        >>> captioner.caption([grid], num_captions=2, seed=0)  # doctest: +SKIP
        [['A person peels and chops carrots, then fries them in a pan.', '...']]
    """

    input_kind = "grid"

    def __init__(
        self,
        model: Any,
        processor: Any,
        config: CaptionConfig = CaptionConfig(),
        *,
        length_tokenizer: LengthTokenizer | None = None,
        pad_to_square: bool = True,
        prompt_template: str | None = None,
    ):
        super().__init__(config, length_tokenizer=length_tokenizer)
        self.model = model.eval()
        self.processor = processor
        self.pad_to_square = pad_to_square
        image_token = getattr(processor, "image_token", "<image>")
        if prompt_template is not None and (prompt_template.count(image_token) != 1 or "{prompt}" not in prompt_template):
            raise ValueError(f"prompt_template needs one {image_token} and a {{prompt}} placeholder")
        self.prompt_template = prompt_template
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"  # generation continues right after each prompt
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        mean = getattr(processor.image_processor, "image_mean", None) or (0.0, 0.0, 0.0)
        self.pad_color = tuple(int(255 * m) for m in mean)  # truncated, as LLaVA-1.5 computed it
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        config: CaptionConfig = CaptionConfig(),
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        length_tokenizer: LengthTokenizer | None = None,
        pad_to_square: bool = True,
        prompt_template: str | None = None,
    ) -> LlavaCaptioner:
        """Load a LLaVA model folder (Hugging Face layout) and its processor.

        Args:
            path: the folder, e.g. a download of `llava-hf/llava-1.5-7b-hf`.
            config: sampling and filtering options.
            device: "auto" (GPU if any), "cpu", "cuda", "cuda:1", ...
            dtype: "auto" (float16 on GPU, float32 on CPU), "float32", "float16" or "bfloat16".
            length_tokenizer, pad_to_square, prompt_template: see the class.

        Raises:
            CaptionerError: the folder is missing, or holds no LLaVA model or processor.
        """
        from transformers import AutoConfig, AutoProcessor, LlavaForConditionalGeneration

        path = Path(path).resolve()  # the model is part of a run's settings, wherever it was named from
        if not path.is_dir():
            raise CaptionerError(path, "no such model folder")
        if not (path / "config.json").is_file():
            raise CaptionerError(path, "not a Hugging Face model folder (no config.json)")
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        try:
            model_type = AutoConfig.from_pretrained(path).model_type
        except (OSError, ValueError, KeyError) as exc:
            raise CaptionerError(path, f"cannot read the model config ({_first_line(exc)})") from None
        if model_type != "llava":
            raise CaptionerError(path, f"holds a {model_type!r} model, not LLaVA (like llava-hf/llava-1.5-7b-hf)")
        try:
            processor = AutoProcessor.from_pretrained(path)
            model = LlavaForConditionalGeneration.from_pretrained(path, dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise CaptionerError(path, f"cannot load the LLaVA model or processor ({_first_line(exc)})") from None
        if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
            raise CaptionerError(path, "no LLaVA processor (image processor and tokenizer) in the folder")
        return cls(model.to(device), processor, config, length_tokenizer=length_tokenizer,
                   pad_to_square=pad_to_square, prompt_template=prompt_template)

    def format_prompt(self, prompt: str) -> str:
        """The model's text input for an instruction: the template around it, with the image token."""
        if self.prompt_template is not None:
            return self.prompt_template.replace("{prompt}", prompt)
        if getattr(self.processor, "chat_template", None):
            conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return LLAVA_15_TEMPLATE.format(prompt=prompt)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": str(getattr(self.model, "name_or_path", "")),
            "pad_to_square": self.pad_to_square,
            "template": self.format_prompt("{prompt}"),
        }

    def generate(self, inputs: Sequence[np.ndarray], prompt: str, num_samples: int, seed: int) -> list[list[str]]:
        images = []
        for image in inputs:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"LLaVA takes uint8 RGB images [H, W, 3], got {image.dtype} {tuple(image.shape)}")
            images.append(pad_to_square(image, self.pad_color) if self.pad_to_square else image)
        text = self.format_prompt(prompt)
        batch = self.processor(images=images, text=[text] * len(images), return_tensors="pt", padding=True)
        batch = batch.to(self.device)
        batch["pixel_values"] = batch["pixel_values"].to(self.dtype)
        sampling = self.config.temperature > 0
        options: dict[str, Any] = {"do_sample": sampling, "max_new_tokens": self.config.max_new_tokens,
                                   "num_return_sequences": num_samples, "pad_token_id": self.pad_id}
        if sampling:
            options["temperature"] = self.config.temperature
        # a private RNG stream: reproducible from `seed`, and the caller's torch RNG is left as it was
        cuda = [self.device.index if self.device.index is not None else torch.cuda.current_device()] \
            if self.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            output = self.model.generate(**batch, **options)
        texts = self.processor.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return [texts[i * num_samples : (i + 1) * num_samples] for i in range(len(images))]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
