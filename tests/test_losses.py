import math
import statistics

import pytest
import torch

from gandistill.distances import (
    diversity_ratios,
    mean_feature_distance,
    mean_pairwise_distance,
    mmd2,
)
from gandistill.gan.losses import class_conditional, hinge_d, hinge_g, ns_d, ns_g


def test_mmd_zero_for_identical_positive_for_different_and_symmetric():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 16, generator=gen)
    y = torch.randn(40, 16, generator=gen) + 0.5
    assert mmd2(x, x).abs() < 1e-6
    assert mmd2(x, y) > 1e-2
    assert torch.allclose(mmd2(x, y), mmd2(y, x), atol=1e-6)
    # a larger shift gives a larger discrepancy
    assert mmd2(x, y + 2.0) > mmd2(x, y)


def test_mmd_has_gradients():
    x = torch.randn(8, 4)
    y = torch.randn(8, 4, requires_grad=True)
    mmd2(x, y).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_unbiased_mmd_is_centred_and_does_not_reward_clustering():
    """Two small samples of one distribution: the unbiased MMD² averages 0 (the biased one
    does not), and a gradient step on it spreads the generated sample further apart than the
    biased estimate's, which under-weights the repulsion between a set's own points."""
    gen = torch.Generator().manual_seed(0)
    values, spread = {True: [], False: []}, {True: [], False: []}
    for _ in range(300):
        x, y0 = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
        for unbiased in (True, False):
            y = y0.clone().requires_grad_(True)
            value = mmd2(x, y, unbiased=unbiased)
            (grad,) = torch.autograd.grad(value, y)
            values[unbiased].append(float(value.detach()))
            after = mean_pairwise_distance(y0 - 0.1 * grad) - mean_pairwise_distance(y0)
            spread[unbiased].append(float(after))
    se = statistics.stdev(values[True]) / len(values[True]) ** 0.5
    assert abs(statistics.fmean(values[True])) < 3 * se
    assert statistics.fmean(values[False]) > 0.5
    gap = [u - b for u, b in zip(spread[True], spread[False], strict=True)]
    assert statistics.fmean(gap) > 5 * statistics.stdev(gap) / len(gap) ** 0.5
    with pytest.raises(ValueError, match="two samples"):
        mmd2(x, x[:1], unbiased=True)


def test_diversity_ratio_sees_within_class_collapse():
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(40, 1, 8, 8, generator=gen)
    labels = torch.arange(2).repeat_interleave(20)
    other = torch.rand(40, 1, 8, 8, generator=gen)  # as diverse as the real images
    assert diversity_ratios(other, labels, real, labels, 2) == pytest.approx([1.0, 1.0], abs=0.1)
    collapsed = real[[0] * 20 + [20] * 20] + 0.01 * torch.rand(40, 1, 8, 8, generator=gen)
    assert max(diversity_ratios(collapsed, labels, real, labels, 2)) < 0.1


def test_feature_matching():
    x = torch.ones(4, 3)
    assert mean_feature_distance(x, x) == 0
    assert torch.isclose(mean_feature_distance(x, x + 1.0), torch.tensor(3.0))


def test_class_conditional_matches_per_class_average():
    real = torch.tensor([[0.0], [0.0], [5.0], [5.0]])
    fake = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    loss = class_conditional(mean_feature_distance, real, labels, fake, labels)
    assert torch.isclose(loss, torch.tensor((0.0 + 16.0) / 2))
    # classes missing from the fake batch are skipped
    loss = class_conditional(mean_feature_distance, real, labels, fake[:2], labels[:2])
    assert loss == 0


def test_adversarial_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert torch.isclose(hinge_d(real, fake), torch.tensor(0.25 + 0.5))
    assert torch.isclose(hinge_g(fake), torch.tensor(1.0))
    # non-saturating losses fall as D gets real/fake right
    assert ns_d(real, fake) < ns_d(fake, real)
    assert ns_g(torch.tensor([3.0])) < ns_g(torch.tensor([-3.0]))


def test_mode_seeking_pairs_one_class_and_penalises_collapse():
    from gandistill.gan.losses import mode_seeking, same_class_pairs

    labels = torch.tensor([2, 0, 1, 0, 2, 0, 1, 2, 0])
    a, b = same_class_pairs(labels)
    assert torch.equal(labels[a], labels[b]) and len(set(a.tolist()) | set(b.tolist())) == 8
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(9, 4, generator=gen)
    diverse = torch.randn(9, 1, 4, 4, generator=gen)
    collapsed = diverse[:1] + 0.01 * diverse  # every sample nearly the same image
    assert mode_seeking(collapsed, z, labels) > 10 * mode_seeking(diverse, z, labels)
    fake = collapsed.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mode_seeking(fake, z, labels), fake)
    before = mean_pairwise_distance(collapsed)
    assert mean_pairwise_distance(collapsed - 1e-4 * grad) > before  # descending spreads them


def test_mode_seeking_cap_stops_rewarding_pairs_already_as_far_apart_as_real_ones():
    from gandistill.gan.losses import mode_seeking, real_pair_ratio

    labels = torch.tensor([0, 0, 1, 1])
    z = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    fake = torch.tensor([[0.0], [0.5], [0.0], [0.1]]).requires_grad_(True)  # ratios 0.5, 0.1
    (grad,) = torch.autograd.grad(mode_seeking(fake, z, labels, cap=0.3), fake)
    assert grad[:2].abs().sum() == 0 and grad[2:].abs().sum() > 0  # only the close pair moves
    (uncapped,) = torch.autograd.grad(mode_seeking(fake, z, labels), fake)
    assert uncapped[:2].abs().sum() > 0
    gen = torch.Generator().manual_seed(0)
    same = torch.zeros(6, 1, 2, 2)
    assert real_pair_ratio(same, torch.tensor([0, 0, 0, 1, 1, 1]), gen) == 0.0
    spread = torch.tensor([-1.0, 1.0] * 4).view(8, 1, 1, 1)  # pairs differ by 2 or 0
    ratio = real_pair_ratio(spread, torch.zeros(8, dtype=torch.long), gen)
    assert 0.0 <= ratio <= 2.0 / (2.0 / math.pi**0.5)
