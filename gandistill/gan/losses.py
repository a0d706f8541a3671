"""The GAN's loss functions, all pure: adversarial losses and the class-conditional
distribution-matching term (its distances live in :mod:`gandistill.distances`)."""

from __future__ import annotations

import math
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

# --- diversity ------------------------------------------------------------------------------------

MODE_SEEKING_EPS = 1e-5


def same_class_pairs(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Indices ``(a, b)`` of disjoint pairs of batch entries of one class: within each class,
    entries in batch order taken two at a time (an odd one out is left)."""
    order = torch.sort(labels, stable=True).indices
    sorted_labels = labels[order]
    first = torch.ones_like(sorted_labels, dtype=torch.bool)
    first[1:] = sorted_labels[1:] != sorted_labels[:-1]
    # position within its class run: even positions start a pair with the next entry
    run_start = torch.cummax(torch.where(first, torch.arange(len(labels)), 0), dim=0).values
    pos = torch.arange(len(labels)) - run_start
    starts = torch.nonzero((pos % 2 == 0)[:-1] & (sorted_labels[1:] == sorted_labels[:-1]))
    a = order[starts.squeeze(1)]
    return a, order[starts.squeeze(1) + 1]


def mode_seeking(fake: Tensor, z: Tensor, labels: Tensor, cap: float | None = None) -> Tensor:
    """The mode-seeking term of Mao et al. 2019 (MSGAN), to minimise: ``1 / (ratio + eps)`` with
    ``ratio`` the mean over same-class pairs of ``mean|G(z1) − G(z2)| / mean|z1 − z2|``. A
    generator whose samples of a class ignore their latents (within-class collapse) pays for it.

    ``cap`` bounds each pair's ratio (as the diversity-sensitive loss of Yang et al. 2019 does):
    a pair already as far apart as real images of a class are (:func:`real_pair_ratio`) gains
    nothing by moving further, which the unbounded term rewards with artefacts (blotches
    that make two samples differ in many pixels).
    """
    a, b = same_class_pairs(labels.cpu())
    if len(a) == 0:
        return fake.sum() * 0.0
    a, b = a.to(fake.device), b.to(fake.device)
    image_gap = (fake[a] - fake[b]).abs().flatten(1).mean(1)
    latent_gap = (z[a] - z[b]).abs().mean(1)
    ratio = image_gap / latent_gap
    if cap is not None:
        ratio = ratio.clamp(max=cap)
    return 1.0 / (ratio.mean() + MODE_SEEKING_EPS)


def real_pair_ratio(images: Tensor, labels: Tensor, generator: torch.Generator) -> float:
    """The mode-seeking ratio real data have: the mean ``|x1 − x2|`` (pixels in [−1, 1]) over
    random pairs of one class, divided by the mean ``|z1 − z2|`` of standard-normal latents
    (``2 / √π``). ``images`` are in [−1, 1]; classes with one image are skipped."""
    gaps = []
    for c in torch.unique(labels):
        x = images[labels == c].flatten(1).float()
        if len(x) < 2:
            continue
        order = torch.randperm(len(x), generator=generator)
        half = len(x) // 2
        gaps.append((x[order[:half]] - x[order[half : 2 * half]]).abs().mean())
    if not gaps:
        raise ValueError("the real pair ratio needs a class with two images")
    return float(torch.stack(gaps).mean()) / (2.0 / math.sqrt(math.pi))


# --- distribution matching ----------------------------------------------------------------------


def mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """The unbiased MMD² (:func:`~gandistill.distances.mmd2`): a class's generated samples are
    repelled from each other with their full weight, so clustering is not rewarded."""
    return mmd2(x, y, unbiased=True)


DIST_TERMS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mmd": mmd2_unbiased,
    "fm": mean_feature_distance,
}
DIST_MIN_SAMPLES = {"mmd": 2, "fm": 1}  # per class and batch, for the term to be defined


def class_conditional(
    term: Callable[[Tensor, Tensor], Tensor],
    real: Tensor,
    real_labels: Tensor,
    fake: Tensor,
    fake_labels: Tensor,
    min_samples: int = 1,
) -> Tensor:
    """Average of ``term(real_c, fake_c)`` over the classes with at least ``min_samples``
    images in both batches (2 for the unbiased MMD², which has no within-set pair otherwise)."""
    losses = []
    for c in torch.unique(real_labels):
        fake_c, real_c = fake[fake_labels == c], real[real_labels == c]
        if min(fake_c.shape[0], real_c.shape[0]) < min_samples:
            continue
        losses.append(term(real_c, fake_c))
    if not losses:
        return fake.sum() * 0.0
    return torch.stack(losses).mean()
