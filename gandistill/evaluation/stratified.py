"""FID and KID that are fair to small, class-stratified sets, with bootstrap intervals.

A distilled set, a random real subset and a generator's samples hold a fixed number of images per
class. KID's unbiased estimate is centred on zero only when both samples are drawn the same way:
against uniformly random reference subsets a stratified set scores *below* zero (pairs inside it
share a class less often than random pairs do, so its within-set kernel mean is lower). Here each
reference subset is drawn with the class counts of the set's images it is compared with, so two
stratified samples of one distribution score zero on average. KID is reported ×10³, as is common.

FID compares the set with the whole reference split. Both scores come with 95% bootstrap
intervals: each replicate resamples the set within its classes and redraws the reference (for
FID a class-stratified resample of the whole split, for KID a fresh stratified subset); the
interval is their 2.5–97.5 percentiles shifted to centre on the estimate. A set of one image per
class has nothing to resample within a class, so its interval covers the reference
draw only; ``ci_covers`` says which.

Features come from torch-fidelity's feature extractors; the polynomial kernel and the FID
statistics are torch-fidelity's (``kernel_poly``, ``fid_features_to_statistics``,
``fid_statistics_to_metric``). The weighted within-set kernel mean a bootstrap replicate needs
(a resample repeats images, and a repeat must not count as a pair) is written here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kernel_poly
from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id

from gandistill.errors import DataError

KID_SCALE = 1000.0  # KID is reported ×10³
KID_DRAWS = 100  # reference subsets averaged into the KID estimate
BOOTSTRAP = 50  # replicates behind each interval
CI_PERCENTILES = (2.5, 97.5)


def extract_features(
    images: Tensor, name: str, layer: str, channels: int, kwargs: dict, device: str, batch: int
) -> np.ndarray:
    """float64 (N, D) features of uint8 images from torch-fidelity's extractor ``name``."""
    from gandistill.evaluation.fidelity import UInt8Images  # fidelity imports this module

    cuda = torch.device(device).type == "cuda"
    extractor = create_feature_extractor(name, [layer], cuda=cuda, verbose=False, **kwargs)
    feats = extract_featuresdict_from_input_id(
        1,
        extractor,
        input1=UInt8Images(images, channels),
        batch_size=batch,
        cuda=cuda,
        save_cpu_ram=True,
        verbose=False,
    )[layer]
    return feats.double().numpy()


def _blocks(
    k: np.ndarray, a_rows: np.ndarray, a_cols: np.ndarray, same: bool, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per class pair (c, c'): the mean of ``k`` over row images of class c and column images
    of class c' (one-hot ``a_rows`` / ``a_cols``), rows weighted by ``w``; with ``same`` the two
    sides are one set and an image (or a repeat of it) never pairs with itself. Also returns
    which blocks hold at least one pair."""
    w_rows = np.ones(a_rows.shape[0]) if w is None else w
    rows = a_rows * w_rows[:, None]
    cols = rows if same else a_cols
    sums = rows.T @ k @ cols
    pairs = np.outer(rows.sum(0), cols.sum(0))
    if same:  # drop i == j: every pair of copies of one image
        self_pairs = a_rows.T @ (w_rows * w_rows)
        sums -= np.diag(a_rows.T @ (w_rows * w_rows * np.diag(k)))
        pairs -= np.diag(self_pairs)
    valid = pairs > 0
    return np.where(valid, sums / np.where(valid, pairs, 1.0), 0.0), valid


def kid(
    k_xx: np.ndarray,
    k_yy: np.ndarray,
    k_xy: np.ndarray,
    x_classes: np.ndarray,
    y_classes: np.ndarray,
    num_classes: int,
    w: np.ndarray | None = None,
) -> tuple[float, bool]:
    """Unbiased MMD² for class-stratified samples: the three kernel means of the usual estimate,
    each taken per class pair (c, c') and weighted by the set's class shares π_c π_c', so pairs
    within one class count as often in every term whatever the sample sizes. Blocks that one
    side cannot fill (a class with a single image has no same-class pair) leave all three
    terms. Returns the value and whether every same-class block was kept.
    """
    a_x = np.eye(num_classes)[x_classes]
    a_y = np.eye(num_classes)[y_classes]
    b_xx, ok_xx = _blocks(k_xx, a_x, a_x, True, w)
    b_yy, ok_yy = _blocks(k_yy, a_y, a_y, True, None)
    b_xy, ok_xy = _blocks(k_xy, a_x, a_y, False, w)
    share = (a_x * (np.ones(len(a_x)) if w is None else w)[:, None]).sum(0)
    weights = np.outer(share, share) * (ok_xx & ok_yy & ok_xy)
    value = float((weights * (b_xx + b_yy - 2.0 * b_xy)).sum() / weights.sum())
    present = share > 0
    return value, bool(np.all(np.diag(ok_xx & ok_yy)[present]))


def _fid(x: np.ndarray, y: np.ndarray) -> float:
    stats = [fid_features_to_statistics(torch.from_numpy(f)) for f in (x, y)]
    return float(next(iter(fid_statistics_to_metric(*stats, verbose=False).values())))


class _Draws:
    """Class-stratified index draws from one seeded stream."""

    def __init__(self, set_labels: np.ndarray, ref_labels: np.ndarray, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.k = int(max(set_labels.max(), ref_labels.max())) + 1
        self.set_by_class = [np.flatnonzero(set_labels == c) for c in range(self.k)]
        self.ref_by_class = [np.flatnonzero(ref_labels == c) for c in range(self.k)]
        self.set_labels = set_labels
        for c, idx in enumerate(self.ref_by_class):
            need = len(self.set_by_class[c])
            if need and not len(idx):
                raise DataError(f"the reference split holds no image of class {c}")

    def reference_like(self, labels: np.ndarray) -> np.ndarray:
        """Reference indices with the class counts of ``labels`` (without replacement, capped at
        what the reference holds of a class)."""
        counts = np.bincount(labels, minlength=self.k)
        parts = [
            self.rng.choice(idx, size=min(n, len(idx)), replace=False)
            for idx, n in zip(self.ref_by_class, counts, strict=True)
            if n
        ]
        return np.concatenate(parts)

    def set_subset(self, size: int | None) -> np.ndarray:
        """All of the set's indices, or ``size`` of them drawn without replacement."""
        n = len(self.set_labels)
        if size is None or size >= n:
            return np.arange(n)
        return np.sort(self.rng.choice(n, size=size, replace=False))

    def set_weights(self) -> np.ndarray:
        """Resample counts of the set's images, each class resampled within itself."""
        w = np.zeros(len(self.set_labels))
        for idx in self.set_by_class:
            if len(idx):
                np.add.at(w, self.rng.choice(idx, size=len(idx), replace=True), 1.0)
        return w

    def reference_resample(self) -> np.ndarray:
        """A class-stratified resample (with replacement) of the whole reference."""
        parts = [self.rng.choice(idx, size=len(idx), replace=True) for idx in self.ref_by_class]
        return np.concatenate([p for p in parts if len(p)])


def _interval(replicates: np.ndarray, estimate: float) -> list[float]:
    """The replicates' 2.5 and 97.5 percentiles, shifted so that their median is ``estimate``:
    a resample repeats images, which raises FID (fewer distinct images), so the raw percentiles
    would sit above the estimate; the shift keeps the bootstrap's spread around it."""
    shift = estimate - float(np.median(replicates))
    return [float(v) + shift for v in np.percentile(replicates, CI_PERCENTILES)]


def stratified_scores(
    x: np.ndarray,
    x_labels: np.ndarray,
    y: np.ndarray,
    y_labels: np.ndarray,
    seed: int,
    kid_subset_size: int | None = None,
    draws: int = KID_DRAWS,
    bootstrap: int = BOOTSTRAP,
) -> dict:
    """FID and stratified KID (×10³) of features ``x`` (the set) against ``y`` (the reference).

    Args:
        x: the set's features (N, D); ``x_labels`` its classes (N,).
        y: the reference's features (M, D); ``y_labels`` its classes (M,).
        seed: seeds every draw.
        kid_subset_size: set images per KID draw (default: the whole set); each draw's
            reference subset has the class counts of the set images drawn.
        draws: KID draws averaged into ``kid``; ``kid_std`` is their spread.
        bootstrap: replicates of the intervals (0: none).

    Returns:
        ``fid``, ``fid_ci``; ``kid``, ``kid_std``, ``kid_ci`` (×10³); ``ci_covers``.
    """
    if len(x) < 2:
        raise DataError(f"fidelity scores need at least 2 images, got {len(x)}")
    x_labels, y_labels = np.asarray(x_labels), np.asarray(y_labels)
    rng = _Draws(x_labels, y_labels, seed)
    k_xx, k_yy, k_xy = kernel_poly(x, x), kernel_poly(y, y), kernel_poly(x, y)

    within = [True]

    def one_kid(sub: np.ndarray, w: np.ndarray | None = None) -> float:
        ref = rng.reference_like(x_labels[sub])
        value, full = kid(
            k_xx[np.ix_(sub, sub)],
            k_yy[np.ix_(ref, ref)],
            k_xy[np.ix_(sub, ref)],
            x_labels[sub],
            y_labels[ref],
            rng.k,
            w,
        )
        within[0] &= full
        return KID_SCALE * value

    kids = np.array([one_kid(rng.set_subset(kid_subset_size)) for _ in range(draws)])
    out: dict = {
        "fid": _fid(x, y),
        "kid": float(kids.mean()),
        "kid_std": float(kids.std()),
        "kid_units": "x1e3",
        "kid_pairs": "all class pairs"
        if within[0]
        else "pairs of different classes only (one image per class has no same-class pair)",
        "kid_subset_size": len(rng.set_subset(kid_subset_size)),
    }
    if bootstrap:
        fids, boot_kids = [], []
        for _ in range(bootstrap):
            w = rng.set_weights()
            boot_kids.append(one_kid(np.arange(len(x)), w))
            fids.append(_fid(np.repeat(x, w.astype(int), axis=0), y[rng.reference_resample()]))
        out["fid_ci"] = _interval(np.array(fids), out["fid"])
        out["kid_ci"] = _interval(np.array(boot_kids), out["kid"])
        one_each = all(len(idx) <= 1 for idx in rng.set_by_class)
        out["ci_covers"] = (
            "the reference draw only (one image per class: nothing to resample within a class)"
            if one_each
            else "the set (resampled within classes) and the reference draw"
        )
    return out
