"""The GAN's loss functions, all pure: adversarial losses and the class-conditional
distribution-matching term (its distances live in :mod:`gandistill.distances`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from gandistill.distances import mean_feature_distance, mmd2

# --- adversarial losses -----------------------------------------------------------------------


def hinge_d(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge loss of the discriminator (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()


def ns_d(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Non-saturating (logistic) loss of the discriminator (Goodfellow et al. 2014)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def ns_g(fake_logits: Tensor) -> Tensor:
    return F.softplus(-fake_logits).mean()


ADVERSARIAL: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "hinge": (hinge_d, hinge_g),
    "ns": (ns_d, ns_g),
}

# --- distribution matching ----------------------------------------------------------------------

DIST_TERMS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mmd": mmd2,
    "fm": mean_feature_distance,
}


def class_conditional(
    term: Callable[[Tensor, Tensor], Tensor],
    real: Tensor,
    real_labels: Tensor,
    fake: Tensor,
    fake_labels: Tensor,
) -> Tensor:
    """Average of ``term(real_c, fake_c)`` over the classes present in both batches."""
    losses = []
    for c in torch.unique(real_labels):
        fake_c = fake[fake_labels == c]
        if fake_c.shape[0] == 0:
            continue
        losses.append(term(real[real_labels == c], fake_c))
    if not losses:
        return fake.sum() * 0.0
    return torch.stack(losses).mean()
