"""DCGAN-style class-conditional generator."""

from __future__ import annotations

import torch
from torch import Tensor, nn

SIZES = (28, 32, 64)


def to_gan_range(x01: Tensor) -> Tensor:
    """Pixels in [0, 1] to the generator's [-1, 1]."""
    return x01 * 2.0 - 1.0


def from_gan_range(x: Tensor) -> Tensor:
    """Generator output in [-1, 1] to pixels in [0, 1] (clamped)."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def _stem_size(image_size: int) -> tuple[int, int]:
    """Spatial size of the first feature map and number of ×2 upsampling blocks."""
    if image_size == 28:
        return 7, 2
    if image_size == 32:
        return 4, 3
    if image_size == 64:
        return 4, 4
    raise ValueError(f"generator image_size must be one of {SIZES}, got {image_size}")


class Generator(nn.Module):
    """Conditional DCGAN generator ``G(z, y)`` with outputs in [-1, 1].

    The class enters as a learned embedding concatenated to ``z``; a linear stem maps the pair to a
    ``(width · 2^n, s, s)`` map that ``n`` transposed-conv blocks double in size (halving channels)
    until ``image_size``. ``blocks`` is a ModuleList so that distillation can optimise an
    intermediate feature map (:meth:`features` then :meth:`decode`).

    Args:
        num_classes: number of classes.
        latent_dim: size of z.
        width: channels of the last block; earlier blocks have width · 2^k.
        image_size: output size, one of 28, 32, 64.
        channels: output channels (1 or 3).
    """

    def __init__(
        self,
        num_classes: int,
        latent_dim: int = 64,
        width: int = 64,
        image_size: int = 28,
        channels: int = 1,
    ) -> None:
        super().__init__()
        self.kwargs = dict(
            num_classes=num_classes,
            latent_dim=latent_dim,
            width=width,
            image_size=image_size,
            channels=channels,
        )
        self.num_classes, self.latent_dim = num_classes, latent_dim
        self.image_size, self.channels = image_size, channels
        stem, n_up = _stem_size(image_size)
        top = width * 2 ** (n_up - 1)
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.stem = nn.Sequential(
            nn.Linear(2 * latent_dim, top * stem * stem, bias=False),
            nn.Unflatten(1, (top, stem, stem)),
            nn.BatchNorm2d(top),
            nn.ReLU(inplace=True),
        )
        blocks = []
        ch = top
        for _ in range(n_up - 1):
            blocks.append(
                nn.Sequential(
                    nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(ch // 2),
                    nn.ReLU(inplace=True),
                )
            )
            ch //= 2
        # last block: upsample to full size and project to image channels
        blocks.append(nn.Sequential(nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()))
        self.blocks = nn.ModuleList(blocks)

    def features(self, z: Tensor, y: Tensor, level: int = 0) -> Tensor:
        """Feature map after the stem and ``level`` blocks (level 0 = stem output)."""
        h = self.stem(torch.cat([z, self.embed(y)], dim=1))  # (B, top, s, s)
        for block in self.blocks[:level]:
            h = block(h)
        return h

    def decode(self, h: Tensor, level: int = 0) -> Tensor:
        """Image from the feature map that :meth:`features` returned at ``level``."""
        for block in self.blocks[level:]:
            h = block(h)
        return h

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.decode(self.features(z, y))  # (B, C, H, W) in [-1, 1]

    def render(
        self, z: Tensor, y: Tensor, level: int = 0, feature_offsets: Tensor | None = None
    ) -> Tensor:
        """Images in [-1, 1] with ``feature_offsets`` added to the feature map at ``level``: how a
        latent-space distilled set, which may store such offsets beside its latents, is drawn."""
        h = self.features(z, y, level)
        if feature_offsets is not None:
            h = h + feature_offsets
        return self.decode(h, level)

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard-normal latents on the generator's device."""
        device = self.embed.weight.device
        return torch.randn(n, self.latent_dim, generator=generator).to(device)
