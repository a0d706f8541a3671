"""Evaluation networks of the dataset-distillation literature's cross-architecture tables.

The small-image MLP, LeNet, AlexNet and ResNet-18 that the DC/DSA/DM papers (Zhao & Bilen) train
on a distilled set next to the ConvNet (their code's ``get_network``). Each takes normalised
images (B, C, H, W) of 28 or 32 px and returns logits (B, K), and keeps its constructor arguments
in ``self.kwargs`` so it can be rebuilt from a checkpoint.

The reference code picks the 28 px variants by ``channel == 1`` (MNIST-like sets); here the
choice follows ``image_size == 28``, so 28 px RGB and 32 px grey inputs work too.

Parameters (weights and biases; ResNet-18 includes its norm layers' affine parameters, as many
for ``resnet18`` (instance norm) as for ``resnet18bn`` (BatchNorm)):

==========  ==============  ==============  ==============  ==============
net          1×28×28, K=10   3×32×32, K=10    1×28×28, K=3    3×32×32, K=3
==========  ==============  ==============  ==============  ==============
mlp                118,282         411,146         117,379         410,243
lenet               61,706          62,006          61,111          61,411
alexnet          1,865,802       1,872,202       1,844,291       1,850,691
resnet18        11,172,810      11,173,962      11,169,219      11,170,371
==========  ==============  ==============  ==============  ==============
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch import Tensor, nn


def _flat_dim(features: nn.Module, channels: int, image_size: int, name: str) -> int:
    """Size of ``features``' flattened output for one image, found with a dummy forward pass."""
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, channels, image_size, image_size))
    except RuntimeError as err:
        raise ValueError(f"image_size {image_size} is too small for {name}: {err}") from err
    return out[0].numel()


class MLP(nn.Module):
    """Two hidden layers: flatten → ``width`` → ReLU → ``width`` → ReLU → K (the DC code's MLP).

    Args:
        num_classes: output classes.
        channels: input channels.
        image_size: input size (square).
        width: units of each hidden layer.
    """

    def __init__(self, num_classes: int, channels: int, image_size: int, width: int = 128) -> None:
        super().__init__()
        self.kwargs = dict(
            num_classes=num_classes, channels=channels, image_size=image_size, width=width
        )
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size * image_size, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, num_classes)


class LeNet(nn.Module):
    """LeNet-5: conv 6@5×5 → pool → conv 16@5×5 → pool → fc 120 → fc 84 → fc K, ReLU between.

    28 px inputs get 2 px of padding in the first conv so that both 28 and 32 px inputs reach
    the classifier as 16×5×5 maps.

    Args:
        num_classes: output classes.
        channels: input channels.
        image_size: input size (square).
    """

    def __init__(self, num_classes: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.kwargs = dict(num_classes=num_classes, channels=channels, image_size=image_size)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2 if image_size == 28 else 0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.feature_dim = _flat_dim(self.features, channels, image_size, "LeNet")
        self.classifier = nn.Sequential(
            nn.Linear(self.feature_dim, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))  # (B, num_classes)


class AlexNet(nn.Module):
    """The DC code's small-image AlexNet: five convs (128, 192, 256, 192, 192), three max-pools.

    conv 128@5×5 → pool → conv 192@5×5 → pool → conv 256@3×3 → conv 192@3×3 → conv 192@3×3 →
    pool → fc K, ReLU after every conv. 28 px inputs get 4 px of padding in the first conv (2 px
    otherwise), so both sizes end in 192×4×4 maps.

    Args:
        num_classes: output classes.
        channels: input channels.
        image_size: input size (square).
    """

    def __init__(self, num_classes: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.kwargs = dict(num_classes=num_classes, channels=channels, image_size=image_size)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 5, padding=4 if image_size == 28 else 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(192, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(192, 192, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.feature_dim = _flat_dim(self.features, channels, image_size, "AlexNet")
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))  # (B, num_classes)


def resnet18(
    num_classes: int, channels: int, image_size: int, norm: str = "instancenorm"
) -> nn.Module:
    """torchvision's ResNet-18 adapted to small images.

    The stem becomes a 3×3 stride-1 conv (``channels`` inputs, 64 outputs) and the max-pool is
    removed, so a 32 px input reaches the last stage at 4×4 instead of 1×1. The rest is
    ``torchvision.models.resnet18(weights=None)`` with ``norm``: ``instancenorm`` (a GroupNorm
    with one group per channel, affine) as the DC code's ``ResNet18``, or ``batchnorm`` as its
    ``ResNet18BN`` (``resnet18bn`` here), which needs training batches of more than one image and
    at test time normalises with the statistics of the set it was trained on: on a set of ten
    images it scores near chance. ``image_size`` only goes into ``kwargs`` (the adaptive average
    pool takes any size).

    Args:
        num_classes: output classes.
        channels: input channels.
        image_size: input size (square).
        norm: ``instancenorm`` or ``batchnorm``.

    Returns:
        A ``torchvision.models.ResNet`` with ``kwargs`` set; rebuild it with
        ``resnet18(**model.kwargs)``.
    """

    def instance_norm(width: int) -> nn.Module:
        return nn.GroupNorm(width, width, affine=True)

    layer = instance_norm if norm == "instancenorm" else nn.BatchNorm2d
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes, norm_layer=layer)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    # same init torchvision gives every conv, so the new stem matches the rest of the net
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    model.kwargs = dict(
        num_classes=num_classes, channels=channels, image_size=image_size, norm=norm
    )
    return model


def resnet18bn(
    num_classes: int, channels: int, image_size: int, norm: str = "batchnorm"
) -> nn.Module:
    """:func:`resnet18` with BatchNorm (the DC code's ``ResNet18BN``)."""
    return resnet18(num_classes, channels, image_size, norm=norm)


EVAL_NETWORKS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "mlp": MLP,
    "lenet": LeNet,
    "alexnet": AlexNet,
    "resnet18": resnet18,
    "resnet18bn": resnet18bn,
}
"""Evaluation nets by name, each called as ``f(num_classes, channels, image_size)``."""
