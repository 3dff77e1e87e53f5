"""Meta-weighting: the bi-level step against a closed-form/finite-difference statement, and a toy task."""

from __future__ import annotations

import copy
import functools
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixma.losses.weighting import (
    MetaWeighting,
    MetaWeightingConfig,
    WeightNet,
    functional_loss,
    normalize_weights,
    virtual_parameters,
)


def bce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(outputs.squeeze(1), targets.to(outputs.dtype), reduction="none")


def gaussians(n: int, g: torch.Generator, dim: int = 2, separation: float = 1.5, dtype=torch.float32):
    """Two unit Gaussians at ±separation along the first axis; labels 0/1."""
    y = torch.randint(0, 2, (n,), generator=g)
    centre = torch.zeros(dim, dtype=dtype)
    centre[0] = separation
    return torch.randn(n, dim, generator=g, dtype=dtype) + (2 * y[:, None] - 1) * centre, y


def snapshot(module: nn.Module | None) -> list[torch.Tensor]:
    return [] if module is None else [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: nn.Module | None) -> bool:
    return module is not None and any(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


def test_weight_net_maps_losses_to_weights_in_the_unit_interval():
    net = WeightNet(hidden=100)
    weights = net(torch.linspace(0, 20, 50))
    assert weights.shape == (50,)
    assert ((weights > 0) & (weights < 1)).all()
    assert net.hidden.in_features == 1 and net.hidden.out_features == 100 and net.out.out_features == 1


def test_mean_normalisation_makes_weights_average_one():
    weights = torch.rand(10) + 0.01
    torch.testing.assert_close(normalize_weights(weights, "mean").mean(), torch.tensor(1.0))
    assert torch.equal(normalize_weights(weights, "none"), weights)
    with pytest.raises(ValueError, match="normalize"):
        normalize_weights(weights, "sum")


@pytest.mark.parametrize(
    "kwargs",
    [dict(normalize="l2"), dict(hidden=0), dict(meta_interval=0), dict(start=-1), dict(lr=0.0), dict(weight_decay=-1.0),
     dict(method="mlp"), dict(method="direct", normalize="none"), dict(method="direct", normalize="mean", meta_interval=2)],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        MetaWeightingConfig(**kwargs)


def test_virtual_parameters_are_one_sgd_step_and_skip_frozen_and_unused():
    model = nn.Linear(3, 1)
    frozen = nn.Parameter(torch.ones(2), requires_grad=False)
    unused = nn.Parameter(torch.ones(2))
    params = {**dict(model.named_parameters()), "frozen": frozen, "unused": unused}
    x = torch.randn(5, 3)
    loss = (model(x) ** 2).mean()
    virtual = virtual_parameters(params, loss, lr=0.1)
    grads = torch.autograd.grad((model(x) ** 2).mean(), [model.weight, model.bias])
    torch.testing.assert_close(virtual["weight"], model.weight - 0.1 * grads[0])
    torch.testing.assert_close(virtual["bias"], model.bias - 0.1 * grads[1])
    assert virtual["frozen"] is frozen and virtual["unused"] is unused
    assert virtual["weight"].grad_fn is not None  # differentiable: built with create_graph


def logistic_meta_problem(seed: int = 0):
    """A float64 logistic regression, a training batch and a meta batch."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Linear(2, 1).double()
    train = gaussians(16, g, dtype=torch.float64)
    train = (train[0], torch.where(torch.rand(16, generator=g) < 0.4, 1 - train[1], train[1]))
    meta = gaussians(8, g, dtype=torch.float64)
    return model, train, meta


def closed_form_meta_loss(
    net: nn.Module, model: nn.Linear, train, meta, lr: float, normalize: str, step_weight: bool = True
) -> torch.Tensor:
    """The meta objective written out for logistic regression, no autograd through the model.

    ∇_w Σ_i V_i ℓ_i / n = Σ_i V_i (σ(z_i) − y_i) x_i / n (and the same without x_i for the bias).
    With `step_weight=False` only the bias takes the virtual step.
    """
    (x, y), (xm, ym) = train, meta
    w, b = model.weight.detach()[0], model.bias.detach()[0]
    z = x @ w + b
    losses = F.binary_cross_entropy_with_logits(z, y.double(), reduction="none")
    v = normalize_weights(net(losses), normalize)
    residual = v * (torch.sigmoid(z) - y.double()) / len(y)
    w_hat, b_hat = w - lr * step_weight * (residual[:, None] * x).sum(0), b - lr * residual.sum()
    return F.binary_cross_entropy_with_logits(xm @ w_hat + b_hat, ym.double())


@pytest.mark.parametrize("normalize, virtual", [("none", None), ("mean", None), ("none", ("bias",))])
def test_meta_gradient_matches_finite_differences_of_the_closed_form(normalize, virtual):
    """The second-order gradient that reaches the weight net, checked numerically.

    With an SGD(lr=1) meta optimizer, the net's parameter change is exactly −∇_Θ meta loss.
    """
    model, train, meta = logistic_meta_problem()
    lr = 0.5
    weighting = MetaWeighting(
        MetaWeightingConfig(hidden=6, normalize=normalize), optimizer=lambda p: torch.optim.SGD(p, lr=1.0)
    )
    weighting.net.double()
    net_before = copy.deepcopy(weighting.net)
    result = weighting.step(model, functional_loss(model, bce), train, meta, lr, virtual=virtual)
    objective = functools.partial(
        closed_form_meta_loss, net_before, model, train, meta, lr, normalize, step_weight=virtual is None
    )
    torch.testing.assert_close(result.meta_loss, objective().detach())

    h = 1e-6
    for before, after in zip(net_before.parameters(), weighting.net.parameters()):
        numeric = torch.zeros_like(before)
        for k in range(before.numel()):
            with torch.no_grad():
                before.view(-1)[k] += h
                up = objective()
                before.view(-1)[k] -= 2 * h
                down = objective()
                before.view(-1)[k] += h
            numeric.view(-1)[k] = (up - down) / (2 * h)
        assert numeric.abs().max() > 0
        torch.testing.assert_close(before.detach() - after.detach(), numeric, rtol=1e-5, atol=1e-9)


def test_meta_step_updates_the_weight_net_but_not_when_the_virtual_model_ignores_it():
    """MAMA's bug: virtual parameters that never replace the model's leave the net untrained."""
    model, train, meta = logistic_meta_problem(seed=1)
    config = MetaWeightingConfig(weight_decay=0.0)  # so only a real meta-gradient moves the net
    weighting = MetaWeighting(config)
    before = snapshot(weighting.net)
    result = weighting.step(model, functional_loss(model, bce), train, meta, lr=0.5)
    assert result.meta_loss is not None and changed(before, weighting.net)

    def ignores_parameters(params, batch):  # like MAMA's no-op update: always the real model
        x, y = batch
        return bce(model(x), y)

    broken = MetaWeighting(config)
    before = snapshot(broken.net)
    broken.step(model, ignores_parameters, train, meta, lr=0.5)
    assert not changed(before, broken.net)


def test_returned_loss_uses_detached_weights_from_the_updated_net():
    model, train, meta = logistic_meta_problem(seed=2)
    weighting = MetaWeighting(MetaWeightingConfig(lr=0.1))
    result = weighting.step(model, functional_loss(model, bce), train, meta, lr=0.5)
    assert not result.weights.requires_grad
    torch.testing.assert_close(result.weights, weighting.weights(result.losses))  # the updated net
    torch.testing.assert_close(result.loss, (result.weights * result.losses).mean())
    assert all(p.grad is None for p in model.parameters())  # the meta step leaves the model's grads alone
    result.loss.backward()
    x, y = train
    expected = torch.autograd.grad((result.weights * bce(model(x), y)).mean(), model.weight)[0]
    torch.testing.assert_close(model.weight.grad, expected)


def test_constant_weights_with_mean_normalisation_give_the_plain_mean():
    model, train, meta = logistic_meta_problem(seed=3)
    weighting = MetaWeighting(MetaWeightingConfig(normalize="mean"))
    with torch.no_grad():
        weighting.net.out.weight.zero_()  # the net ignores the loss: equal weights
    losses = functional_loss(model, bce)(dict(model.named_parameters()), train)
    weights = weighting.weights(losses)
    torch.testing.assert_close(weights, torch.ones_like(weights))
    torch.testing.assert_close((weights * losses).mean(), losses.mean())


def run_calls(config: MetaWeightingConfig, calls: int):
    """`calls` meta steps on a fixed problem: (MetaWeighting, [MetaStep], [did the net change])."""
    model, train, meta = logistic_meta_problem(seed=4)
    weighting = MetaWeighting(config)
    loss_fn = functional_loss(model, bce)
    results, updated = [], []
    for _ in range(calls):
        before = snapshot(weighting.net)
        results.append(weighting.step(model, loss_fn, train, meta, lr=0.5))
        updated.append(changed(before, weighting.net))
    return weighting, results, updated


def test_meta_interval_updates_the_net_on_every_kth_call_only():
    _, results, updated = run_calls(MetaWeightingConfig(meta_interval=3, lr=0.01), 7)
    assert updated == [True, False, False, True, False, False, True]
    assert [r.meta_loss is not None for r in results] == updated


def test_warm_up_calls_return_the_plain_mean_and_leave_the_net_alone():
    weighting, results, updated = run_calls(MetaWeightingConfig(start=2, meta_interval=2, lr=0.01), 6)
    assert updated == [False, False, True, False, True, False]
    for result in results[:2]:
        torch.testing.assert_close(result.weights, torch.ones_like(result.losses))
        torch.testing.assert_close(result.loss, result.losses.mean())
        assert result.meta_loss is None
    assert not torch.equal(results[2].weights, torch.ones_like(results[2].losses))  # weighting has begun
    assert weighting.state_dict()["calls"] == 6


class FrozenUnusedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(2, 4).requires_grad_(False)
        self.norm = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 1)
        self.unused = nn.Linear(3, 3)  # never called: its gradients are None

    def forward(self, x):
        return self.head(self.norm(self.frozen(x)))


def test_frozen_unused_parameters_and_buffers_are_handled():
    torch.manual_seed(0)
    model = FrozenUnusedModel()
    g = torch.Generator().manual_seed(5)
    train, meta = gaussians(16, g), gaussians(8, g)
    reference = copy.deepcopy(model)
    reference(train[0])  # one training-mode forward: the running stats the step should leave

    weighting = MetaWeighting()
    result = weighting.step(model, functional_loss(model, bce), train, meta, lr=0.1)
    result.loss.backward()
    assert model.frozen.weight.grad is None and model.unused.weight.grad is None
    assert model.head.weight.grad is not None
    # the virtual model's forward on the meta batch ran on copies of the buffers
    torch.testing.assert_close(model.norm.running_mean, reference.norm.running_mean)
    assert model.norm.num_batches_tracked == 1


def test_state_dict_round_trip_resumes_identically():
    model, train, meta = logistic_meta_problem(seed=6)
    first = MetaWeighting(MetaWeightingConfig(meta_interval=2))
    loss_fn = functional_loss(model, bce)
    for _ in range(3):
        first.step(model, loss_fn, train, meta, lr=0.5)
    checkpoint = io.BytesIO()  # through a real save: state_dict() holds live references
    torch.save(first.state_dict(), checkpoint)
    checkpoint.seek(0)
    resumed = MetaWeighting(MetaWeightingConfig(meta_interval=2))
    resumed.load_state_dict(torch.load(checkpoint))
    assert resumed.calls == 3
    for weighting in (first, resumed):
        for _ in range(2):  # call 3 only weights, call 4 updates (Adam moments must match)
            weighting.step(model, loss_fn, train, meta, lr=0.5)
    for a, b in zip(first.net.parameters(), resumed.net.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_input_raises_value_error():
    model, train, meta = logistic_meta_problem()
    weighting = MetaWeighting()
    with pytest.raises(ValueError, match="lr"):
        weighting.step(model, functional_loss(model, bce), train, meta, lr=0.0)
    with pytest.raises(ValueError, match="per-sample"):
        weighting.step(model, lambda p, b: bce(model(b[0]), b[1]).mean(), train, meta, lr=0.1)
    with pytest.raises(ValueError, match="per-sample"):
        weighting.weights(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="unknown parameters"):
        weighting.step(model, functional_loss(model, bce), train, meta, lr=0.1, virtual=["head.weight"])


DIRECT = MetaWeightingConfig(method="direct", normalize="mean")


def test_direct_weights_are_the_clipped_alignments_of_per_sample_gradients_with_the_meta_gradient():
    """Learning to reweight, stated independently: w_i ∝ max(0, ∇ℓ_i · ∇L_meta), averaging 1."""
    model, train, meta = logistic_meta_problem(seed=7)
    weighting = MetaWeighting(DIRECT)
    result = weighting.step(model, functional_loss(model, bce), train, meta, lr=0.5)

    params = list(model.parameters())
    meta_gradient = torch.autograd.grad(bce(model(meta[0]), meta[1]).mean(), params)
    x, y = train
    alignments = torch.stack([
        sum((g * m).sum() for g, m in zip(torch.autograd.grad(bce(model(x[i : i + 1]), y[i : i + 1])[0], params),
                                          meta_gradient))
        for i in range(len(y))
    ])
    expected = alignments.clamp_min(0)
    expected = expected / expected.mean()
    assert (expected == 0).any() and (expected > 0).sum() >= 2  # some pairs clipped, some kept
    torch.testing.assert_close(result.weights, expected)
    torch.testing.assert_close(result.meta_loss, bce(model(meta[0]), meta[1]).mean().detach())  # ε = 0: the model
    torch.testing.assert_close(result.loss, (result.weights * result.losses).mean())
    assert not result.weights.requires_grad and all(p.grad is None for p in params)
    result.loss.backward()  # the real step still has the training losses' graph
    expected_grad = torch.autograd.grad((result.weights * bce(model(x), y)).mean(), model.weight)[0]
    torch.testing.assert_close(model.weight.grad, expected_grad)


def test_direct_method_has_no_net_checkpoints_its_counter_and_honours_warm_up():
    weighting, results, _ = run_calls(MetaWeightingConfig(method="direct", normalize="mean", start=1), 3)
    assert weighting.net is None and weighting.optimizer is None
    torch.testing.assert_close(results[0].weights, torch.ones_like(results[0].losses))  # warm-up
    assert results[0].meta_loss is None and all(r.meta_loss is not None for r in results[1:])
    with pytest.raises(RuntimeError, match="direct"):
        weighting.weights(results[0].losses.detach())
    checkpoint = io.BytesIO()
    torch.save(weighting.state_dict(), checkpoint)
    checkpoint.seek(0)
    resumed = MetaWeighting(MetaWeightingConfig(method="direct", normalize="mean", start=1))
    resumed.load_state_dict(torch.load(checkpoint))
    assert resumed.state_dict() == {"calls": 3}


def test_direct_weights_when_no_pair_helps_the_meta_batch_or_it_has_no_gradient():
    model, _, _ = logistic_meta_problem(seed=8)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    loss_fn = functional_loss(model, bce)
    x = torch.randn(1, 2, dtype=torch.float64).expand(3, 2)
    ones, zeros = torch.ones(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)
    # σ(0) = ½: each training pair's gradient is the exact opposite of the meta batch's: all weights 0
    result = MetaWeighting(DIRECT).step(model, loss_fn, (x, ones), (x, zeros), lr=0.5)
    assert torch.equal(result.weights, torch.zeros(3, dtype=torch.float64))
    # one meta example of each label: their gradients cancel, the meta batch says nothing: plain mean
    result = MetaWeighting(DIRECT).step(model, loss_fn, (x, ones), (x[:2], torch.tensor([0, 1])), lr=0.5)
    assert torch.equal(result.weights, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(result.loss, result.losses.mean())


def train_noisy_logistic(meta: bool | MetaWeightingConfig, seed: int, steps: int = 300, lr: float = 0.5):
    """Logistic regression on two Gaussians with 40% of the training labels flipped at random.

    `meta`: False for the plain mean, True for the net (weighting net lr 1e-2), or a config.
    """
    g = torch.Generator().manual_seed(seed)
    x, clean = gaussians(500, g)
    corrupt = torch.rand(500, generator=g) < 0.4
    y = torch.where(corrupt, 1 - clean, clean)
    meta_x, meta_y = gaussians(50, g)  # the small clean meta set
    test_x, test_y = gaussians(2000, g)

    torch.manual_seed(seed)
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    weighting = MetaWeighting(meta if isinstance(meta, MetaWeightingConfig) else MetaWeightingConfig(lr=1e-2))
    loss_fn = functional_loss(model, bce)
    corrupt_weights, clean_weights = [], []  # direct weights as training gave them
    for _ in range(steps):
        idx = torch.randint(0, 500, (100,), generator=g)
        if meta:
            result = weighting.step(model, loss_fn, (x[idx], y[idx]), (meta_x, meta_y), lr)
            corrupt_weights.append(result.weights[corrupt[idx]])
            clean_weights.append(result.weights[~corrupt[idx]])
            loss = result.loss
        else:
            loss = bce(model(x[idx]), y[idx]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = ((model(test_x)[:, 0] > 0).long() == test_y).float().mean().item()
        if weighting.net is None:  # no weighting function: the weights training used
            return accuracy, torch.cat(corrupt_weights).mean().item(), torch.cat(clean_weights).mean().item()
        weights = weighting.weights(bce(model(x), y))
    return accuracy, weights[corrupt].mean().item(), weights[~corrupt].mean().item()


@pytest.mark.parametrize("config", [True, DIRECT], ids=["net", "direct"])
def test_meta_weighting_down_weights_corrupted_labels_on_a_toy_problem(config):
    seeds = (0, 1, 2)
    plain = [train_noisy_logistic(False, s)[0] for s in seeds]
    weighted = [train_noisy_logistic(config, s) for s in seeds]
    for accuracy, corrupt_weight, clean_weight in weighted:
        assert corrupt_weight < 0.5 * clean_weight
    assert sum(w[0] for w in weighted) / len(seeds) >= sum(plain) / len(seeds)
    assert min(w[0] for w in weighted) > 0.9  # the Bayes accuracy here is Φ(1.5) ≈ 0.933
