"""MA-LMM against transformers' InstructBLIP and against a non-streaming statement of itself."""

from __future__ import annotations

import pytest
import torch
from transformers import InstructBlipForConditionalGeneration

from mixma.models.malmm import MALMM, MemoryState
from tests.models.malmm.conftest import IMAGE_TOKEN, batch


@pytest.fixture(scope="module")
def hf(instructblip_dir):
    return InstructBlipForConditionalGeneration.from_pretrained(instructblip_dir).eval()


def load(path, memory_bank_length=10, **kwargs) -> MALMM:
    return MALMM.from_pretrained(path, memory_bank_length=memory_bank_length, **kwargs).eval()


def test_one_frame_equals_instructblip(instructblip_dir, hf):
    model = load(instructblip_dir)
    inputs = batch(t=1)
    with torch.no_grad():
        ours = model(**inputs).logits
        theirs = hf(**{**inputs, "pixel_values": inputs["pixel_values"][:, 0]}).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_loads_instructblip_weights_unchanged_and_round_trips(instructblip_dir, hf, tmp_path):
    model = load(instructblip_dir, memory_bank_length=4)
    theirs = hf.state_dict()
    ours = model.state_dict()
    assert set(ours) - set(theirs) == {"temporal_embedding.weight"}
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert torch.count_nonzero(model.temporal_embedding.weight) == 0  # starts as InstructBLIP
    with torch.no_grad():
        model.temporal_embedding.weight.normal_()
    model.save_pretrained(tmp_path)
    again = MALMM.from_pretrained(tmp_path).eval()
    assert again.config.memory_bank_length == 4
    inputs = batch(t=3)
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def reference_last_queries(model: MALMM, inputs: dict, self_sees: str = "past", cross_sees: str = "past") -> torch.Tensor:
    """All frames at once, no memory banks: the Q-Former's own layers over every frame's queries
    and instruction in one sequence, with block-causal masks (frame t sees frames <= t). With
    memory large enough that nothing is compressed, MA-LMM must give exactly this. `self_sees` /
    `cross_sees` = "own" limit self- / cross-attention to the frame's own block instead (what
    remains without the query / visual banks)."""
    px, ids, mask = inputs["pixel_values"], inputs["qformer_input_ids"], inputs["qformer_attention_mask"]
    b, t = px.shape[:2]
    features = model._frame_features(px, 0, t)  # [B, T, P, C]
    p = features.shape[2]
    nq = model.config.num_query_tokens
    embeds = model.qformer.embeddings(input_ids=ids, query_embeds=model.query_tokens.expand(b, -1, -1))  # [B, Nq+L, D]
    length = embeds.shape[1] - nq
    # sequence: the queries of frames 0..T-1, then the instruction tokens of frames 0..T-1
    hidden = torch.cat([embeds[:, :nq].repeat(1, t, 1), embeds[:, nq:].repeat(1, t, 1)], 1)
    frame_of = torch.cat([torch.arange(t).repeat_interleave(nq), torch.arange(t).repeat_interleave(length)])
    keep_key = torch.cat([torch.ones(b, t * nq), mask.repeat(1, t).float()], 1)  # padding never attended
    sees = (lambda a, b: a >= b) if self_sees == "past" else (lambda a, b: a == b)
    allowed = sees(frame_of[None, :, None], frame_of[None, None, :]) & (keep_key[:, None, :] > 0)  # [B, S, S]
    neg = torch.finfo(hidden.dtype).min
    self_mask = torch.where(allowed, 0.0, neg)[:, None]
    query_frame, key_frame = torch.arange(t).repeat_interleave(nq)[:, None], torch.arange(t).repeat_interleave(p)[None, :]
    cross_allowed = query_frame >= key_frame if cross_sees == "past" else query_frame == key_frame
    cross_mask = torch.where(cross_allowed, 0.0, neg)[None, None].expand(b, 1, -1, -1)
    out = model.qformer.encoder(
        hidden, attention_mask=self_mask, encoder_hidden_states=features.flatten(1, 2),
        encoder_attention_mask=cross_mask, query_length=t * nq,
    ).last_hidden_state
    return out[:, (t - 1) * nq : t * nq]


@pytest.mark.parametrize("t", [1, 2, 5])
def test_streaming_without_compression_equals_direct_computation(instructblip_dir, t):
    model = load(instructblip_dir, memory_bank_length=t)  # room for every frame: nothing compressed
    with torch.no_grad():
        model.temporal_embedding.weight.normal_(0, 0.5)  # make frame order matter
        inputs = batch(t=t, seed=t)
        ours, _ = model.encode_frames(inputs["pixel_values"], inputs["qformer_input_ids"], inputs["qformer_attention_mask"], total_frames=t)
        direct = reference_last_queries(model, inputs)
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)


def test_chunked_streaming_equals_one_call(instructblip_dir):
    model = load(instructblip_dir, memory_bank_length=2)  # compression happens
    inputs = batch(t=7)
    args = (inputs["qformer_input_ids"], inputs["qformer_attention_mask"])
    with torch.no_grad():
        whole, whole_state = model.encode_frames(inputs["pixel_values"], *args)
        state = None
        for chunk in (slice(0, 1), slice(1, 4), slice(4, 7)):
            part, state = model.encode_frames(inputs["pixel_values"][:, chunk], *args, memory=state)
    torch.testing.assert_close(part, whole, rtol=0, atol=1e-6)
    assert state.frames_seen == 7 and len(state.visual) == 2 and all(len(q) == 2 for q in state.queries)
    # every token position's slots together hold the 7 frames seen
    assert torch.all(state.visual.sizes.sum(1) == 7)


def test_same_video_twice_and_batch_independence(instructblip_dir):
    model = load(instructblip_dir, memory_bank_length=2)
    both = batch(b=2, t=6, seed=3)
    with torch.no_grad():
        first = model(**both).logits
        second = model(**both).logits  # no state may survive the first call
        alone = [model(**{k: v[i : i + 1] for k, v in both.items()}).logits for i in range(2)]
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat(alone), first, rtol=1e-5, atol=1e-6)


def test_a_shorter_video_after_a_longer_one_is_unaffected(instructblip_dir):
    """The original leaked query banks into the next video when lengths differed."""
    model = load(instructblip_dir, memory_bank_length=3)
    short = batch(b=1, t=2, seed=8)
    with torch.no_grad():
        fresh = model(**short).logits
        model(**batch(b=1, t=9, seed=9))
        after = model(**short).logits
    torch.testing.assert_close(after, fresh, rtol=0, atol=0)


def test_memory_off_feeds_every_frame_to_the_llm(instructblip_dir, hf):
    model = load(instructblip_dir, memory_bank_length=0)
    inputs = batch(t=3)
    nq = model.config.num_query_tokens
    inputs["input_ids"] = torch.cat([torch.full((2, 2 * nq), IMAGE_TOKEN), inputs["input_ids"]], 1)  # 3 * Nq in all
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.no_grad():
        out = model(**inputs)
        # each frame's tokens equal InstructBLIP's for that frame alone (temporal embedding is zero)
        for i in range(3):
            single = hf.get_image_features(
                inputs["pixel_values"][:, i], inputs["qformer_input_ids"], inputs["qformer_attention_mask"]
            ).pooler_output
            torch.testing.assert_close(out.video_features[:, i * nq : (i + 1) * nq], single, rtol=1e-5, atol=1e-6)
    assert out.video_features.shape == (2, 3 * nq, 32)


def test_placeholder_count_is_checked(instructblip_dir):
    model = load(instructblip_dir)
    inputs = batch(t=2)
    inputs["input_ids"] = inputs["input_ids"][:, 1:]  # one image token short
    inputs["attention_mask"] = inputs["attention_mask"][:, 1:]
    with pytest.raises(ValueError, match="3 image tokens per item but the model produces 4"):
        model(**inputs)


def test_videos_longer_than_the_temporal_table(instructblip_dir):
    model = load(instructblip_dir, memory_bank_length=4, max_num_frames=8)
    with torch.no_grad():
        model.temporal_embedding.weight.copy_(torch.arange(8.0)[:, None].expand(8, 32))
    spread = model._temporal(0, 15, 15, torch.float32)[:, 0]
    torch.testing.assert_close(spread, torch.linspace(0, 7, 15))  # interpolated over the table
    clamped = model._temporal(6, 4, None, torch.float32)[:, 0]
    assert clamped.tolist() == [6.0, 7.0, 7.0, 7.0]  # streaming without a total: last row reused
    with torch.no_grad():
        assert model(**batch(t=20)).logits.isfinite().all()


def test_training_touches_only_the_last_frame_and_trainable_parts(instructblip_dir):
    model = load(instructblip_dir, memory_bank_length=2).train()
    trainable = model.freeze_for_training()
    assert "query_tokens" in trainable and "temporal_embedding.weight" in trainable
    assert any(n.startswith("qformer.") for n in trainable) and any(n.startswith("language_projection.") for n in trainable)
    assert not any(n.startswith("language_model.") for n in trainable)
    assert {n for n in trainable if n.startswith("vision_model.")} == {"vision_model.post_layernorm.weight", "vision_model.post_layernorm.bias"}

    graded_steps = []
    hook = model.qformer.embeddings.register_forward_hook(lambda *_: graded_steps.append(torch.is_grad_enabled()))
    inputs = batch(t=6)
    labels = inputs["input_ids"].clone()
    labels[:, : model.config.num_query_tokens] = -100
    loss = model(**inputs, labels=labels).loss
    loss.backward()
    hook.remove()
    assert graded_steps == [False] * 5 + [True]  # memory steps run without gradients
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
    assert model.query_tokens.grad is not None and model.query_tokens.grad.abs().sum() > 0


def test_generate_with_beams(instructblip_dir):
    model = load(instructblip_dir, memory_bank_length=2)
    inputs = batch(t=4)
    out = model.generate(**inputs, num_beams=3, num_return_sequences=3, max_new_tokens=5, repetition_penalty=1.5, do_sample=False)
    assert out.shape[0] == 2 * 3 and out.shape[1] <= inputs["input_ids"].shape[1] + 5
    assert torch.equal(out[::3, : inputs["input_ids"].shape[1]], inputs["input_ids"])  # prompt, then the answer


def test_memory_state_is_a_value(instructblip_dir):
    model = load(instructblip_dir, memory_bank_length=2)
    inputs = batch(t=3)
    args = (inputs["qformer_input_ids"], inputs["qformer_attention_mask"])
    with torch.no_grad():
        _, s1 = model.encode_frames(inputs["pixel_values"][:, :2], *args)
        out_a, _ = model.encode_frames(inputs["pixel_values"][:, 2:], *args, memory=s1)
        out_b, _ = model.encode_frames(inputs["pixel_values"][:, 2:], *args, memory=s1)  # s1 not mutated
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    assert isinstance(s1, MemoryState) and s1.frames_seen == 2
    assert not hasattr(model, "visual_memory_bank") and not any("memory" in n for n, _ in model.named_buffers())


def test_memory_gradients_reach_every_frame(instructblip_dir):
    """With memory_gradients the vision features of early frames get gradients; by default not."""
    model = load(instructblip_dir, memory_bank_length=2).train()
    model.freeze_for_training(train_vision=True)
    inputs = batch(t=4)
    labels = inputs["input_ids"].clone()
    labels[:, : model.config.num_query_tokens] = -100
    seen = []

    def keep(module, args, output):
        output.last_hidden_state.retain_grad() if output.last_hidden_state.requires_grad else None
        seen.append(output.last_hidden_state)

    hook = model.vision_model.register_forward_hook(keep)
    with torch.no_grad():
        default = model(**inputs, labels=labels).loss
    model(**inputs, labels=labels, memory_gradients=True).loss.backward()
    hook.remove()
    chunk = seen[-1]  # all 4 frames went through the vision model in one chunk
    assert chunk.grad is not None and chunk.grad.shape[0] == 2 * 4
    per_frame = chunk.grad.view(2, 4, *chunk.shape[1:]).abs().sum((0, 2, 3))
    assert (per_frame > 0).all()  # every frame, not just the last
    with torch.no_grad():  # the same model value either way (only the gradient path differs)
        torch.manual_seed(0)
        model.eval()
        torch.testing.assert_close(model(**inputs, labels=labels).loss, model(**inputs, labels=labels, memory_gradients=True).loss)


def test_a_model_built_from_scratch_has_distinct_query_tokens(instructblip_dir):
    """transformers zeroes the query tokens; from scratch, identical queries receive identical
    gradients and stay identical forever, so MA-LMM draws them N(0, 0.02) as LAVIS does."""
    from tests.models.malmm.conftest import tiny_instructblip_config
    from mixma.models.malmm import MALMMConfig

    torch.manual_seed(0)
    model = MALMM(MALMMConfig(**tiny_instructblip_config().to_dict(), memory_bank_length=2))
    tokens = model.query_tokens[0]
    assert 0.01 < tokens.std().item() < 0.03
    assert torch.cdist(tokens, tokens).add(torch.eye(len(tokens))).min() > 0  # no two queries alike
    inputs = batch(t=2)
    with torch.no_grad():
        queries, _ = model.encode_frames(inputs["pixel_values"], inputs["qformer_input_ids"], inputs["qformer_attention_mask"])
    assert not torch.allclose(queries[:, 0], queries[:, 1])  # so the LLM sees different tokens
    loaded = load(instructblip_dir)  # a checkpoint's own tokens are kept, not redrawn
    saved = InstructBlipForConditionalGeneration.from_pretrained(instructblip_dir).query_tokens
    assert torch.equal(loaded.query_tokens, saved)


# -- ablations (MA-LMM Tables 6 and 8, Fig. 3) --------------------------------------------------------


def encode(model: MALMM, inputs: dict, **kwargs):
    return model.encode_frames(inputs["pixel_values"], inputs["qformer_input_ids"], inputs["qformer_attention_mask"], **kwargs)


@pytest.mark.parametrize("banks, self_sees, cross_sees", [("visual", "own", "past"), ("query", "past", "own"), ("none", "own", "own")])
def test_memory_components_equal_their_direct_statement(instructblip_dir, banks, self_sees, cross_sees):
    model = load(instructblip_dir, memory_bank_length=5, memory_banks=banks)
    inputs = batch(t=5, seed=4)
    with torch.no_grad():
        model.temporal_embedding.weight.normal_(0, 0.5)
        ours, state = encode(model, inputs, total_frames=5)
        direct = reference_last_queries(model, inputs, self_sees, cross_sees)
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)
    assert (state.visual is not None) == (banks == "visual") and (state.queries is not None) == (banks == "query")


def test_visual_only_never_touches_the_query_banks(instructblip_dir, monkeypatch):
    from mixma.models.malmm.streaming import StreamingBank

    model = load(instructblip_dir, memory_bank_length=2, memory_banks="visual")
    widths = []
    push = StreamingBank.push
    monkeypatch.setattr(StreamingBank, "push", lambda self, x: widths.append(x.shape[-1]) or push(self, x))
    with torch.no_grad():
        model(**batch(t=4))
    assert widths and set(widths) == {model.config.vision_config.hidden_size}  # visual bank pushes only


def test_no_memory_sees_the_last_frame_only(instructblip_dir, hf):
    model = load(instructblip_dir, memory_bank_length=3, memory_banks="none")
    inputs = batch(t=4)
    other = {**inputs, "pixel_values": inputs["pixel_values"].clone()}
    other["pixel_values"][:, :3] = torch.randn_like(other["pixel_values"][:, :3])  # earlier frames changed
    with torch.no_grad():
        ours = model(**inputs).logits
        theirs = hf(**{**inputs, "pixel_values": inputs["pixel_values"][:, -1]}).logits  # temporal embedding is zero
        torch.testing.assert_close(model(**other).logits, ours, rtol=0, atol=0)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_fifo_keeps_the_newest_frames_and_concat_keeps_all(instructblip_dir):
    inputs = batch(t=6, seed=2)
    fifo = load(instructblip_dir, memory_bank_length=2, compression="fifo")
    concat = load(instructblip_dir, memory_bank_length=2, compression="concat")
    with torch.no_grad():
        features = fifo._frame_features(inputs["pixel_values"], 0, 6)  # [B, T, P, C]
        _, kept = encode(fifo, inputs, total_frames=6)
        _, grown = encode(concat, inputs, total_frames=6)
    assert torch.equal(kept.visual.values, features[:, -2:]) and torch.all(kept.visual.sizes == 1)
    assert len(grown.visual) == 6 and torch.equal(grown.visual.values, features)
    assert all(len(q) == 6 for q in grown.queries)


def test_mean_pooling_needs_the_video_length(instructblip_dir):
    model = load(instructblip_dir, memory_bank_length=2, compression="mean")
    inputs = batch(t=5)
    with torch.no_grad():
        features = model._frame_features(inputs["pixel_values"], 0, 5)
        _, state = encode(model, inputs, total_frames=5)
        assert model(**inputs).logits.isfinite().all()
        with pytest.raises(ValueError, match="needs its length"):
            encode(model, inputs)
    # 5 frames in 2 segments: frames 0-2 and 3-4 (floor(f * 2 / 5))
    torch.testing.assert_close(state.visual.values, torch.stack([features[:, :3].mean(1), features[:, 3:].mean(1)], 1))


@pytest.mark.parametrize("compression", ["mbc", "fifo", "mean"])
def test_one_slot_banks_work(instructblip_dir, compression):
    model = load(instructblip_dir, memory_bank_length=1, compression=compression)
    inputs = batch(t=5)
    with torch.no_grad():
        assert model(**inputs).logits.isfinite().all()
        _, state = encode(model, inputs, total_frames=5)
    assert len(state.visual) == 1 and all(len(q) == 1 for q in state.queries)
    assert torch.all(state.visual.sizes == (1 if compression == "fifo" else 5))


def test_ablation_options_are_validated_saved_and_loaded(instructblip_dir, tmp_path):
    from mixma.models.malmm import MALMMConfig

    base = MALMMConfig.from_pretrained(instructblip_dir).to_dict()
    for bad, match in [({"memory_banks": "text"}, "memory_banks must be one of"), ({"compression": "tome"}, "compression must be one of"),
                       ({"memory_bank_length": 0, "compression": "fifo"}, "turns memory off"),
                       ({"post_layernorm_eps": 0.0}, "post_layernorm_eps")]:
        with pytest.raises(ValueError, match=match):
            MALMMConfig(**{**base, **bad})
    model = load(instructblip_dir, memory_bank_length=3, memory_banks="query", compression="fifo", post_layernorm_eps=1e-5)
    assert model.vision_model.post_layernorm.eps == 1e-5
    model.save_pretrained(tmp_path)
    again = MALMM.from_pretrained(tmp_path)
    assert (again.config.memory_banks, again.config.compression, again.config.memory_bank_length) == ("query", "fifo", 3)
    assert again.vision_model.post_layernorm.eps == 1e-5
    assert load(instructblip_dir).vision_model.post_layernorm.eps == 1e-6  # transformers' value unless asked


@pytest.mark.parametrize("compression", ["mbc", "mean", "concat"])
def test_streaming_banks_equal_the_functional_path(instructblip_dir, compression):
    """With gradients the banks are `Bank` values, without them `StreamingBank`s: same banks, and
    outputs equal up to the order attention sums its keys in."""
    model = load(instructblip_dir, memory_bank_length=2, compression=compression)
    inputs = batch(t=7, seed=6)
    with torch.no_grad():
        streamed, s_state = encode(model, inputs, total_frames=7)
    with torch.enable_grad():
        functional, f_state = encode(model, inputs, total_frames=7)
    torch.testing.assert_close(streamed, functional.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip([s_state.visual, *s_state.queries], [f_state.visual, *f_state.queries]):
        torch.testing.assert_close(a.values, b.values, rtol=1e-5, atol=1e-6)
        assert torch.equal(a.sizes, b.sizes.to(a.sizes.dtype))
