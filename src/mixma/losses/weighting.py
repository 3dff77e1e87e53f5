"""Meta-learned sample weighting (Meta-Weight-Net, as MAMA uses it), with a bi-level step that works.

A small MLP `V(ℓ; Θ)` maps a sample's (detached) loss to a weight in (0, 1). It is trained so that
one SGD step of the model on the *weighted* training loss lowers the *unweighted* loss on a small
clean meta set (a held-out split of the training data, never the validation or test set). Per
meta step, with model parameters `w`, learning rate `α`, training losses `ℓ_i` and meta batch `m`:

1. `ŵ(Θ) = w − α ∇_w Σ_i V(ℓ_i.detach(); Θ) ℓ_i / n` (virtual step, built with `create_graph`);
2. `Θ ← opt(∇_Θ mean_j ℓ_j^meta(ŵ(Θ)))`, second order, through step 1;
3. the real step uses `Σ_i V(ℓ_i; Θ_new).detach() ℓ_i / n`, returned by `MetaWeighting.step`.

Fixes against MAMA's code (`research/mama.md` §2.3): the virtual parameters really replace the
model's (via `torch.func.functional_call`), so the meta loss depends on `Θ` and the weighting net is
actually trained; the meta batch comes from a caller-supplied clean meta set, not the validation
split; the virtual model is built from the current parameters at every meta step.

`MetaWeightingConfig(method="direct")` replaces the net by the per-sample weights the same
bi-level objective asks for at this step ("learning to reweight", Ren et al. 2018): with `ε = 0`,
`ŵ(ε) = w − α ∇_w Σ_i ε_i ℓ_i / n`, the weights are `max(0, −∂ℓ^meta(ŵ)/∂ε_i)`, i.e. how well pair
`i`'s gradient agrees with the meta batch's (`(α/n) ∇ℓ^meta · ∇ℓ_i`), rescaled to average 1. It
sees more than a loss → weight net can (which cannot tell a wrong caption from a hard correct one
of the same loss), but one batch's alignments are noisy: on our noisy-caption benchmark it did
worse than the net, because clipping keeps the positive half of the wrong pairs' large, scattered
gradients and leaves a third of each batch carrying the weight (experiments/README.md, MAMA study).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.func import functional_call

LossFn = Callable[[Mapping[str, Tensor], Any], Tensor]
"""`loss_fn(tensors, batch) -> [n]`: per-sample losses of `batch` with the model's parameters and
buffers replaced by `tensors` (a name → tensor mapping for `torch.func.functional_call`)."""

NORMALIZATIONS = ("none", "mean")
METHODS = ("net", "direct")


@dataclass(frozen=True)
class MetaWeightingConfig:
    """Options of `MetaWeighting`; every default lives here."""

    # "net": a loss → weight MLP trained bi-level (Meta-Weight-Net, as MAMA); "direct": each meta
    # step's weights are the clipped per-sample meta gradients themselves (learning to reweight; no
    # net, so `hidden`, `lr` and `weight_decay` are unused; needs normalize="mean", meta_interval=1)
    method: Literal["net", "direct"] = "net"
    hidden: int = 100  # width of the weighting MLP (MW-Net; MAMA's code uses 64)
    lr: float = 1e-3  # Adam learning rate of the weighting net (MW-Net; MAMA: AdamW 1e-5)
    weight_decay: float = 1e-4  # Adam weight decay of the weighting net (MW-Net)
    normalize: Literal["none", "mean"] = "none"  # "none": raw sigmoid weights (MW-Net); "mean": rescaled to average 1
    meta_interval: int = 1  # full bi-level step every k-th `step` call; the others only weight
    # start: how many first `step` calls use the plain loss (every weight 1, the net untouched).
    # Early on, a high-loss pair's gradient aligns with the meta gradient whether or not its label
    # is wrong, so a net trained from the first step learns to favour noisy pairs (measured in
    # experiments/README.md, MAMA study); a warm-up lets the model learn first. (On the synthetic
    # benchmark it did not change the result: see there.)
    start: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "direct" and (self.normalize != "mean" or self.meta_interval != 1):
            # raw direct weights are gradient dot products scaled by lr / n: only their ratios mean
            # anything; and they exist only on the steps whose meta gradient made them
            raise ValueError("method 'direct' needs normalize='mean' and meta_interval=1, "
                             f"got {self.normalize!r} and {self.meta_interval}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.hidden < 1 or self.meta_interval < 1:
            raise ValueError(f"hidden and meta_interval must be >= 1, got {self.hidden}, {self.meta_interval}")
        if self.start < 0:
            raise ValueError(f"start must be >= 0, got {self.start}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")


class WeightNet(nn.Module):
    """Loss → weight MLP: Linear(1, hidden), ReLU, Linear(hidden, 1), sigmoid."""

    def __init__(self, hidden: int = MetaWeightingConfig.hidden):
        super().__init__()
        self.hidden = nn.Linear(1, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, losses: Tensor) -> Tensor:
        """Weights in (0, 1), `[n]` from `[n]` losses (not detached here: the caller decides)."""
        return torch.sigmoid(self.out(torch.relu(self.hidden(losses[:, None])))).squeeze(1)


def normalize_weights(weights: Tensor, mode: str) -> Tensor:
    """Apply a `MetaWeightingConfig.normalize` mode to `[n]` weights.

    Args:
        weights: `[n]` positive weights.
        mode: "none" (unchanged) or "mean" (divided by their mean, so they average 1).

    Returns:
        `[n]` weights, differentiable in the input.

    Raises:
        ValueError: for an unknown mode.
    """
    if mode == "none":
        return weights
    if mode == "mean":
        return weights / weights.mean().clamp_min(torch.finfo(weights.dtype).tiny)
    raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {mode!r}")


def virtual_parameters(params: Mapping[str, Tensor], loss: Tensor, lr: float) -> dict[str, Tensor]:
    """One differentiable SGD step: `p − lr · ∂loss/∂p` for every parameter that requires grad.

    The gradient is built with `create_graph=True`, so the result can be differentiated again
    (e.g. with respect to sample weights inside `loss`). Parameters that do not require grad
    (frozen) or that `loss` does not depend on (unused) are returned unchanged.

    Args:
        params: name → parameter.
        loss: scalar built from `params`.
        lr: step size.

    Returns:
        name → virtual parameter, for every name in `params`.
    """
    names = [n for n, p in params.items() if p.requires_grad]
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True, allow_unused=True)
    stepped = {n: params[n].add(g, alpha=-lr) for n, g in zip(names, grads) if g is not None}  # one op: p − lr·g
    return {n: stepped.get(n, p) for n, p in params.items()}


def functional_loss(model: nn.Module, per_sample: Callable[[Any, Any], Tensor]) -> LossFn:
    """Build a `LossFn` for batches `(inputs, targets)`: `per_sample(model(*inputs), targets)`.

    Args:
        model: the model; its parameters are replaced per call with `functional_call`.
        per_sample: `(outputs, targets) -> [n]` losses.

    Returns:
        `loss_fn(tensors, (inputs, targets))`; `inputs` is a tuple of positional arguments or a
        single tensor.
    """

    def loss_fn(tensors: Mapping[str, Tensor], batch: Any) -> Tensor:
        inputs, targets = batch
        args = inputs if isinstance(inputs, tuple) else (inputs,)
        return per_sample(functional_call(model, dict(tensors), args), targets)

    return loss_fn


@dataclass
class MetaStep:
    """What `MetaWeighting.step` returns."""

    loss: Tensor  # scalar Σ w_i ℓ_i / n with detached weights: backpropagate it for the real step
    losses: Tensor  # [n] per-sample training losses (with graph)
    weights: Tensor  # [n] detached weights from the (updated) weighting net
    meta_loss: Tensor | None  # detached meta-set loss of the virtual model; None when skipped


def _check_losses(losses: Tensor, what: str) -> None:
    if losses.ndim != 1 or losses.shape[0] == 0:
        raise ValueError(f"{what} must return per-sample losses [n] with n >= 1, got shape {tuple(losses.shape)}")


class MetaWeighting:
    """The weighting net, its optimizer and the meta-step counter; checkpoint with `state_dict`.

    Args:
        config: options (default `MetaWeightingConfig()`).
        optimizer: factory `params -> Optimizer` for the weighting net (default: Adam with
            `config.lr` and `config.weight_decay`); unused with method "direct", which has no net.
        device: where the weighting net lives.
    """

    def __init__(
        self,
        config: MetaWeightingConfig | None = None,
        *,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        device: torch.device | str | None = None,
    ):
        self.config = config or MetaWeightingConfig()
        self.net: WeightNet | None = None  # none with method "direct"
        self.optimizer: torch.optim.Optimizer | None = None
        if self.config.method == "net":
            self.net = WeightNet(self.config.hidden).to(device)
            if optimizer is None:
                self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
            else:
                self.optimizer = optimizer(self.net.parameters())
        self.calls = 0  # `step` calls so far; bi-level updates at calls = start, start + interval, ...

    def _raw_weights(self, losses: Tensor) -> Tensor:
        like = next(self.net.parameters())
        weights = self.net(losses.detach().to(device=like.device, dtype=like.dtype))
        return normalize_weights(weights, self.config.normalize).to(losses.device)

    def weights(self, losses: Tensor) -> Tensor:
        """Detached weights of `[n]` losses from the current net (normalised per the config).

        Raises:
            ValueError: if `losses` is not `[n]` with n >= 1.
            RuntimeError: with method "direct": its weights come from a meta step's gradients,
                not from the losses.
        """
        if self.net is None:
            raise RuntimeError("method 'direct' has no loss → weight function: weights come from MetaWeighting.step")
        _check_losses(losses, "losses")
        with torch.no_grad():
            return self._raw_weights(losses)

    def step(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_batch: Any,
        meta_batch: Any,
        lr: float,
        *,
        virtual: Collection[str] | None = None,
    ) -> MetaStep:
        """Weight a training batch, updating the weighting net first on every k-th call.

        The first `config.start` calls return the plain mean (every weight 1). After that, on a
        meta call (every `meta_interval`-th, the first at `start`) this runs the bi-level update of
        the module docstring; the virtual model's forward uses copies of the model's buffers, so e.g.
        batch-norm statistics are not updated by the meta batch. Other calls only weight the
        training losses with the current net. With method "direct" every call after the warm-up
        computes its own weights from the meta gradient (module docstring) instead. The model's
        parameters get no gradients here:
        backpropagate `MetaStep.loss` and step the model's optimizer as usual.

        Args:
            model: the model; its `named_parameters()` are what `loss_fn` receives.
            loss_fn: per-sample loss with explicit parameters (see `LossFn`, `functional_loss`).
            train_batch: the training batch, passed to `loss_fn` as is.
            meta_batch: a batch of the clean meta set (held out from training; never validation).
            lr: the model's current learning rate, used for the virtual SGD step.
            virtual: names of the parameters the virtual step updates (default: all that require
                grad). A subset such as the last layers or adapters makes the meta step cheaper
                (an approximation: the others stay fixed in the virtual model).

        Returns:
            `MetaStep` with the loss to backpropagate, the per-sample losses and their weights.

        Raises:
            ValueError: if `lr <= 0`, `virtual` names an unknown parameter, or `loss_fn` does not
                return `[n]` losses.
        """
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        params = dict(model.named_parameters())
        if virtual is not None and not set(virtual) <= params.keys():
            raise ValueError(f"virtual names unknown parameters: {sorted(set(virtual) - params.keys())}")
        losses = loss_fn(params, train_batch)
        _check_losses(losses, "loss_fn on the training batch")
        if self.calls < self.config.start:  # warm-up on the plain loss
            self.calls += 1
            return MetaStep(loss=losses.mean(), losses=losses, weights=torch.ones_like(losses), meta_loss=None)
        meta_loss = None
        if self.net is None:  # method "direct": every call is a meta call (meta_interval is 1)
            weights, meta_loss = self._direct_weights(model, params, losses, loss_fn, meta_batch, lr, virtual)
        else:
            if (self.calls - self.config.start) % self.config.meta_interval == 0:
                meta_loss = self._update_net(model, params, losses, loss_fn, meta_batch, lr, virtual)
            weights = self.weights(losses)
        self.calls += 1
        return MetaStep(loss=(weights * losses).mean(), losses=losses, weights=weights, meta_loss=meta_loss)

    @staticmethod
    def _virtual_meta_loss(model, params, losses, weights, loss_fn, meta_batch, lr, virtual) -> Tensor:
        """The meta batch's mean loss after a virtual SGD step on `Σ weights · losses / n`."""
        stepped = params if virtual is None else {n: params[n] for n in virtual}
        stepped = virtual_parameters(stepped, (weights * losses).mean(), lr)
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        meta_losses = loss_fn({**params, **stepped, **buffers}, meta_batch)
        _check_losses(meta_losses, "loss_fn on the meta batch")
        return meta_losses.mean()

    def _direct_weights(self, model, params, losses, loss_fn, meta_batch, lr, virtual) -> tuple[Tensor, Tensor]:
        epsilon = torch.zeros_like(losses, requires_grad=True)  # [n]; at 0 the virtual model is the model
        meta_loss = self._virtual_meta_loss(model, params, losses, epsilon, loss_fn, meta_batch, lr, virtual)
        # as in _update_net, grad leaves the training losses' forward graph for the real step
        (gradient,) = torch.autograd.grad(meta_loss, epsilon)
        if not gradient.any():  # a flat meta loss (e.g. one pair, no negatives) says nothing: plain mean
            return torch.ones_like(losses), meta_loss.detach()
        # pairs that would raise the meta loss get 0; when every pair would, all weights stay 0 and
        # the batch teaches nothing (as learning to reweight)
        weights = normalize_weights((-gradient).clamp_min(0), self.config.normalize)
        return weights, meta_loss.detach()

    def _update_net(self, model, params, losses, loss_fn, meta_batch, lr, virtual) -> Tensor:
        weights = self._raw_weights(losses)  # [n], a function of Θ (not of the model)
        meta_loss = self._virtual_meta_loss(model, params, losses, weights, loss_fn, meta_batch, lr, virtual)
        net_params = list(self.net.parameters())
        # grad, not backward: the model's .grad must not receive these second-order terms. Only
        # the nodes leading to the net are run and freed; the training losses' forward graph
        # (reached from the virtual step only on the way to the model's leaves) survives for the
        # real step's backward.
        grads = torch.autograd.grad(meta_loss, net_params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(net_params, grads)]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # every rank meta-learns from its own batches: average so the nets stay identical
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            grads = [chunk.view_as(g) for chunk, g in zip(flat.split([g.numel() for g in grads]), grads)]
        self.optimizer.zero_grad(set_to_none=True)
        for p, g in zip(net_params, grads):
            p.grad = g
        self.optimizer.step()
        return meta_loss.detach()

    def state_dict(self) -> dict[str, Any]:
        """Net, optimizer (method "net" only) and counter state, for checkpoints."""
        if self.net is None:
            return {"calls": self.calls}
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), "calls": self.calls}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned.

        Raises:
            KeyError: if a part is missing.
        """
        if self.net is not None:
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.calls = int(state["calls"])
