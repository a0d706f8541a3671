import pytest
import torch

from gandistill.models import ConvNet, Discriminator, Generator, build_model


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(size, channels):
    g = Generator(10, latent_dim=8, width=8, image_size=size, channels=channels)
    d = Discriminator(10, width=8, image_size=size, channels=channels)
    net = ConvNet(10, channels=channels, image_size=size, width=8)
    z, y = torch.randn(3, 8), torch.tensor([0, 4, 9])
    x = g(z, y)
    assert x.shape == (3, channels, size, size)
    assert x.abs().max() <= 1.0
    logits, feats = d(x, y, return_features=True)
    assert logits.shape == (3,) and feats.shape == (3, d.feature_dim)
    assert net(x).shape == (3, 10) and net.embed(x).shape == (3, net.feature_dim)


def test_unsupported_size():
    with pytest.raises(ValueError, match="image_size"):
        Generator(10, image_size=48)


def test_features_then_decode_equals_forward():
    g = Generator(5, latent_dim=8, width=8, image_size=32).eval()
    z, y = torch.randn(2, 8), torch.tensor([1, 3])
    for level in range(len(g.blocks) + 1):
        assert torch.allclose(g.decode(g.features(z, y, level), level), g(z, y), atol=1e-6)


def test_label_changes_output():
    g = Generator(5, latent_dim=8, width=8).eval()
    z = torch.randn(1, 8)
    assert not torch.allclose(g(z, torch.tensor([0])), g(z, torch.tensor([1])))


@pytest.mark.parametrize("kind", ["generator", "discriminator", "convnet"])
def test_rebuild_from_kwargs(kind):
    model = build_model(kind, {"num_classes": 4})
    clone = build_model(kind, model.kwargs)
    clone.load_state_dict(model.state_dict())
    assert clone.kwargs == model.kwargs


@pytest.mark.parametrize("size", [(32, 32), (7, 9)])
def test_convnet_pooling_is_average_pooling(size):
    from gandistill.models.convnet import AvgPool2x2

    x = torch.randn(3, 4, *size, requires_grad=True)
    ours = AvgPool2x2()(x)
    theirs = torch.nn.functional.avg_pool2d(x, 2)
    torch.testing.assert_close(ours, theirs)
    (g_ours,) = torch.autograd.grad(ours.square().sum(), x)
    (g_theirs,) = torch.autograd.grad(theirs.square().sum(), x)
    torch.testing.assert_close(g_ours, g_theirs)
