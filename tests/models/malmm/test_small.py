"""Small from-scratch MA-LMMs: every part starts alive, and the word tokenizer covers its texts."""

from __future__ import annotations

import torch

from mixma.models.malmm import MALMM
from mixma.models.malmm.processing import MALMMProcessor
from mixma.models.malmm.small import SmallConfig, build_small_malmm, word_tokenizer

TEXTS = ["Question: which colour was the star? Short answer:", "green", "blue", "three"]


def test_word_tokenizer_covers_its_texts():
    tokenizer = word_tokenizer(TEXTS)
    ids = tokenizer("Which colour was the STAR?")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "which colour was the star ?"
    assert tokenizer.unk_token_id in tokenizer("a purple square")["input_ids"]


def test_every_weight_matrix_starts_random_and_alive():
    """InstructBLIP's vision config initialises with std 1e-10 (weights are always loaded); a
    from-scratch encoder built that way outputs the same features for any image."""
    torch.manual_seed(0)
    model, _ = build_small_malmm(TEXTS, image_size=32, memory_bank_length=3)
    for name, weight in model.named_parameters():
        if weight.ndim >= 2 and "temporal_embedding" not in name:
            assert 0.01 < weight.std().item() < 0.05, name
    frames = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features = model.vision_model(pixel_values=frames).last_hidden_state
    assert (features[0] - features[1]).abs().mean() > 1e-2 * features.abs().mean()


def test_sizes_memory_and_round_trip(tmp_path):
    config = SmallConfig(vision_hidden=32, qformer_hidden=32, llm_hidden=32, num_query_tokens=4)
    model, processor = build_small_malmm(TEXTS, config, image_size=48, memory_bank_length=0)
    assert model.config.vision_config.image_size == 48 and model.config.memory_bank_length == 0
    assert model.query_tokens.shape == (1, 4, 32)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again, processor_again = MALMM.from_pretrained(tmp_path), MALMMProcessor.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert processor_again(["which colour"])["input_ids"].tolist() == processor(["which colour"])["input_ids"].tolist()
