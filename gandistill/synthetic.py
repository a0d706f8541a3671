"""What distillation optimises: the synthetic set (latents through a frozen generator, or
pixels) and the ways to initialise it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gandistill.artifacts import DistilledSet
from gandistill.classifier import RealClassifier
from gandistill.config import DistillConfig
from gandistill.data import DatasetInfo
from gandistill.models import Generator, from_gan_range

SET_PARAMETERS = ("latents", "pixels", "feature_offsets", "residuals")  # of SyntheticSet


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

    def forward(self, rows: slice = slice(None)) -> Tensor:
        """The images of ``rows`` (default all)."""
        if self.pixels is not None:  # all rows: the parameter itself, not a view of it
            return self.pixels if rows == slice(None) else self.pixels[rows]
        g = self.generator
        level = max(self.feature_level, 0)
        h = g.features(self.latents[rows], self.labels[rows], level)
        if self.feature_offsets is not None:
            h = h + self.feature_offsets[rows]
        x = self.info.normalize(from_gan_range(g.decode(h, level)))
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


@torch.no_grad()
def decode_latents(ds: DistilledSet, generator: Generator) -> Tensor:
    """Normalised images of a latent-space distilled set, decoded again through ``generator``."""
    syn = SyntheticSet(
        ds.labels,
        ds.info,
        generator=generator,
        latents=ds.latents,
        feature_level=ds.config.distill.feature_level,
        residual=ds.residuals is not None,
    )
    if ds.feature_offsets is not None:
        syn.feature_offsets.copy_(ds.feature_offsets)
    if ds.residuals is not None:
        syn.residuals.copy_(ds.residuals)
    return syn()


# --- initialisation ----------------------------------------------------------------------------


def truncated_normal(n: int, dim: int, bound: float, gen: torch.Generator) -> Tensor:
    z = torch.randn(n, dim, generator=gen)
    while bound > 0 and (bad := z.abs() > bound).any():
        z[bad] = torch.randn(int(bad.sum()), generator=gen)
    return z


@torch.no_grad()
def best_of_k(
    generator: Generator,
    clf: RealClassifier,
    ipc: int,
    k: int,
    gen: torch.Generator,
    device: torch.device,
) -> Tensor:
    """Per class, draw ``k · ipc`` candidates, keep the half the classifier is most confident
    about, then pick ``ipc`` of them by k-center greedy in its feature space (starting from the
    most confident) so the chosen latents are both typical and spread out."""
    chosen = []
    for c in range(generator.num_classes):
        z = generator.sample_latents(k * ipc, gen).to(device)
        y = torch.full((len(z),), c, device=device)
        x = from_gan_range(generator(z, y))
        conf = clf.logits(x).softmax(1)[:, c]
        keep = conf.argsort(descending=True)[: max(ipc, len(z) // 2)]
        feats = F.normalize(clf.features(x[keep]), dim=1)
        picks = [0]
        dist = (feats - feats[0]).norm(dim=1)
        for _ in range(ipc - 1):
            nxt = int(dist.argmax())
            picks.append(nxt)
            dist = torch.minimum(dist, (feats - feats[nxt]).norm(dim=1))
        chosen.append(z[keep[picks]])
    return torch.cat(chosen)


def resolve_init(dc: DistillConfig) -> str:
    """The initialisation ``auto`` stands for. Latent space: best-of-K generator samples at small
    IPC (at IPC 1 they score 79% against 58% for one random real image per class on mnist5k),
    a random real subset inverted into the generator from IPC 10 (where generator samples fall
    behind real images: 88% against 95%)."""
    if dc.init != "auto":
        return dc.init
    if dc.space == "pixel":
        return "noise"
    return "best_of_k" if dc.ipc < 10 else "real"


def invert(
    generator: Generator,
    images: Tensor,
    labels: Tensor,
    steps: int,
    candidates: int,
    gen: torch.Generator,
) -> Tensor:
    """Latents whose decodings approximate ``images`` (in the generator's [-1, 1] range).

    Of ``candidates`` prior draws per image the closest one starts an Adam descent of the pixel
    MSE (``steps`` steps, lr 0.05) with a weak pull towards the prior's typical radius.
    """
    n, dim = len(images), generator.latent_dim
    generator.requires_grad_(False).eval()
    with torch.no_grad():
        best = generator.sample_latents(n, gen)
        best_err = (generator(best, labels) - images).pow(2).flatten(1).mean(1)
        for _ in range(candidates - 1):
            z = generator.sample_latents(n, gen)
            err = (generator(z, labels) - images).pow(2).flatten(1).mean(1)
            better = err < best_err
            best[better], best_err[better] = z[better], err[better]
    z = best.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(steps):
        err = (generator(z, labels) - images).pow(2).flatten(1).mean(1).sum()
        prior = 1e-3 * (z.norm(dim=1) / math.sqrt(dim) - 1.0).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        (err + prior).backward()
        opt.step()
    return z.detach()
