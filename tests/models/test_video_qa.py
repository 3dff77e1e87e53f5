"""Video QA models: answer vocabulary, open-ended classification, multiple choice, round trips."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from mixma.data.collate import tokenize_multiple_choice
from mixma.models.dual_encoder import DualEncoder
from mixma.models.video_qa import (
    IGNORE_INDEX,
    AnswerVocab,
    MultipleChoiceVideoQA,
    OpenEndedVideoQA,
    VideoQAConfig,
    normalize_answer,
)

from .conftest import make_frames, make_text, tiny_clip_vision_config

FUSION = dict(fusion_dim=32, fusion_heads=4, fusion_layers=2, fusion_dropout=0.0)
VOCAB = AnswerVocab(["dog", "cat", "red", "two"])


def perturb_(module: torch.nn.Module, seed: int = 0, std: float = 0.2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


def encoder(vision_dir, text_dir, **options) -> DualEncoder:
    """A dual encoder with 16-d joint space (CLIP's own projections are 24-d, so not for CLIP dirs)."""
    torch.manual_seed(0)
    return DualEncoder.from_towers(vision_dir, text_dir, projection_dim=16, temporal_heads=4, **options)


def clip_encoder(clip_dir) -> DualEncoder:
    torch.manual_seed(0)
    return DualEncoder.from_towers(clip_dir, temporal_heads=4)


@pytest.fixture
def open_ended(tiny_clip_vision_dir, tiny_bert_dir) -> OpenEndedVideoQA:
    return OpenEndedVideoQA.from_encoder(encoder(tiny_clip_vision_dir, tiny_bert_dir), VOCAB, **FUSION).eval()


@pytest.fixture
def multiple_choice(tiny_clip_dir) -> MultipleChoiceVideoQA:
    return MultipleChoiceVideoQA.from_encoder(clip_encoder(tiny_clip_dir), **FUSION).eval()


def option_texts(batch: int, options: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = make_text([3 + (i % 5) for i in range(batch * options)], seed=seed)
    return ids.view(batch, options, -1), mask.view(batch, options, -1)


# --- answer vocabulary -----------------------------------------------------------------------


def test_answer_vocab_build_counts_and_ranks():
    answers = ["Dog", "cat", "dog ", "red", "cat", "dog", "two", "  RED", "blue"]
    vocab = AnswerVocab.build(answers, min_count=2)
    assert vocab.answers == ["dog", "cat", "red"]  # by count, ties alphabetically
    assert AnswerVocab.build(answers, max_size=2).answers == ["dog", "cat"]
    assert AnswerVocab.build(answers).answers == ["dog", "cat", "red", "blue", "two"]
    assert normalize_answer("  A   Big\tDog ") == "a big dog"
    with pytest.raises(ValueError, match="distinct"):
        AnswerVocab(["Dog", "dog"])
    with pytest.raises(ValueError):
        AnswerVocab.build([])


def test_answer_vocab_maps_both_ways_and_ignores_unknown(tmp_path):
    assert [VOCAB.encode(a) for a in ["dog", " CAT", "two"]] == [0, 1, 3]
    assert VOCAB.encode("horse") == IGNORE_INDEX and "horse" not in VOCAB and "Red" in VOCAB
    labels = VOCAB.encode_batch(["red", "horse"])
    assert labels.dtype == torch.long and labels.tolist() == [2, IGNORE_INDEX]
    assert VOCAB.decode_batch(torch.tensor([3, 0])) == ["two", "dog"]
    assert all(VOCAB.decode(VOCAB.encode(a)) == a for a in VOCAB.answers)
    VOCAB.save(tmp_path / "answers.json")
    assert AnswerVocab.load(tmp_path / "answers.json") == VOCAB


# --- open-ended ------------------------------------------------------------------------------


def test_open_ended_outputs_and_per_sample_loss(open_ended):
    frames, (ids, mask) = make_frames(3, 2), make_text([5, 4, 6])
    labels = torch.tensor([1, IGNORE_INDEX, 3])
    captions = make_text([4, 7, 5], seed=9)
    out = open_ended(frames, ids, mask, labels=labels, caption_input_ids=captions[0], caption_attention_mask=captions[1])
    assert out.logits.shape == (3, len(VOCAB)) and out.fused.shape == (3, 32)
    assert out.loss.shape == (3,) and out.loss[1] == 0  # unknown answer: no loss
    for b in (0, 2):
        torch.testing.assert_close(out.loss[b], -out.logits[b].log_softmax(-1)[labels[b]])
    assert out.video_emb.shape == out.text_emb.shape == out.caption_emb.shape == (3, 16)
    with torch.no_grad():
        torch.testing.assert_close(out.video_emb, open_ended.encoder.embed_videos(frames))
        torch.testing.assert_close(out.text_emb, open_ended.encoder.embed_texts(ids, mask))
        torch.testing.assert_close(out.caption_emb, open_ended.encoder.embed_texts(*captions))
    assert open_ended(frames, ids, mask).loss is None
    assert open_ended.predict(out.logits) == VOCAB.decode_batch(out.logits.argmax(-1))


def test_open_ended_batch_independence_and_padding(open_ended):
    frames = make_frames(3, 3, seed=5)
    frames[1, 2] = float("nan")  # a padded frame may hold anything
    frame_mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]])
    ids, mask = make_text([5, 8, 3], seed=5)
    with torch.no_grad():
        batched = open_ended(frames, ids, mask, frame_mask).logits
        for b in range(3):
            n, length = int(frame_mask[b].sum()), int(mask[b].sum())
            alone = open_ended(frames[b : b + 1, :n], ids[b : b + 1, :length]).logits
            torch.testing.assert_close(batched[b], alone[0], atol=1e-5, rtol=1e-4)
        again = open_ended(frames, ids, mask, frame_mask).logits
    assert torch.equal(batched, again)  # deterministic in eval mode


def test_open_ended_round_trip(tmp_path, open_ended):
    perturb_(open_ended.encoder.temporal)
    open_ended.save_pretrained(tmp_path / "qa")
    assert json.loads((tmp_path / "qa" / "answers.json").read_text()) == VOCAB.answers
    loaded = OpenEndedVideoQA.from_pretrained(tmp_path / "qa")
    assert loaded.answers == VOCAB and loaded.config == open_ended.config
    inputs = (make_frames(2, 3), *make_text([4, 6]), torch.tensor([[1, 1, 1], [1, 0, 0]]))
    with torch.no_grad():
        a, b = open_ended(*inputs), loaded(*inputs)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.video_emb, b.video_emb)
    with pytest.raises(ValueError, match="holds a OpenEndedVideoQA"):
        MultipleChoiceVideoQA.from_pretrained(tmp_path / "qa")


def test_vocab_size_must_match_config(tiny_clip_vision_dir, tiny_bert_dir):
    enc = encoder(tiny_clip_vision_dir, tiny_bert_dir)
    with pytest.raises(ValueError, match="num_answers"):
        OpenEndedVideoQA(VideoQAConfig(encoder=enc.config, num_answers=3, **FUSION), VOCAB, enc)


def test_frozen_towers_get_no_gradient(tiny_clip_vision_dir, tiny_bert_dir):
    enc = encoder(tiny_clip_vision_dir, tiny_bert_dir, freeze_vision=True, freeze_text=True)
    model = OpenEndedVideoQA.from_encoder(enc, VOCAB, **FUSION).train()
    assert not model.encoder.vision_model.training and not model.encoder.text_model.training
    out = model(make_frames(2, 2), *make_text([4, 5]), labels=torch.tensor([0, 2]))
    (out.loss.mean() + (out.video_emb * out.text_emb).sum()).backward()
    for name, p in model.named_parameters():
        frozen = name.startswith(("encoder.vision_model.", "encoder.text_model."))
        assert (p.grad is None) == frozen, name
    assert model.no_weight_decay() == {"fusion.cls", "fusion.frame_position", "fusion.modality"}  # mean temporal


def test_patch_tokens_reach_the_fusion(tiny_clip_vision_dir, tiny_bert_dir):
    model = OpenEndedVideoQA.from_encoder(encoder(tiny_clip_vision_dir, tiny_bert_dir), VOCAB,
                                          video_tokens="patches", **FUSION).eval()
    frames, (ids, mask) = make_frames(2, 2), make_text([4, 5])
    with torch.no_grad():
        features = model.encoder.encode_video(frames, return_tokens=True)
        fused = model.fusion(features.token_embeds, features.frame_mask, *model.encoder.encode_text(ids, mask)[1:])
        out = model(frames, ids, mask)
    torch.testing.assert_close(out.fused, fused)
    assert features.token_embeds.shape[:3] == (2, 2, 17)  # 16 patches + CLS per frame


def test_open_ended_overfits_a_tiny_batch(tiny_clip_vision_dir, tiny_bert_dir):
    model = OpenEndedVideoQA.from_encoder(encoder(tiny_clip_vision_dir, tiny_bert_dir), VOCAB, **FUSION).train()
    frames, (ids, mask), labels = make_frames(4, 2, seed=8), make_text([5, 6, 4, 7], seed=8), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss = model(frames, ids, mask, labels=labels).loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses


# --- multiple choice -------------------------------------------------------------------------


def test_multiple_choice_scores_loss_and_argmax(multiple_choice):
    frames, (ids, mask) = make_frames(2, 3), option_texts(2, 4)
    labels = torch.tensor([3, 0])
    out = multiple_choice(frames, ids, mask, labels=labels)
    assert out.logits.shape == (2, 4) and out.loss.shape == (2,)
    torch.testing.assert_close(out.loss, -out.logits.log_softmax(-1).gather(1, labels[:, None])[:, 0])
    assert out.text_emb.shape == (2, 4, 24) and out.fused.shape == (2, 4, 32)
    torch.testing.assert_close(out.text_emb.norm(dim=-1), torch.ones(2, 4))
    # the loss is lowest when the label is the argmax option
    losses = torch.stack([multiple_choice(frames, ids, mask, labels=torch.full((2,), k)).loss for k in range(4)], 1)
    assert torch.equal(losses.argmin(1), out.logits.argmax(1))


def test_each_option_is_scored_on_its_own(multiple_choice):
    frames, (ids, mask) = make_frames(2, 2, seed=1), option_texts(2, 4, seed=1)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        logits = multiple_choice(frames, ids, mask).logits
        permuted = multiple_choice(frames, ids[:, order], mask[:, order]).logits
        first_two = multiple_choice(frames, ids[:, :2], mask[:, :2]).logits
    torch.testing.assert_close(permuted, logits[:, order], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(first_two, logits[:, :2], atol=1e-5, rtol=1e-4)


def test_masked_options_are_excluded(multiple_choice):
    frames, (ids, mask) = make_frames(2, 2, seed=2), option_texts(2, 3, seed=2)
    option_mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    labels = torch.tensor([1, 2])
    with torch.no_grad():
        out = multiple_choice(frames, ids, mask, option_mask=option_mask, labels=labels)
        alone = multiple_choice(frames[:1], ids[:1, :2], mask[:1, :2], labels=labels[:1])
    assert out.logits[0, 2] == torch.finfo(out.logits.dtype).min
    torch.testing.assert_close(out.logits[0, :2], alone.logits[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.loss[0], alone.loss[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="masked-out option"):
        multiple_choice(frames, ids, mask, option_mask=option_mask, labels=torch.tensor([2, 0]))


def test_multiple_choice_round_trip(tmp_path, multiple_choice):
    multiple_choice.save_pretrained(tmp_path / "mc")
    loaded = MultipleChoiceVideoQA.from_pretrained(tmp_path / "mc")
    inputs = (make_frames(2, 2), *option_texts(2, 3))
    with torch.no_grad():
        assert torch.equal(multiple_choice(*inputs).logits, loaded(*inputs).logits)
    assert not (tmp_path / "mc" / "answers.json").exists()


def test_multiple_choice_overfits_a_tiny_batch(tiny_clip_dir):
    model = MultipleChoiceVideoQA.from_encoder(clip_encoder(tiny_clip_dir), **FUSION).train()
    frames, (ids, mask), labels = make_frames(4, 2, seed=6), option_texts(4, 3, seed=6), torch.tensor([0, 2, 1, 2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        out = model(frames, ids, mask, labels=labels)
        loss = out.loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses
    assert torch.equal(out.logits.argmax(-1), labels)


# --- with the real MiniLM text tower ---------------------------------------------------------


def test_minilm_question_answering_path(minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    batch = tokenize_multiple_choice(tokenizer, ["what is the man holding?", "what colour is the car?"],
                                     [["a guitar", "a dog", "a cup"], ["red", "blue"]], max_length=16)
    assert batch["input_ids"].shape[:2] == (2, 3) and batch["input_ids"].shape[2] <= 16
    assert batch["option_mask"].tolist() == [[True, True, True], [True, True, False]]
    decoded = tokenizer.decode(batch["input_ids"][1, 0], skip_special_tokens=True)
    assert decoded == "what colour is the car? red"

    enc = DualEncoder.from_towers(tiny_clip_vision_config(), minilm_dir, freeze_text=True)
    model = MultipleChoiceVideoQA.from_encoder(enc, **FUSION).eval()
    with torch.no_grad():
        out = model(make_frames(2, 2), **batch, labels=torch.tensor([0, 1]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss).all()
