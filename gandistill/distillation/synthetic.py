"""What distillation optimises: the synthetic set (latents through a frozen generator, or
pixels)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gandistill.config import DistillConfig
from gandistill.data import DatasetInfo
from gandistill.models import Generator, from_gan_range
from gandistill.parallel import all_sum_, world_size

# of SyntheticSet; the last is trajectory matching's learnable student learning rate
SET_PARAMETERS = ("latents", "pixels", "feature_offsets", "residuals", "student_lr")


# --- what is optimised -----------------------------------------------------------------------


class SyntheticSet(nn.Module):
    """The distilled set's parameters; ``forward()`` returns normalised images (N, C, H, W).

    Pixel space: the images themselves. Latent space: latents ``z`` decoded by the frozen
    generator, optionally plus an offset of its feature map after block ``feature_level`` and a
    per-image pixel residual (both start at zero).
    """

    def __init__(
        self,
        labels: Tensor,
        info: DatasetInfo,
        generator: Generator | None = None,
        latents: Tensor | None = None,
        pixels: Tensor | None = None,
        feature_level: int = -1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("labels", labels)
        self.info = info
        self.generator = generator
        self.feature_level = feature_level
        self.latents = self.pixels = self.feature_offsets = self.residuals = None
        self.student_lr: nn.Parameter | None = None  # objective mtt: see add_student_lr
        if generator is None:
            assert pixels is not None
            self.pixels = nn.Parameter(pixels.clone())
            return
        assert latents is not None
        generator.requires_grad_(False).eval()
        self.latents = nn.Parameter(latents.clone())
        if feature_level >= 0:
            with torch.no_grad():
                shape = generator.features(latents[:1], labels[:1], feature_level).shape[1:]
            self.feature_offsets = nn.Parameter(latents.new_zeros(len(labels), *shape))
        if residual:
            self.residuals = nn.Parameter(
                latents.new_zeros(len(labels), info.channels, info.image_size, info.image_size)
            )

    def add_student_lr(self, value: float, learnable: bool) -> nn.Parameter:
        """Trajectory matching's student learning rate, optimised beside the set (not part of
        the saved set: the evaluation protocol fixes its own)."""
        self.student_lr = nn.Parameter(self.labels.new_tensor(value, dtype=torch.float32))
        self.student_lr.requires_grad_(learnable)
        return self.student_lr

    def image_parameters(self) -> list[nn.Parameter]:
        """The parameters the images are made of (all but the student learning rate)."""
        return [p for p in self.parameters() if p.requires_grad and p is not self.student_lr]

    def forward(self, rows: slice = slice(None)) -> Tensor:
        """The images of ``rows`` (default all)."""
        if self.pixels is not None:  # all rows: the parameter itself, not a view of it
            return self.pixels if rows == slice(None) else self.pixels[rows]
        offsets = None if self.feature_offsets is None else self.feature_offsets[rows]
        level = max(self.feature_level, 0)
        x = self.generator.render(self.latents[rows], self.labels[rows], level, offsets)
        x = self.info.normalize(from_gan_range(x))
        if self.residuals is not None:
            x = x + self.residuals[rows]
        return x

    def penalty(self, dc: DistillConfig, rows: slice = slice(None)) -> Tensor:
        """Terms that keep the set on the generator's manifold: means over the whole set, of
        which ``rows`` contribute their share (so the shares of all ranks add up to it)."""
        total = torch.zeros((), device=self.labels.device)
        n = len(self.labels)

        def mean_share(per_row: Tensor) -> Tensor:  # (N, ...) → this share of the mean
            return per_row[rows].sum() / per_row[0].numel() / n

        if self.latents is not None and dc.latent_penalty > 0:
            radius = self.latents.norm(dim=1) / math.sqrt(self.latents.shape[1])
            total = total + dc.latent_penalty * mean_share((radius - 1.0).pow(2))
        if self.feature_offsets is not None and dc.feature_penalty > 0:
            total = total + dc.feature_penalty * mean_share(self.feature_offsets.pow(2))
        if self.residuals is not None and dc.residual_penalty > 0:
            total = total + dc.residual_penalty * mean_share(self.residuals.pow(2))
        return total

    @torch.no_grad()
    def clamp_latents(self, max_radius: float) -> None:
        if self.latents is None or max_radius <= 0:
            return
        limit = max_radius * math.sqrt(self.latents.shape[1])
        norms = self.latents.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.latents.mul_(torch.clamp(limit / norms, max=1.0))

    def latent_radius(self) -> float:
        if self.latents is None:
            return 0.0
        return float((self.latents.detach().norm(dim=1) / math.sqrt(self.latents.shape[1])).mean())


def per_row(value: object, syn: SyntheticSet) -> bool:
    """Whether an optimiser state entry holds one row per image (moments, momentum buffers)."""
    return isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == len(syn.labels)


# --- the set's rows on several processes --------------------------------------------------------


def clip_gradients(syn: SyntheticSet, max_norm: float) -> None:
    """``clip_grad_norm_`` with the norm over all ranks' rows (each rank's gradients are zero
    outside its rows), so every world size clips the same way."""
    grads = [p.grad for p in syn.parameters() if p.grad is not None]
    total = torch.stack([g.pow(2).sum() for g in grads]).sum()
    norm = all_sum_(total).sqrt()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale)


@torch.no_grad()
def merge_rows(tensors: list[Tensor], rows: slice) -> None:
    """Give every rank every rank's rows of ``tensors`` (N, ...): each keeps its own ``rows``,
    zeroes the others, and a sum over ranks puts them together (exactly: x + 0 = x)."""
    if world_size() == 1:
        return
    for t in tensors:
        others = torch.ones(t.shape[0], dtype=torch.bool, device=t.device)
        others[rows] = False
        t.masked_fill_(others.view(-1, *([1] * (t.dim() - 1))), 0)
        all_sum_(t)
