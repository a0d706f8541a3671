"""Distances between two sets of features: kernel MMD² and the distance of their means.

Pure functions shared by the GAN's distribution-matching term and the evaluation metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

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
