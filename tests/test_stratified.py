"""Class-stratified FID and KID: centred on zero for two samples of one distribution, the same
as torch-fidelity's unbiased KID where both agree, bootstrap intervals, and the edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from torch_fidelity.metric_kid import kernel_poly, mmd2

from gandistill.errors import DataError
from gandistill.evaluation.stratified import kid, stratified_scores

K, D = 4, 8
MEANS = np.random.default_rng(0).normal(size=(K, D)) * 2.0


def _sample(per_class: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` points of each of K Gaussian classes of different spreads."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(K), per_class)
    spread = 1.0 + 0.3 * labels[:, None]
    return MEANS[labels] + spread * rng.normal(size=(len(labels), D)) + shift, labels


@pytest.mark.parametrize("per_class", [1, 3])
def test_stratified_kid_is_centred_on_zero_for_one_distribution(per_class):
    values = []
    for t in range(150):
        x, xl = _sample(per_class, 1000 + t)
        y, yl = _sample(40, 5000 + t)  # a fresh reference each time: no fixed-sample offset
        values.append(stratified_scores(x, xl, y, yl, seed=t, draws=5, bootstrap=0)["kid"])
    mean, se = np.mean(values), np.std(values) / np.sqrt(len(values))
    assert abs(mean) < 3 * se, (mean, se)


def test_random_reference_subsets_bias_a_stratified_set_downwards():
    """What the stratified draw fixes: plain unbiased KID against *random* reference subsets
    scores stratified samples of the very same distribution below zero."""
    plain = []
    for t in range(60):
        x, _ = _sample(3, 1000 + t)
        y, _ = _sample(40, 5000 + t)
        idx = np.random.default_rng(t).choice(len(y), size=len(x), replace=False)
        plain.append(mmd2(kernel_poly(x, x), kernel_poly(x, y[idx]), kernel_poly(y[idx], y[idx])))
    assert np.mean(plain) < -3 * np.std(plain) / np.sqrt(len(plain))


def test_a_shifted_distribution_scores_above_zero_with_intervals():
    x, xl = _sample(5, 1, shift=1.5)
    y, yl = _sample(40, 2)
    out = stratified_scores(x, xl, y, yl, seed=0, draws=20, bootstrap=30)
    same = stratified_scores(*_sample(5, 3), y, yl, seed=0, draws=20, bootstrap=30)
    assert out["kid"] > same["kid"] and out["fid"] > same["fid"]
    assert out["kid_ci"][0] <= out["kid"] <= out["kid_ci"][1] or out["kid_ci"][0] > 0
    assert out["fid_ci"][0] < out["fid_ci"][1] and out["kid_units"] == "x1e3"
    assert out["ci_covers"].startswith("the set")
    assert out == stratified_scores(x, xl, y, yl, seed=0, draws=20, bootstrap=30)  # seeded


def test_one_image_per_class_uses_pairs_of_different_classes_and_says_so():
    x, xl = _sample(1, 1)
    y, yl = _sample(40, 2)
    out = stratified_scores(x, xl, y, yl, seed=0, draws=10, bootstrap=10)
    assert "different classes only" in out["kid_pairs"]
    assert out["ci_covers"].startswith("the reference draw only")


def test_unweighted_kid_of_a_single_class_is_torch_fidelitys_unbiased_estimate():
    """With one class the class-pair weighting is the plain estimate torch-fidelity computes."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, D)), rng.normal(size=(12, D)) + 0.3
    k_xx, k_yy, k_xy = kernel_poly(x, x), kernel_poly(y, y), kernel_poly(x, y)
    zeros = np.zeros(12, dtype=int)
    value, full = kid(k_xx, k_yy, k_xy, zeros, zeros, 1)
    assert full and value == pytest.approx(mmd2(k_xx, k_xy, k_yy))
    # a resample that repeats an image: the repeat never pairs with itself
    w = np.ones(12)
    w[0], w[1] = 2.0, 0.0
    dup = np.concatenate([[0], np.arange(12)])
    dup = dup[dup != 1]
    kept = kernel_poly(x[dup], x[dup])
    pairs = [(i, j) for i in range(12) for j in range(12) if dup[i] != dup[j]]
    within = np.mean([kept[i, j] for i, j in pairs])
    weighted, _ = kid(k_xx, k_yy, k_xy, zeros, zeros, 1, w)
    cross = (w @ k_xy.sum(1)) / (w.sum() * 12)
    yy = (k_yy.sum() - np.trace(k_yy)) / (12 * 11)
    assert weighted == pytest.approx(within + yy - 2 * cross)


def test_a_class_missing_from_the_reference_is_one_line():
    x, xl = _sample(2, 1)
    y, yl = _sample(10, 2)
    keep = yl != 3
    with pytest.raises(DataError, match="no image of class 3"):
        stratified_scores(x, xl, y[keep], yl[keep], seed=0, draws=2, bootstrap=0)
