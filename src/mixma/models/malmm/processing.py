"""The text side of MA-LMM: instructions for the Q-Former, prompts and targets for the LLM.

The LLM's input is `[visual tokens] [prompt] [target] [eos]`, where the visual tokens are
placeholders (the image token) that the model replaces with the projected Q-Former outputs.
Training labels are -100 everywhere but on the target and its end token, so the loss is on the
answer only (as MA-LMM). Sequences are padded on the right for training and on the left for
generation, so that generation continues right after each prompt. The Q-Former gets the prompt
too (InstructBLIP's instruction-aware queries), truncated from the left like LAVIS does.

Saved in the layout of transformers' `InstructBlipProcessor`: the LLM tokenizer in the folder, the
Q-Former tokenizer in `qformer_tokenizer/`, so a converted InstructBLIP checkpoint loads as is.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

CONFIG_NAME = "malmm_processor.json"


def visual_token_count(config, num_frames: int) -> int:
    """How many image tokens the LLM input holds for an MA-LMM `config` (a `MALMMConfig`):
    the last frame's queries with memory, every frame's queries with memory off."""
    queries = config.num_query_tokens
    return queries if config.memory_bank_length > 0 else queries * num_frames


@dataclass(frozen=True)
class ProcessorConfig:
    """Text lengths and the image token; every default lives here."""

    num_query_tokens: int = 32
    image_token: str = "<image>"
    max_prompt_len: int = 128  # tokens of instruction (Q-Former) and of prompt (LLM)
    max_target_len: int = 256  # tokens of target text


class MALMMProcessor:
    """Tokenises prompts (and targets) into MA-LMM inputs.

    Args:
        tokenizer: the LLM's tokenizer; it must know `config.image_token` and have an end token.
        qformer_tokenizer: the Q-Former's (BERT) tokenizer.
        config: lengths and the image token.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, qformer_tokenizer: PreTrainedTokenizerBase,
                 config: ProcessorConfig = ProcessorConfig()):
        self.tokenizer, self.qformer_tokenizer, self.config = tokenizer, qformer_tokenizer, config
        self.image_token_id = tokenizer.convert_tokens_to_ids(config.image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the LLM tokenizer does not know the image token {config.image_token!r}")
        if tokenizer.eos_token_id is None:
            raise ValueError("the LLM tokenizer needs an end-of-sequence token")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.qformer_tokenizer.truncation_side = "left"  # keep the end of long instructions

    def __call__(self, prompts: list[str], targets: list[str] | None = None, num_visual_tokens: int | None = None) -> dict:
        """Model inputs for a batch: Q-Former ids and mask, LLM ids and mask, and labels if
        `targets` are given. `num_visual_tokens` defaults to `num_query_tokens` (pass
        `T * num_query_tokens` for a model with memory off)."""
        if targets is not None and len(targets) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
        qformer = self.qformer_tokenizer(
            prompts, padding="longest", truncation=True, max_length=self.config.max_prompt_len, return_tensors="pt"
        )
        visual = [self.image_token_id] * (num_visual_tokens or self.config.num_query_tokens)
        prompt_ids = self.tokenizer(prompts, truncation=True, max_length=self.config.max_prompt_len).input_ids
        rows, label_rows = [], []
        for i, ids in enumerate(prompt_ids):
            row = visual + list(ids)
            if targets is None:
                rows.append(row)
                continue
            target = self.tokenizer(targets[i], add_special_tokens=False, truncation=True,
                                    max_length=self.config.max_target_len - 1).input_ids + [self.tokenizer.eos_token_id]
            rows.append(row + target)
            label_rows.append([-100] * len(row) + target)
        width = max(len(r) for r in rows)
        left = targets is None  # generation continues from the right edge
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            input_ids[i, span] = torch.tensor(row)
            attention_mask[i, span] = 1
            if targets is not None:
                labels[i, span] = torch.tensor(label_rows[i])
        batch = {
            "qformer_input_ids": qformer.input_ids,
            "qformer_attention_mask": qformer.attention_mask,
            "input_ids": input_ids,
            "attention_mask": attention_mask,
        }
        if targets is not None:
            batch["labels"] = labels
        return batch

    def collate(self, items: list[dict], num_visual_tokens: int, with_targets: bool) -> dict:
        """A batch of `VideoDataset` items (`pixel_values`, `index`, `prompt`, `target`) as model
        inputs; `index` is kept so evaluation can match outputs to samples."""
        prompts = [it["prompt"] for it in items]
        text = self(prompts, [it["target"] for it in items] if with_targets else None, num_visual_tokens)
        video = "vision_features" if "vision_features" in items[0] else "pixel_values"  # cached, or frames
        return {video: torch.stack([it[video] for it in items]), "index": torch.tensor([it["index"] for it in items]), **text}

    def decode(self, sequences: torch.Tensor, prompt_length: int) -> list[str]:
        """Generated text only: drop the `prompt_length` input tokens and special tokens."""
        return [t.strip() for t in self.tokenizer.batch_decode(sequences[:, prompt_length:], skip_special_tokens=True)]

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory)
        self.qformer_tokenizer.save_pretrained(directory / "qformer_tokenizer")
        (directory / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides) -> MALMMProcessor:
        """Load from a folder saved by `save_pretrained` or by transformers' InstructBlipProcessor
        (then `num_query_tokens` is read from the model's `config.json`), or from a hub id such as
        `Salesforce/instructblip-vicuna-7b` (the Q-Former tokenizer is its `qformer_tokenizer`
        subfolder)."""
        if not Path(directory).is_dir():  # a hub id: files are asked for by name, not joined as paths
            from transformers import AutoConfig  # noqa: PLC0415

            source = str(directory)
            settings = {"num_query_tokens": getattr(AutoConfig.from_pretrained(source), "num_query_tokens", 32), **overrides}
            return cls(AutoTokenizer.from_pretrained(source),
                       AutoTokenizer.from_pretrained(source, subfolder="qformer_tokenizer"), ProcessorConfig(**settings))
        directory = Path(directory)
        settings = {}
        if (directory / CONFIG_NAME).exists():
            settings = json.loads((directory / CONFIG_NAME).read_text())
        elif (directory / "config.json").exists():
            settings = {"num_query_tokens": json.loads((directory / "config.json").read_text()).get("num_query_tokens", 32)}
        settings.update(overrides)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        qformer_tokenizer = AutoTokenizer.from_pretrained(directory / "qformer_tokenizer")
        return cls(tokenizer, qformer_tokenizer, ProcessorConfig(**settings))
