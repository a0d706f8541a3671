"""Metrics that describe a distilled image set against real data; pure functions on tensors.

Three groups here: gradient similarity (what the set teaches a fresh network), distribution
(pixel MMD, sliced Wasserstein on features, divergences of class proportions and of model
outputs) and compression (counts and bytes); the comparisons of each distilled image with its
nearest real ones (structure, privacy) are in :mod:`gandistill.evaluation.nearest_real`. Each
function takes tensors that the caller has prepared (images in [0, 1], features from a
classifier, logits of trained models) and returns either one value as a 0-d tensor, per-image
values as a 1-d tensor, or, for the summaries, a dict of plain numbers keyed by the module-level
constants, ready for a report or TensorBoard.

This module imports no training code, so ``evaluate`` can use it without an import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gandistill.distances import mmd2

# result keys
KL, JS = "kl", "js"
COS_MEAN, COS_STD, L2_MEAN, L2_STD = "cos_mean", "cos_std", "l2_mean", "l2_std"
IMAGE_RATIO, IMAGE_BYTES_RATIO = "image_ratio", "image_bytes_ratio"
LATENT_BYTES_RATIO, LATENT_GENERATOR_BYTES_RATIO = "latent_bytes_ratio", "latent_gen_bytes_ratio"

EPS = 1e-12  # floor of probabilities inside logarithms

# --- distribution ------------------------------------------------------------------------------


def pixel_mmd(x: Tensor, y: Tensor) -> Tensor:
    """Biased MMD² between two image sets on flattened pixels (kernel of :func:`losses.mmd2`).

    Memory grows as (N + M)², so subsample large sets before calling.

    Args:
        x: images (N, C, H, W).
        y: images (M, C, H, W), same pixel scale as ``x``.
    """
    return mmd2(x.flatten(1).float(), y.flatten(1).float())


def _w2_squared_sorted(px: Tensor, py: Tensor) -> Tensor:
    """Exact squared W₂ between 1-D empirical distributions, column by column: (N, P), (M, P)
    sorted → (P,).

    The quantile functions are step functions with steps at i/N and j/M; on each interval of the
    merged steps both are constant, so the integral of their squared difference is a finite sum.
    For N == M this is the plain matching of order statistics.
    """
    n, m = px.shape[0], py.shape[0]

    def steps(k: int) -> Tensor:
        return torch.arange(1, k + 1, dtype=torch.float64, device=px.device) / k

    upper = torch.cat([steps(n), steps(m)]).sort().values  # (N + M,) ends of the intervals
    lower = torch.cat([upper.new_zeros(1), upper[:-1]])
    mid = 0.5 * (lower + upper)
    ix = (mid * n).long().clamp_max(n - 1)
    iy = (mid * m).long().clamp_max(m - 1)
    return ((px[ix] - py[iy]).pow(2) * (upper - lower).unsqueeze(1)).sum(0)


def sliced_wasserstein(
    fx: Tensor, fy: Tensor, n_projections: int = 128, generator: torch.Generator | None = None
) -> Tensor:
    """Sliced Wasserstein-2 distance between two feature clouds of possibly different sizes.

    ``SW₂ = (E_θ W₂²(⟨fx, θ⟩, ⟨fy, θ⟩))^½`` with θ uniform on the unit sphere (Monte Carlo over
    ``n_projections`` directions); each 1-D W₂ is exact, from the quantile functions of the
    projected values (sorted; for N ≠ M over the merged steps i/N, j/M). Between a cloud and its
    copy shifted by v each slice is ``|⟨v, θ⟩|``: in 1-D SW₂ is the shift, in D dimensions it
    tends to ‖v‖/√D as the number of projections grows.

    Args:
        fx: features (N, D).
        fy: features (M, D).
        n_projections: number of random directions.
        generator: CPU generator of the directions; the result is deterministic given its state.
    """
    if fx.ndim != 2 or fy.ndim != 2 or fx.shape[1] != fy.shape[1]:
        raise ValueError(
            f"need features (N, D) and (M, D), got {tuple(fx.shape)}, {tuple(fy.shape)}"
        )
    theta = torch.randn(fx.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(fx.device)
    px = (fx.double() @ theta).sort(dim=0).values  # (N, P)
    py = (fy.double() @ theta).sort(dim=0).values  # (M, P)
    return _w2_squared_sorted(px, py).mean().sqrt().to(fx.dtype)


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    """KL(p ‖ q) in nats over the last dimension of probability vectors.

    Terms with p = 0 add 0; q is floored at ``EPS``, so the value stays finite (large) where q
    misses mass of p. Returns one value per leading index.
    """
    return (torch.xlogy(p, p) - p * q.clamp_min(EPS).log()).sum(-1)


def js_divergence(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon divergence in nats over the last dimension: ½KL(p‖m) + ½KL(q‖m), m = ½(p+q).

    Symmetric, 0 for p = q, and bounded by ln 2 (reached by distributions of disjoint support).
    """
    m = 0.5 * (p + q)
    return (0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)).clamp(0.0, math.log(2.0))


def class_proportion_js(labels_a: Tensor, labels_b: Tensor, num_classes: int) -> Tensor:
    """JS divergence (nats, ≤ ln 2) between the class proportions of two label sets."""
    pa = torch.bincount(labels_a.flatten().long(), minlength=num_classes).double()
    pb = torch.bincount(labels_b.flatten().long(), minlength=num_classes).double()
    if pa.numel() != num_classes or pb.numel() != num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    return js_divergence(pa / pa.sum(), pb / pb.sum()).float()


def softmax_divergences(ref_logits: Tensor, logits: Tensor) -> dict[str, float]:
    """Mean over samples of KL(softmax(ref) ‖ softmax(logits)) and of their JS divergence.

    Meant for the test-set outputs of a model trained on the full data (``ref_logits``) and of
    one trained on the distilled set (``logits``); both in nats, JS ≤ ln 2.

    Args:
        ref_logits: logits (N, K) of the reference model.
        logits: logits (N, K) of the compared model, same samples in the same order.
    """
    log_p, log_q = F.log_softmax(ref_logits.double(), -1), F.log_softmax(logits.double(), -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # log-space: exact even for tiny q
    js = js_divergence(log_p.exp(), log_q.exp())
    return {KL: kl.mean().item(), JS: js.mean().item()}


# --- gradient similarity -------------------------------------------------------------------


def _flat_gradient(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    params = [p for p in net.parameters() if p.requires_grad]
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), params)
    return torch.cat([g.flatten() for g in grads])  # (P,)


def gradient_similarity(
    make_net: Callable[[int], nn.Module],
    syn: Tensor,
    syn_labels: Tensor,
    real: Tensor,
    real_labels: Tensor,
    k: int = 10,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Cosine similarity and L2 distance between the cross-entropy gradients of all parameters
    (flattened into one vector) on the distilled set and on a real batch, over ``k`` networks.

    Each network is ``make_net(seed)``, freshly initialised, with a seed drawn from
    ``generator``, in train mode (batch statistics, as during distillation) and discarded after.
    The whole of ``syn`` and of ``real`` is one batch each; the caller picks the real batch.

    Args:
        make_net: seed → freshly initialised classifier.
        syn: distilled images (N, C, H, W), as the network expects them (normalised).
        syn_labels: their labels (N,).
        real: real images (M, C, H, W), same preprocessing.
        real_labels: their labels (M,).
        k: number of networks.
        generator: CPU generator of the seeds.

    Returns:
        ``cos_mean``, ``cos_std``, ``l2_mean``, ``l2_std`` (population std over the networks).
    """
    seeds = torch.randint(0, 2**31 - 1, (k,), generator=generator).tolist()
    cos, l2 = [], []
    for seed in seeds:
        net = make_net(seed).to(syn.device).train()
        g_syn = _flat_gradient(net, syn, syn_labels)
        g_real = _flat_gradient(net, real, real_labels)
        cos.append(F.cosine_similarity(g_syn, g_real, dim=0, eps=1e-12))
        l2.append((g_syn - g_real).norm())
    cos_t, l2_t = torch.stack(cos).double(), torch.stack(l2).double()
    return {
        COS_MEAN: cos_t.mean().item(),
        COS_STD: cos_t.std(correction=0).item(),
        L2_MEAN: l2_t.mean().item(),
        L2_STD: l2_t.std(correction=0).item(),
    }


# --- compression ---------------------------------------------------------------------------


def tensor_bytes(t: Tensor) -> int:
    """Bytes of a tensor's elements as stored (uint8 images: 1 per pixel, float32: 4)."""
    return t.numel() * t.element_size()


def compression(
    full_images: int,
    distilled_images: int,
    full_bytes: int,
    distilled_image_bytes: int,
    latent_bytes: int | None = None,
    generator_bytes: int | None = None,
) -> dict[str, float]:
    """How much smaller the distilled set is than the full training set.

    Args:
        full_images: images in the full training set.
        distilled_images: images in the distilled set.
        full_bytes: bytes of the full training images (e.g. uint8 tensor).
        distilled_image_bytes: bytes of the distilled images, stored as they would be shipped.
        latent_bytes: bytes of the distilled latents (and labels), if the set is latent.
        generator_bytes: bytes of the generator the latents need; with ``latent_bytes`` it adds
            the ratio that charges the shared generator to this set.

    Returns:
        ``image_ratio`` (full / distilled images), ``image_bytes_ratio`` and, when given,
        ``latent_bytes_ratio`` and ``latent_gen_bytes_ratio`` (full bytes / set bytes).
    """
    if min(full_images, distilled_images, full_bytes, distilled_image_bytes) <= 0:
        raise ValueError("image counts and bytes must be positive")
    out = {
        IMAGE_RATIO: full_images / distilled_images,
        IMAGE_BYTES_RATIO: full_bytes / distilled_image_bytes,
    }
    if latent_bytes is not None:
        if latent_bytes <= 0:
            raise ValueError("latent bytes must be positive")
        out[LATENT_BYTES_RATIO] = full_bytes / latent_bytes
        if generator_bytes is not None:
            out[LATENT_GENERATOR_BYTES_RATIO] = full_bytes / (latent_bytes + generator_bytes)
    return out
