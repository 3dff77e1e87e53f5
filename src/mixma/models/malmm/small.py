"""Small MA-LMMs built from scratch, for CPU experiments and tests.

No pretrained InstructBLIP can be downloaded on our machines, so experiments on the synthetic
benchmark build a small one from transformers configs: an InstructBLIP vision tower, Q-Former and
a LLaMA language model, all random, with a word-level tokenizer over the task's own vocabulary
(shared by the LLM and the Q-Former). It is saved and loaded like any checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import InstructBlipQFormerConfig, InstructBlipVisionConfig, LlamaConfig, PreTrainedTokenizerFast

from mixma.models.malmm.modeling import MALMM, MALMMConfig
from mixma.models.malmm.processing import MALMMProcessor, ProcessorConfig
from mixma.models.vision.encoder import ImageEncoder
from mixma.models.vision.tower import tower_config

SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]", "<image>")
_WORD = re.compile(r"\w+|[^\w\s]+")  # how the `Whitespace` pre-tokenizer splits text


@dataclass(frozen=True)
class SmallConfig:
    """Sizes of a from-scratch MA-LMM; every default lives here. The input size and the memory
    length are not sizes of the network: they are arguments of `build_small_malmm`."""

    patch_size: int = 8
    vision_hidden: int = 96
    vision_layers: int = 2
    qformer_hidden: int = 96
    qformer_layers: int = 2
    llm_hidden: int = 128
    llm_layers: int = 2
    heads: int = 4
    num_query_tokens: int = 8
    max_num_frames: int = 120  # rows of the temporal position embedding
    vision: str | None = None  # a pretrained ImageNet CNN (efficientnet-lite0/1/2, mobilenet-v2) as the
    # vision model, in place of a random ViT (then vision_hidden, vision_layers and patch_size are unused)


def word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A lowercase word-level tokenizer whose vocabulary is every word in `texts`."""
    words = sorted({w for text in texts for w in _WORD.findall(text.lower())} - set(SPECIALS))
    vocab = {token: i for i, token in enumerate([*SPECIALS, *words])}
    core = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", vocab["[BOS]"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]",
        additional_special_tokens=["<image>"],
    )


def build_small_malmm(
    texts: Iterable[str], config: SmallConfig = SmallConfig(), *, image_size: int, memory_bank_length: int | None = None,
    **memory: object,
) -> tuple[MALMM, MALMMProcessor]:
    """A random MA-LMM sized by `config` for `image_size`-pixel square frames, with a tokenizer
    covering `texts` (prompts and answers); `memory_bank_length=0` turns memory off (None: the
    `MALMMConfig` default); `memory`: other `MALMMConfig` memory options (`memory_banks`,
    `compression`)."""
    tokenizer = word_tokenizer(texts)
    vocab = len(tokenizer)
    encoder = ImageEncoder.from_pretrained(config.vision) if config.vision else None
    width = encoder.output_dim if encoder is not None else config.vision_hidden
    model_config = MALMMConfig(
        vision_config=InstructBlipVisionConfig(
            hidden_size=width, intermediate_size=4 * config.vision_hidden,
            num_hidden_layers=config.vision_layers, num_attention_heads=config.heads,
            image_size=image_size, patch_size=config.patch_size,
            initializer_range=0.02,  # InstructBLIP's default, 1e-10, is for loading: from scratch it is a dead encoder
        ).to_dict(),
        vision_encoder=tower_config(encoder) if encoder is not None else None,
        qformer_config=InstructBlipQFormerConfig(
            hidden_size=config.qformer_hidden, intermediate_size=4 * config.qformer_hidden,
            num_hidden_layers=config.qformer_layers, num_attention_heads=config.heads,
            encoder_hidden_size=width, vocab_size=vocab, pad_token_id=tokenizer.pad_token_id,
            cross_attention_frequency=1, max_position_embeddings=256,
        ).to_dict(),
        text_config=LlamaConfig(
            hidden_size=config.llm_hidden, intermediate_size=4 * config.llm_hidden,
            num_hidden_layers=config.llm_layers, num_attention_heads=config.heads,
            num_key_value_heads=config.heads, vocab_size=vocab, max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ).to_dict(),
        num_query_tokens=config.num_query_tokens,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        max_num_frames=config.max_num_frames,
        **({} if memory_bank_length is None else {"memory_bank_length": memory_bank_length}),
        **memory,
    )
    model = MALMM(model_config)
    if encoder is not None:  # the pretrained ImageNet weights
        model.vision_model.encoder.load_state_dict(encoder.state_dict())
    processor = MALMMProcessor(tokenizer, tokenizer, ProcessorConfig(num_query_tokens=config.num_query_tokens))
    return model, processor
