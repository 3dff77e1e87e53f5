"""Losses: MAMA's angular-margin contrastive loss and meta-learned sample weighting."""

from mixma.losses.contrastive import (
    AngularMarginConfig,
    AngularMarginLoss,
    angular_margin_loss,
    gather_features,
    margin_cosine,
)
from mixma.losses.weighting import (
    MetaStep,
    MetaWeighting,
    MetaWeightingConfig,
    WeightNet,
    functional_loss,
    normalize_weights,
    virtual_parameters,
)

__all__ = [
    "AngularMarginConfig",
    "AngularMarginLoss",
    "MetaStep",
    "MetaWeighting",
    "MetaWeightingConfig",
    "WeightNet",
    "angular_margin_loss",
    "functional_loss",
    "gather_features",
    "margin_cosine",
    "normalize_weights",
    "virtual_parameters",
]
