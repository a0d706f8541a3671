"""Spectrally normalised conv discriminator with a projection head (Miyato & Koyama 2018)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class Discriminator(nn.Module):
    """``D(x, y) = w·φ(x) + <embed(y), φ(x)>`` with φ a spectrally normalised ConvNet.

    φ halves the spatial size with stride-2 convs until it is at most 4 (7 for 28×28 inputs gives
    28 → 14 → 7 → 4), doubling channels up to 4 · width, then sums over space.
    ``forward(..., return_features=True)`` also returns φ(x), the penultimate features used by
    the distribution-matching term.

    Args:
        num_classes: number of classes.
        width: channels of the first block.
        image_size: input size.
        channels: input channels.
    """

    def __init__(
        self, num_classes: int, width: int = 64, image_size: int = 28, channels: int = 1
    ) -> None:
        super().__init__()
        self.kwargs = dict(
            num_classes=num_classes, width=width, image_size=image_size, channels=channels
        )
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(channels, width, 3, 1, 1)),
            nn.LeakyReLU(0.1, inplace=True),
        ]
        ch, size = width, image_size
        while size > 4:
            out = min(ch * 2, width * 4)
            layers += [spectral_norm(nn.Conv2d(ch, out, 4, 2, 1)), nn.LeakyReLU(0.1, inplace=True)]
            ch, size = out, (size + 1) // 2
        self.body = nn.Sequential(*layers)
        self.feature_dim = ch
        self.linear = spectral_norm(nn.Linear(ch, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, ch))

    def forward(
        self, x: Tensor, y: Tensor, return_features: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        phi = self.body(x).sum(dim=(2, 3))  # (B, feature_dim)
        logits = self.linear(phi).squeeze(1) + (self.embed(y) * phi).sum(dim=1)  # (B,)
        return (logits, phi) if return_features else logits
