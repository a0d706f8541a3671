"""Distances between two sets of features (kernel MMD², the distance of their means) and the
spread within one set (mean pairwise distance, the intra-class diversity of generated images).

Pure functions shared by the GAN's distribution-matching term and the evaluation metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

BANDWIDTH_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def mmd2(
    x: Tensor, y: Tensor, scales: Sequence[float] = BANDWIDTH_SCALES, unbiased: bool = False
) -> Tensor:
    """MMD² between feature sets with a multi-bandwidth Gaussian kernel.

    The kernel is ``Σ_s exp(-‖a − b‖² / (2 s² σ²))`` with σ² the median squared pairwise distance
    of the pooled features (detached, so the bandwidth does not chase the generator). The biased
    (V-statistic) estimate is ≥ 0, exactly 0 for identical sets, and symmetric in ``x`` and ``y``.
    The unbiased (U-statistic) one leaves each set's self-pairs out of its within-set mean: its
    expectation is 0 for two samples of one distribution (it can be negative), and as a loss it
    keeps the full repulsion between a set's own samples, which the biased one weakens by
    (m − 1) / m and so rewards a small set for clustering.

    Args:
        x: features (N, D).
        y: features (M, D); with ``unbiased``, N and M are at least 2.
        scales: bandwidth multipliers.
        unbiased: the U-statistic instead of the V-statistic.
    """
    xy = torch.cat([x, y])  # (N + M, D)
    d2 = torch.cdist(xy, xy).pow(2)
    sigma2 = d2.detach().median().clamp_min(1e-8)
    k = sum(torch.exp(-d2 / (2.0 * s * s * sigma2)) for s in scales)
    n = x.shape[0]
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    if not unbiased:
        return kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    m = y.shape[0]
    if min(n, m) < 2:
        raise ValueError("the unbiased MMD² needs at least two samples in each set")
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * kxy.mean()


def mean_feature_distance(x: Tensor, y: Tensor) -> Tensor:
    """Feature matching (Salimans et al. 2016): squared distance of mean features."""
    return (x.mean(0) - y.mean(0)).pow(2).sum()


def mean_pairwise_distance(x: Tensor) -> Tensor:
    """Mean Euclidean distance between the distinct pairs of rows of ``x`` (N ≥ 2, ...)."""
    flat = x.flatten(1).float()
    n = flat.shape[0]
    if n < 2:
        raise ValueError("a pairwise distance needs at least two samples")
    return torch.cdist(flat, flat).sum() / (n * (n - 1))


def diversity_ratios(
    fake01: Tensor, fake_labels: Tensor, real01: Tensor, real_labels: Tensor, num_classes: int
) -> list[float]:
    """Intra-class diversity per class: the mean pairwise pixel distance among the generated
    images of class ``c`` divided by the same among real images of ``c``. About 1 for a
    generator that covers each class as widely as the data; a class whose samples are
    near-duplicates (within-class collapse) scores near 0. Class consistency and FID do not see
    this collapse.

    Args:
        fake01, real01: images in [0, 1] (N, C, H, W), at least two per class.
        fake_labels, real_labels: their classes (N,).
        num_classes: classes to score, ``0 .. num_classes - 1``.
    """
    return [
        float(
            mean_pairwise_distance(fake01[fake_labels == c])
            / mean_pairwise_distance(real01[real_labels == c]).clamp_min(1e-12)
        )
        for c in range(num_classes)
    ]
