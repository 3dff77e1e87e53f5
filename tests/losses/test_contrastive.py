"""Angular-margin loss against independent statements: an acos-based reference, CLIP, gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mixma.losses import contrastive
from mixma.losses.contrastive import (
    AngularMarginConfig,
    AngularMarginLoss,
    angular_margin_loss,
    gather_features,
    margin_cosine,
)


def embeddings(batch: int, dim: int = 8, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g, dtype=dtype), torch.randn(batch, dim, generator=g, dtype=dtype)


def reference_loss(video, text, margin, scale, margin_on_close_negatives=False):
    """Slow statement of the loss: acos angles, explicit log-sum-exp loops, float64.

    With `margin_on_close_negatives` it reproduces MAMA's code quirk (negatives with θ <= margin
    also get θ − margin).
    """
    v = video.double() / video.double().norm(dim=1, keepdim=True)
    t = text.double() / text.double().norm(dim=1, keepdim=True)
    theta = torch.acos((v @ t.T).clamp(-1, 1))
    n = len(v)
    logits = torch.empty(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            shift = i == j or (margin_on_close_negatives and theta[i, j] <= margin)
            logits[i, j] = scale * torch.cos(theta[i, j] - margin * shift)
    losses = []
    for i in range(n):
        v2t = -(logits[i, i] - torch.logsumexp(logits[i, :], 0))
        t2v = -(logits[i, i] - torch.logsumexp(logits[:, i], 0))
        losses.append(0.5 * (v2t + t2v))
    return torch.stack(losses)


def clip_loss(video, text, scale):
    """The standard CLIP loss (mean over the batch and both directions)."""
    logits = scale * F.normalize(video, dim=1) @ F.normalize(text, dim=1).T
    labels = torch.arange(len(video))
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def test_margin_cosine_is_cos_of_the_shifted_angle():
    c = torch.linspace(-0.999, 0.999, 201, dtype=torch.float64)
    for m in (0.0, 0.05, 0.3, 1.0):
        torch.testing.assert_close(margin_cosine(c, m), torch.cos(torch.acos(c) - m))
    assert torch.equal(margin_cosine(c, 0.0), c)  # exactly the cosine without a margin


@pytest.mark.parametrize("scale", [1.0, 20.0, 100.0])
def test_zero_margin_mean_is_the_clip_loss(scale):
    video, text = embeddings(6)
    losses = angular_margin_loss(video, text, 0.0, scale)
    assert losses.shape == (6,)
    torch.testing.assert_close(losses.mean(), clip_loss(video, text, scale))


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.5, 2.0])
def test_matches_the_acos_reference_values_and_gradients(margin):
    video, text = embeddings(5, seed=1)
    video.requires_grad_(True)
    text.requires_grad_(True)
    scale = 10.0
    ours = angular_margin_loss(video, text, margin, scale)
    expected = reference_loss(video, text, margin, scale)
    torch.testing.assert_close(ours, expected)
    weights = torch.arange(1.0, 6.0, dtype=torch.float64)  # a non-uniform reduction checks every row
    got = torch.autograd.grad((weights * ours).sum(), (video, text))
    want = torch.autograd.grad((weights * expected).sum(), (video, text))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_gradcheck_against_finite_differences():
    video, text = embeddings(4, dim=5, seed=2)
    scale = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
    inputs = (video.requires_grad_(True), text.requires_grad_(True), scale)
    assert torch.autograd.gradcheck(lambda v, t, s: angular_margin_loss(v, t, 0.2, s), inputs)


def test_margin_is_applied_to_positives_only():
    """A negative closer than the margin keeps its plain cosine (MAMA's code shifted it too)."""
    video, text = embeddings(4, seed=3)
    video[0] = text[1] + 0.01 * video[0]  # negative pair (0, 1) at an angle far below the margin
    margin, scale = 0.3, 10.0
    v, t = F.normalize(video, dim=1), F.normalize(text, dim=1)
    assert torch.acos(v[0] @ t[1]) < margin
    ours = angular_margin_loss(video, text, margin, scale)
    torch.testing.assert_close(ours, reference_loss(video, text, margin, scale))
    quirk = reference_loss(video, text, margin, scale, margin_on_close_negatives=True)
    assert not torch.allclose(ours, quirk)


@pytest.mark.parametrize("margin", [0.0, 0.1])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_gradients_are_finite_at_cosine_plus_minus_one(margin, sign):
    eye = torch.eye(4)  # one-hot rows: positive cosines exactly ±1, negatives exactly 0
    video = eye.clone().requires_grad_(True)
    text = (sign * eye).requires_grad_(True)
    losses = angular_margin_loss(video, text, margin, 100.0)
    gv, gt = torch.autograd.grad(losses.sum(), (video, text))
    assert torch.isfinite(losses).all() and torch.isfinite(gv).all() and torch.isfinite(gt).all()


def test_identical_embeddings_give_finite_gradients_where_acos_does_not():
    emb = torch.randn(6, 16)
    video = emb.clone().requires_grad_(True)
    text = emb.clone().requires_grad_(True)
    losses = angular_margin_loss(video, text, 0.1, 100.0)
    grads = torch.autograd.grad(losses.sum(), (video, text))
    assert all(torch.isfinite(g).all() for g in grads)

    # the acos route at an exact cosine of 1 (MAMA's code clamps to [-1, 1]): infinite derivative
    c = torch.tensor(1.0, requires_grad=True)
    (g,) = torch.autograd.grad(torch.cos(torch.acos(c.clamp(-1, 1)) - 0.1), c)
    assert not torch.isfinite(g)


def test_rectangular_form_equals_rows_of_the_square_loss():
    video, text = embeddings(7, seed=4)
    video.requires_grad_(True)
    text.requires_grad_(True)
    square = angular_margin_loss(video, text, 0.2, 30.0)
    parts = []
    for lo, hi in ((0, 3), (3, 7)):
        part = angular_margin_loss(
            video[lo:hi], text[lo:hi], 0.2, 30.0, all_video_emb=video, all_text_emb=text, offset=lo
        )
        parts.append(part)
    torch.testing.assert_close(torch.cat(parts), square)
    got = torch.autograd.grad(torch.cat(parts).sum(), (video, text))
    want = torch.autograd.grad(square.sum(), (video, text))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_half_precision_input_is_computed_in_float32():
    video, text = embeddings(5, seed=5, dtype=torch.float32)
    half = angular_margin_loss(video.half(), text.half(), 0.1, 50.0)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, angular_margin_loss(video.half().float(), text.half().float(), 0.1, 50.0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(video=torch.zeros(4), text=torch.zeros(4, 3)), "2-D"),
        (dict(video=torch.zeros(0, 3), text=torch.zeros(0, 3)), "empty"),
        (dict(video=torch.zeros(4, 3), text=torch.zeros(5, 3)), "expected 4"),
        (dict(video=torch.zeros(4, 3), text=torch.zeros(4, 2)), "dims differ"),
        (dict(margin=-0.1), "margin"),
        (dict(margin=float("nan")), "margin"),
        (dict(scale=0.0), "scale"),
        (dict(all_video_emb=torch.zeros(8, 3)), "both"),
        (dict(all_video_emb=torch.zeros(8, 3), all_text_emb=torch.zeros(7, 3)), "expected 8"),
        (dict(all_video_emb=torch.zeros(8, 3), all_text_emb=torch.zeros(8, 3), offset=5), "offset"),
        (dict(all_video_emb=torch.zeros(8, 2), all_text_emb=torch.zeros(8, 2)), "local embedding dim"),
        (dict(offset=1), "offset"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    args = dict(video=torch.ones(4, 3), text=torch.ones(4, 3), margin=0.1, scale=10.0)
    args.update(kwargs)
    video, text, margin, scale = (args.pop(k) for k in ("video", "text", "margin", "scale"))
    with pytest.raises(ValueError, match=match):
        angular_margin_loss(video, text, margin, scale, **args)


def test_module_scale_is_learnable_and_clamped():
    loss = AngularMarginLoss(AngularMarginConfig(margin=0.1))
    torch.testing.assert_close(loss.scale, torch.tensor(100.0))
    video, text = embeddings(5, seed=6, dtype=torch.float32)
    torch.testing.assert_close(loss(video, text), angular_margin_loss(video, text, 0.1, 100.0))
    (g,) = torch.autograd.grad(loss(video, text).mean(), loss.log_scale)
    assert g != 0

    with torch.no_grad():
        loss.log_scale.fill_(10.0)  # above ln 200: the value in use is clamped ...
    torch.testing.assert_close(loss.scale, torch.tensor(200.0))
    loss.clamp_()  # ... and clamp_ brings the parameter itself back in range
    torch.testing.assert_close(loss.log_scale.detach(), torch.tensor(math.log(200.0)))
    with torch.no_grad():
        loss.log_scale.fill_(-3.0)
    torch.testing.assert_close(loss.scale, torch.tensor(1.0))

    fixed = AngularMarginLoss(AngularMarginConfig(learnable_scale=False, init_scale=20.0))
    assert not fixed.log_scale.requires_grad
    torch.testing.assert_close(fixed.scale, torch.tensor(20.0))


@pytest.mark.parametrize("kwargs", [dict(margin=-1.0), dict(init_scale=0.5), dict(init_scale=300.0)])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        AngularMarginConfig(**kwargs)


class FakeWorld:
    """Stands in for torch.distributed as seen by one rank of a two-rank group.

    `all_gather` fills the other rank's slot with `other` (padded like the real collective) and
    `all_reduce` adds `other_grad`, the gradient the other rank's loss sends to the gathered rows.
    """

    def __init__(self, rank, other, other_grad):
        self.rank, self.other, self.other_grad = rank, other, other_grad
        self.reduced = None

    def install(self, monkeypatch):
        dist = contrastive.dist
        monkeypatch.setattr(dist, "is_available", lambda: True)
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
        monkeypatch.setattr(dist, "get_rank", lambda group=None: self.rank)
        monkeypatch.setattr(dist, "all_gather", self.all_gather)
        monkeypatch.setattr(dist, "all_reduce", self.all_reduce)

    def all_gather(self, buckets, tensor, group=None):
        if tensor.dtype == torch.int64:  # the batch-size exchange
            other = torch.tensor([len(self.other)])
        else:
            other = torch.zeros_like(tensor)
            other[: len(self.other)] = self.other
        buckets[self.rank].copy_(tensor)
        buckets[1 - self.rank].copy_(other)

    def all_reduce(self, tensor, group=None):
        self.reduced = tensor.clone()
        tensor += self.other_grad


@pytest.mark.parametrize("rank", [0, 1])
def test_gather_keeps_the_local_graph_and_sums_remote_gradients(monkeypatch, rank):
    local_video, local_text = embeddings(3, dim=4, seed=7)
    other = torch.randn(5, 8, dtype=torch.float64)  # the other rank: 5 samples, video+text dims
    other_grad = torch.randn(8, 8, dtype=torch.float64)
    world = FakeWorld(rank, other, other_grad)
    world.install(monkeypatch)

    video = local_video.clone().requires_grad_(True)
    text = local_text.clone().requires_grad_(True)
    (all_video, all_text), offset = gather_features(video, text)
    assert offset == (0 if rank == 0 else 5)
    local = torch.cat([video, text], dim=1).detach()
    expected = torch.cat([local, other]) if rank == 0 else torch.cat([other, local])
    torch.testing.assert_close(torch.cat([all_video, all_text], dim=1), expected)

    probe = torch.randn(8, 8, dtype=torch.float64)  # d(loss)/d(gathered rows) of this rank's loss
    loss = (probe * torch.cat([all_video, all_text], dim=1)).sum()
    gv, gt = torch.autograd.grad(loss, (video, text))
    rows = slice(offset, offset + 3)
    # local rows: this rank's own gradient (through the re-inserted tensors) plus what the other
    # rank's loss sends for them; the local slice of the collective itself carried zero
    torch.testing.assert_close(torch.cat([gv, gt], dim=1), probe[rows] + other_grad[rows])
    assert torch.count_nonzero(world.reduced[rows]) == 0
    torch.testing.assert_close(
        torch.cat([world.reduced[: offset], world.reduced[offset + 3 :]]),
        torch.cat([probe[: offset], probe[offset + 3 :]]),
    )


def test_module_under_a_fake_group_returns_the_rows_of_the_global_loss(monkeypatch):
    video, text = embeddings(6, dim=4, seed=8, dtype=torch.float32)
    global_losses = angular_margin_loss(video, text, 0.05, 100.0)
    other = torch.cat([video[:2], text[:2]], dim=1)  # rank 0 holds samples 0-1, we are rank 1
    FakeWorld(1, other, torch.zeros(6, 8)).install(monkeypatch)
    local = AngularMarginLoss()(video[2:], text[2:])
    torch.testing.assert_close(local, global_losses[2:])
