import torch

from gandistill.distances import mean_feature_distance, mmd2
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
