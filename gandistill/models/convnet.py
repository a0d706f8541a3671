"""The DC-style ConvNet used for matching, evaluation and the real-data classifier.

Reference architecture of the dataset-distillation literature (Zhao et al. 2021, "Dataset
Condensation with Gradient Matching"): ``depth`` blocks of conv 3×3 (``width`` channels) →
instance norm (affine) → ReLU → 2×2 average pooling, then one linear layer. As in the reference
implementation, 28×28 inputs get 3 px of padding in the first conv, so the blocks see 32×32
(feature maps 32 → 16 → 8 → 4 and a 2048-d embedding at width 128).
"""

from __future__ import annotations

from torch import Tensor, nn

from gandistill.errors import ConfigError

NORMS = ("instancenorm", "batchnorm", "none")
LAYERS_PER_BLOCK = 4  # conv, norm, ReLU, pool


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "instancenorm":
        # GroupNorm with one group per channel = affine instance norm that also works for B=1
        return nn.GroupNorm(ch, ch, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(ch)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}' (known: {', '.join(NORMS)})")


class AvgPool2x2(nn.Module):
    """2×2 average pooling with stride 2, as ``nn.AvgPool2d(2)`` (odd sizes floored), computed as
    two strided sums: on a CPU, ATen's average pooling of NCHW tensors is about 2× slower than
    these element-wise adds, in float32 and bfloat16 alike (docs/benchmarks.md)."""

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        rows = x[..., 0:h:2, :w] + x[..., 1:h:2, :w]
        return (rows[..., 0::2] + rows[..., 1::2]) * 0.25


def _pooled_size(image_size: int, depth: int) -> int:
    """The side of the feature maps after ``depth`` blocks (see :class:`ConvNet`)."""
    size = image_size
    for d in range(depth):
        pad = 3 if d == 0 and image_size == 28 else 1
        size = (size + 2 * pad - 2) // 2
    return size


def check_depth(depth: int, image_size: int, key: str) -> None:
    """One-line :class:`ConfigError` when ``depth`` blocks would pool ``image_size``-px images
    to nothing (the config key ``key`` named in the message), before any network is built."""
    if _pooled_size(image_size, depth) < 1:
        deepest = max(d for d in range(1, depth) if _pooled_size(image_size, d) >= 1)
        raise ConfigError(
            f"{key} {depth} pools {image_size}-px images below one pixel; use at most {deepest}"
        )


class ConvNet(nn.Module):
    """ConvNet-``depth`` classifier with :meth:`embed` (penultimate features) and ``forward``.

    Args:
        num_classes: output classes.
        channels: input channels.
        image_size: input size (square).
        width: channels of every conv.
        depth: number of conv blocks.
        norm: 'instancenorm' (default, as the DC papers), 'batchnorm' or 'none'.
    """

    def __init__(
        self,
        num_classes: int,
        channels: int = 1,
        image_size: int = 28,
        width: int = 128,
        depth: int = 3,
        norm: str = "instancenorm",
    ) -> None:
        super().__init__()
        self.kwargs = dict(
            num_classes=num_classes,
            channels=channels,
            image_size=image_size,
            width=width,
            depth=depth,
            norm=norm,
        )
        layers: list[nn.Module] = []
        ch, size = channels, image_size
        for d in range(depth):
            pad = 3 if d == 0 and image_size == 28 else 1
            size += 2 * pad - 2
            layers += [
                nn.Conv2d(ch, width, 3, padding=pad),
                _norm(norm, width),
                nn.ReLU(inplace=True),
                AvgPool2x2(),
            ]
            ch, size = width, size // 2
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)  # (B, feature_dim)

    def block_outputs(self, x: Tensor) -> list[Tensor]:
        """Every block's output (after its pooling), flattened: (B, d_i) each; the last is
        :meth:`embed`."""
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i % LAYERS_PER_BLOCK == LAYERS_PER_BLOCK - 1:
                outs.append(x.flatten(1))
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))  # (B, num_classes)
