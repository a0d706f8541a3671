"""How close each distilled image comes to real ones; pure functions on tensors.

Two groups: structure (SSIM to the nearest real image of the same class) and privacy (distance
to the closest training record, beside that of unseen real images). Inputs and results as in
:mod:`gandistill.evaluation.metrics`: images prepared by the caller, per-image values as a 1-d
tensor, the privacy summary as a dict of plain numbers keyed by the module-level constants.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from gandistill.evaluation.metrics import EPS

# result keys
DCR_SYN_MEDIAN, DCR_SYN_MIN = "dcr_syn_median", "dcr_syn_min"
DCR_TEST_MEDIAN, DCR_RATIO = "dcr_test_median", "dcr_ratio"
NEAR_COPY_THRESHOLD, NEAR_COPIES = "near_copy_threshold", "near_copies"

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03  # Wang et al. 2004
NEAR_COPY_QUANTILE = 0.01  # default near-copy threshold: this quantile of test-to-train DCRs


# --- structure -----------------------------------------------------------------------------


def _blur(x: Tensor) -> Tensor:
    """Valid-mode Gaussian filter per channel, separable: (N, C, H, W) → (N, C, H−10, W−10)."""
    c = x.shape[1]
    r = torch.arange(SSIM_WINDOW, dtype=x.dtype, device=x.device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(r**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, SSIM_WINDOW), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, SSIM_WINDOW, 1), groups=c)


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Local mean and local mean of squares under the SSIM window."""
    return _blur(x), _blur(x * x)


def _ssim_from(
    mx: Tensor, xx: Tensor, my: Tensor, yy: Tensor, xy: Tensor, data_range: float
) -> Tensor:
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(-3, -2, -1))  # mean SSIM over channels and window positions


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean SSIM (Wang et al. 2004) of each image pair: (N, C, H, W) × (N, C, H, W) → (N,).

    The reference settings: 11×11 Gaussian window (σ = 1.5) applied without padding, K1 = 0.01,
    K2 = 0.03, population statistics; colour images average the per-channel maps. 1 for
    identical images, symmetric, at most 1. Images need H, W ≥ 11.

    Args:
        x: images with values in [0, ``data_range``]; broadcast against ``y``.
        y: images.
        data_range: the value range of the pixels (1 for [0, 1] images).
    """
    x, y = torch.broadcast_tensors(x.float(), y.float())
    if x.ndim != 4 or min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"need images (N, C, H, W) with H, W ≥ {SSIM_WINDOW}, got {tuple(x.shape)}"
        )
    (mx, xx), (my, yy) = _moments(x), _moments(y)
    return _ssim_from(mx, xx, my, yy, _blur(x * y), data_range)


def nearest_real_ssim(
    syn: Tensor,
    syn_labels: Tensor,
    real: Tensor,
    real_labels: Tensor,
    data_range: float = 1.0,
    max_pairs: int = 4096,
) -> Tensor:
    """Per distilled image, the SSIM to the most similar real image of its class: (N_syn,).

    Every (distilled, real) pair of a class is scored, ``max_pairs`` at a time; the local
    statistics of each image are computed once, only the cross term per pair. The cost grows as
    N_syn × N_real / K, so pass a per-class subsample of a large real set.

    Args:
        syn: distilled images (N, C, H, W) in [0, ``data_range``].
        syn_labels: their labels (N,).
        real: real images (M, C, H, W), same range.
        real_labels: their labels (M,).
        data_range: the value range of the pixels.
        max_pairs: pairs scored per batch (bounds memory).
    """
    syn = syn.float()
    best = torch.full((syn.shape[0],), -math.inf, device=syn.device)
    for c in syn_labels.unique().tolist():
        s_idx = (syn_labels == c).nonzero().squeeze(1)
        x, r = syn[s_idx], real[real_labels == c].to(syn.device).float()
        if r.shape[0] == 0:
            raise ValueError(f"no real image of class {c} to compare distilled images with")
        (sm, sxx), (rm, rxx) = _moments(x), _moments(r)
        sm, sxx = sm[:, None], sxx[:, None]  # (a, 1, C, h, w) against real (1, b, C, h, w)
        step = max(1, max_pairs // len(s_idx))
        for i in range(0, r.shape[0], step):
            rc = r[i : i + step]
            xy = _blur((x[:, None] * rc[None]).flatten(0, 1)).unflatten(0, (len(s_idx), -1))
            score = _ssim_from(
                sm, sxx, rm[None, i : i + step], rxx[None, i : i + step], xy, data_range
            )
            best[s_idx] = torch.maximum(best[s_idx], score.max(1).values)  # score: (a, b)
    return best


# --- privacy -------------------------------------------------------------------------------


def closest_record_distances(queries: Tensor, records: Tensor, batch_size: int = 1024) -> Tensor:
    """Distance to the closest record (DCR): the L2 distance of each flattened query to its
    nearest record, (Nq,).

    The nearest record is found with matrix-product distances (``torch.cdist``), ``batch_size``
    queries × ``batch_size`` records at a time; its distance is then recomputed directly, so an
    exact copy gets exactly 0 (the matrix-product form leaves a rounding error of order
    √(ε‖x‖²)). Records are converted to float one batch at a time, so uint8 sets stay compact.

    Args:
        queries: images (Nq, ...).
        records: images (Nr, ...), on the same pixel scale and device as ``queries``.
        batch_size: rows per distance block.
    """
    if records.shape[0] == 0:
        raise ValueError("no records to measure distances to")
    q_all = queries.flatten(1).float()
    out = []
    for q in q_all.split(batch_size):
        best_d = torch.full((q.shape[0],), math.inf, device=q.device)
        best_i = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        for start in range(0, records.shape[0], batch_size):
            r = records[start : start + batch_size].flatten(1).float().to(q.device)
            d, i = torch.cdist(q, r).min(1)
            closer = d < best_d
            best_d = torch.where(closer, d, best_d)
            best_i = torch.where(closer, i + start, best_i)
        nearest = records[best_i.to(records.device)].flatten(1).float().to(q.device)
        out.append((q - nearest).norm(dim=1))
    return torch.cat(out)


def privacy_report(
    syn: Tensor, train: Tensor, test: Tensor, near_copy_threshold: float | None = None
) -> dict[str, float]:
    """How close the distilled images sit to the training data, against unseen real images.

    DCR is :func:`closest_record_distances` to the train split. Real test images were never
    trained on, so their DCRs show how close natural images of the distribution come to the
    training set by chance. ``dcr_ratio`` = median DCR(distilled) / median DCR(test): near 1 or
    above, the distilled images are no closer to training records than fresh data; well below 1,
    they reproduce training images. A near-copy is a distilled image with DCR ≤ the threshold.
    By default the threshold is the 1st percentile (``NEAR_COPY_QUANTILE``) of the test DCRs,
    a relative rule that needs no per-dataset pixel scale: a distilled set drawn like test data
    would count about 1 % of its images, a memorising one many more, and exact copies (DCR 0)
    always count.

    Args:
        syn: distilled images (N, C, H, W), e.g. in [0, 1].
        train: training images (M, C, H, W), same scale.
        test: real test images (T, C, H, W), same scale; subsample a large split (cost T × M).
        near_copy_threshold: absolute pixel-L2 threshold instead of the relative default.

    Returns:
        ``dcr_syn_median``, ``dcr_syn_min``, ``dcr_test_median``, ``dcr_ratio``,
        ``near_copy_threshold`` (the one used) and ``near_copies`` (a count).
    """
    dcr_syn = closest_record_distances(syn, train)
    dcr_test = closest_record_distances(test, train)
    if near_copy_threshold is None:
        near_copy_threshold = torch.quantile(dcr_test.double(), NEAR_COPY_QUANTILE).item()
    syn_median, test_median = dcr_syn.median().item(), dcr_test.median().item()
    return {
        DCR_SYN_MEDIAN: syn_median,
        DCR_SYN_MIN: dcr_syn.min().item(),
        DCR_TEST_MEDIAN: test_median,
        DCR_RATIO: syn_median / max(test_median, EPS),
        NEAR_COPY_THRESHOLD: float(near_copy_threshold),
        NEAR_COPIES: int((dcr_syn <= near_copy_threshold).sum().item()),
    }
