import pytest
import torch
from torch import nn

from gandistill.models.evalnets import EVAL_NETWORKS, AlexNet, LeNet

NAMES = sorted(EVAL_NETWORKS)
INPUTS = [(1, 28), (3, 32)]  # (channels, image_size)


def _param_shapes(net: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("num_classes", [10, 3])
@pytest.mark.parametrize("channels, size", INPUTS)
@pytest.mark.parametrize("name", NAMES)
def test_logits_and_gradients(name, channels, size, num_classes):
    torch.manual_seed(0)
    net = EVAL_NETWORKS[name](num_classes, channels, size).train()
    x = torch.randn(2, channels, size, size)
    logits = net(x)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, num_classes - 1])).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_construction_is_seeded(name):
    torch.manual_seed(1)
    a = EVAL_NETWORKS[name](4, 3, 32)
    torch.manual_seed(1)
    b = EVAL_NETWORKS[name](4, 3, 32)
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), key


@pytest.mark.parametrize("channels, size", INPUTS)
@pytest.mark.parametrize("name", NAMES)
def test_rebuild_from_kwargs(name, channels, size):
    net = EVAL_NETWORKS[name](5, channels, size)
    assert net.kwargs["num_classes"] == 5
    assert net.kwargs["channels"] == channels and net.kwargs["image_size"] == size
    clone = EVAL_NETWORKS[name](**net.kwargs)
    assert _param_shapes(clone) == _param_shapes(net)
    clone.load_state_dict(net.state_dict())
    assert clone.kwargs == net.kwargs
    if not name.startswith("resnet18"):  # classes rebuild from their own kwargs too
        assert _param_shapes(type(net)(**net.kwargs)) == _param_shapes(net)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    ("name", "norm"), [("resnet18", nn.GroupNorm), ("resnet18bn", nn.BatchNorm2d)]
)
def test_resnet18_small_image_stem_and_its_norm(channels, name, norm):
    net = EVAL_NETWORKS[name](10, channels, 32)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert net.conv1.padding == (1, 1) and net.conv1.in_channels == channels
    assert isinstance(net.maxpool, nn.Identity)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    norms = [m for m in net.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    assert norms and all(isinstance(m, norm) for m in norms)
    if norm is nn.GroupNorm:  # one group per channel: instance norm, as the DC code's ResNet18
        assert all(m.num_groups == m.num_channels and m.affine for m in norms)
        net.eval()  # no running statistics: the same output in train and eval mode
        x = torch.randn(3, channels, 32, 32)
        assert torch.allclose(net(x), net.train()(x), atol=1e-5)


@pytest.mark.parametrize("size", [28, 32])
def test_flattened_sizes_match_reference(size):
    # the reference code hard-codes 16×5×5 (LeNet) and 192×4×4 (AlexNet) for both sizes
    assert LeNet(10, 1, size).feature_dim == 16 * 5 * 5
    assert AlexNet(10, 3, size).feature_dim == 192 * 4 * 4


def test_too_small_image_is_a_value_error():
    with pytest.raises(ValueError, match="image_size"):
        LeNet(10, 1, 8)
