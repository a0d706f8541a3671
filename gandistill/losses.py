"""Loss functions, all pure: adversarial losses and the distribution-matching terms.

Gradient-matching distances for distillation live here too once distillation lands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

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

BANDWIDTH_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def mmd2(x: Tensor, y: Tensor, scales: Sequence[float] = BANDWIDTH_SCALES) -> Tensor:
    """Biased (V-statistic) MMD² between feature sets with a multi-bandwidth Gaussian kernel.

    The kernel is ``Σ_s exp(-‖a − b‖² / (2 s² σ²))`` with σ² the median squared pairwise distance
    of the pooled features (detached, so the bandwidth does not chase the generator). The biased
    estimate is ≥ 0, exactly 0 for identical sets, and symmetric in ``x`` and ``y``.

    Args:
        x: features (N, D).
        y: features (M, D).
        scales: bandwidth multipliers.
    """
    xy = torch.cat([x, y])  # (N + M, D)
    d2 = torch.cdist(xy, xy).pow(2)
    sigma2 = d2.detach().median().clamp_min(1e-8)
    k = sum(torch.exp(-d2 / (2.0 * s * s * sigma2)) for s in scales)
    n = x.shape[0]
    return k[:n, :n].mean() + k[n:, n:].mean() - 2.0 * k[:n, n:].mean()


def mean_feature_distance(x: Tensor, y: Tensor) -> Tensor:
    """Feature matching (Salimans et al. 2016): squared distance of mean features."""
    return (x.mean(0) - y.mean(0)).pow(2).sum()


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
