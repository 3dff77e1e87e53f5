"""Captioners: MAMA's clean-up, the length filter, bounded retries, and the LLaVA backend on a
tiny random model loaded from disk."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mixma.augment.captioner import (
    DEFAULT_PROMPT, PROMPTS, CaptionConfig, CaptionerError, clean_caption, count_tokens, resolve_prompt, round_seed,
)
from mixma.augment.llava import LLAVA_15_TEMPLATE, LlavaCaptioner

from .conftest import ScriptedCaptioner, build_tiny_llava

IMAGE = np.random.default_rng(0).integers(0, 256, (18, 40, 3), dtype=np.uint8)  # a wide 3x4 grid


# -- clean-up and filters --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("  The image shows a man cooking.\n", "The video shows a man cooking."),
        ("These images show a dog.", "These video show a dog."),  # MAMA's plain replacement
        ("IMAGE of a cat", "VIDEO of a cat"),
        ("Images:\n a person\n\n running", "Video: a person running"),
        ("imagery of an imaginary image-maker", "imagery of an imaginary video-maker"),
        ("   ", ""),
    ],
)
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def test_prompts():
    assert DEFAULT_PROMPT == "In a sentence, describe the process in the video."
    assert resolve_prompt("order") == PROMPTS["order"] and resolve_prompt("Say hi.") == "Say hi."


def test_bert_token_count_includes_cls_and_sep(bert_tokenizer):
    assert count_tokens(bert_tokenizer, "the man is cooking.") == 7  # [CLS] the man is cooking . [SEP]


def test_retries_are_bounded_and_duplicates_rejected():
    captioner = ScriptedCaptioner(lambda image, seed, k: "The image shows a dog.", CaptionConfig(max_retries=3))
    [result] = captioner.caption_detailed([IMAGE], num_captions=2, seed=5)
    assert result.captions == ["The video shows a dog."]
    assert result.rounds == 4 and len(captioner.calls) == 4  # 1 + max_retries, then it gives up
    assert {reason for _, reason in result.rejected} == {"duplicate"}


def test_too_long_and_empty_samples_are_resampled(bert_tokenizer):
    first_round = round_seed(7, 0)
    long = "a man " * 30

    def sample(image, seed, k):
        if seed == first_round:
            return long if k == 0 else "   "
        return f"a man cooks dish number {seed % 97 + k}"

    captioner = ScriptedCaptioner(sample, length_tokenizer=bert_tokenizer)
    [result] = captioner.caption_detailed([IMAGE], num_captions=2, seed=7)
    assert len(result.captions) == 2 and result.rounds == 2
    assert [reason for _, reason in result.rejected] == ["too long (62 > 40 tokens)", "empty"]
    [unfiltered] = ScriptedCaptioner(sample).caption_detailed([IMAGE], num_captions=2, seed=7)
    assert unfiltered.captions[0] == "a man " * 29 + "a man"  # no length tokenizer: no length limit
    assert [reason for _, reason in unfiltered.rejected] == ["empty"] and unfiltered.rounds == 2


def test_only_inputs_missing_captions_are_resampled():
    captioner = ScriptedCaptioner(lambda image, seed, k: "same" if image.mean() < 1 else f"caption {seed} {k}",
                                  CaptionConfig(max_retries=2))
    dark, bright = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8)
    captions = captioner.caption([dark, bright], num_captions=2, seed=1)
    assert captions[0] == ["same"] and len(captions[1]) == 2
    assert [len(c) for c in captioner.calls] == [2, 1, 1]  # later rounds only for the dark one
    assert captioner.seeds == [round_seed(1, r) for r in range(3)]


def test_caption_argument_errors():
    with pytest.raises(ValueError, match="greedy"):
        ScriptedCaptioner(config=CaptionConfig(temperature=0)).caption([IMAGE], num_captions=2)
    with pytest.raises(ValueError):
        ScriptedCaptioner().caption([IMAGE], num_captions=0)
    with pytest.raises(ValueError):
        CaptionConfig(temperature=-1)


# -- LLaVA -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llava(tiny_llava) -> LlavaCaptioner:
    return LlavaCaptioner.from_pretrained(tiny_llava, device="cpu")


def test_llava_loads_and_formats_the_llava15_prompt(llava):
    assert llava.format_prompt(DEFAULT_PROMPT) == "USER: <image>\nIn a sentence, describe the process in the video. ASSISTANT:"
    assert llava.pad_color == (122, 116, 104)  # CLIP's mean colour
    assert llava.describe()["model"] and llava.describe()["template"].startswith("USER: <image>")


def test_llava_captions_are_reproducible_cleaned_and_counted(llava):
    state = torch.random.get_rng_state()
    first = llava.caption([IMAGE], num_captions=3, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    assert first == llava.caption([IMAGE], num_captions=3, seed=0)
    assert first != llava.caption([IMAGE], num_captions=3, seed=1)
    assert len(first) == 1 and len(first[0]) == 3 and len(set(first[0])) == 3
    raw = llava.generate([IMAGE], DEFAULT_PROMPT, 4, seed=3)
    assert any(re.search(r"\bimages?\b", text) for texts in raw for text in texts)  # gibberish mentions images...
    for text in [t for texts in llava.caption([IMAGE, IMAGE[::-1]], num_captions=4, seed=3) for t in texts]:
        assert not re.search(r"\bimages?\b", text, re.IGNORECASE) and text == text.strip()  # ...captions do not


def test_llava_batches_and_length_filter(tiny_llava, bert_tokenizer):
    captioner = LlavaCaptioner.from_pretrained(tiny_llava, CaptionConfig(max_new_tokens=12, max_caption_tokens=9, max_retries=2),
                                               device="cpu", length_tokenizer=bert_tokenizer)
    results = captioner.caption_detailed([IMAGE, np.zeros((30, 30, 3), np.uint8)], num_captions=2, seed=0)
    assert len(results) == 2
    for result in results:
        assert all(count_tokens(bert_tokenizer, c) <= 9 for c in result.captions)
        assert all(reason.startswith(("too long", "duplicate", "empty")) for _, reason in result.rejected)
        assert result.rejected or len(result.captions) == 2


def test_llava_pads_the_grid_to_a_square(llava, monkeypatch):
    seen = []
    processor = llava.processor

    class Spy:
        def __getattr__(self, name):
            return getattr(processor, name)

        def __call__(self, images, **kwargs):
            seen.extend(images)
            return processor(images=images, **kwargs)

    monkeypatch.setattr(llava, "processor", Spy())
    llava.generate([IMAGE], DEFAULT_PROMPT, 1, seed=0)
    assert seen[0].shape == (40, 40, 3)
    np.testing.assert_array_equal(seen[0][11:29], IMAGE)
    assert (seen[0][:11] == llava.pad_color).all()


def test_greedy_decoding_ignores_the_seed(tiny_llava):
    greedy = LlavaCaptioner.from_pretrained(tiny_llava, CaptionConfig(temperature=0, max_new_tokens=8), device="cpu")
    assert greedy.generate([IMAGE], DEFAULT_PROMPT, 1, seed=0) == greedy.generate([IMAGE], DEFAULT_PROMPT, 1, seed=9)


def test_prompt_templates(tmp_path, llava):
    plain = LlavaCaptioner.from_pretrained(build_tiny_llava(tmp_path / "plain", chat_template=False), device="cpu")
    assert plain.format_prompt("Describe.") == LLAVA_15_TEMPLATE.format(prompt="Describe.")
    assert len(plain.caption([IMAGE], seed=0)[0]) <= 1
    custom = LlavaCaptioner(llava.model, llava.processor, prompt_template="<image> Q: {prompt} A:")
    assert custom.format_prompt("Describe.") == "<image> Q: Describe. A:"
    with pytest.raises(ValueError, match="prompt_template"):
        LlavaCaptioner(llava.model, llava.processor, prompt_template="Q: {prompt} A:")


def test_loading_errors(tmp_path):
    with pytest.raises(CaptionerError, match="no such model folder"):
        LlavaCaptioner.from_pretrained(tmp_path / "missing")
    with pytest.raises(CaptionerError, match="no config.json"):
        LlavaCaptioner.from_pretrained(tmp_path)
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "llama")
    with pytest.raises(CaptionerError, match="not LLaVA"):
        LlavaCaptioner.from_pretrained(tmp_path / "llama")
    with pytest.raises(ValueError, match="dtype"):
        LlavaCaptioner.from_pretrained(tmp_path / "llama", dtype="float8")
    with pytest.raises(ValueError, match="device"):
        LlavaCaptioner.from_pretrained(tmp_path / "llama", device="gpu0")
