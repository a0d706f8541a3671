"""Initialisations of the synthetic set, as registries by space: noise, real images or decoded
best-of-K generator samples in pixel space; normal, truncated, best-of-K generator samples or
real images inverted into the generator in latent space. ``herding`` and ``kmeans`` start from
that coreset of the real data and then proceed as ``real``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from gandistill.classifier import RealClassifier
from gandistill.config import DistillConfig
from gandistill.data import DatasetInfo, ImageTensors
from gandistill.distillation.synthetic import SyntheticSet
from gandistill.errors import DataError
from gandistill.models import Generator, from_gan_range, to_gan_range
from gandistill.registry import Registry
from gandistill.runtime import available_memory, step_generator
from gandistill.selection import select_coreset, select_herding, select_kmeans


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
    select: str = "kcenter",
    batch_size: int = 500,
    scale: float = 1.0,
) -> Tensor:
    """Per class, draw ``k · ipc`` candidate latents (``scale`` · N(0, I)) and keep ``ipc`` of
    them, chosen in the real-data classifier's (L2-normalised) feature space by ``select``:

    - ``kcenter``: the half the classifier is most confident about, then k-center greedy from
      the most confident, so the chosen latents are both typical and spread out;
    - ``herding``: greedy mean matching over all candidates (the set's mean feature follows the
      class's generated mean; at ``ipc`` 1 the candidate nearest it);
    - ``kmeans``: ``ipc`` clusters of all candidates, the candidate nearest each centroid.

    Returns:
        The chosen latents (num_classes · ipc, latent_dim), class by class, on ``device``.
    """
    chosen = []
    for c in range(generator.num_classes):
        z = generator.sample_latents(k * ipc, gen).to(device) * scale
        conf, feats = [], []
        for zb in z.split(batch_size):
            x = from_gan_range(generator(zb, torch.full((len(zb),), c, device=device)))
            f, logits = clf.features_and_logits(x)
            conf.append(logits.softmax(1)[:, c])
            feats.append(F.normalize(f.float(), dim=1))
        conf, feats = torch.cat(conf), torch.cat(feats)
        if select == "herding":
            picks = select_herding(feats.cpu(), ipc).to(device)
        elif select == "kmeans":
            seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
            # one k-means++ run (scikit-learn's default for that init): ten restarts took
            # about 1.3 s per class at ipc 50 and the candidates are random draws already
            picks = select_kmeans(feats.cpu(), ipc, seed, n_init=1).to(device)
        else:
            keep = conf.argsort(descending=True)[: max(ipc, len(z) // 2)]
            feats = feats[keep]
            first = [0]
            dist = (feats - feats[0]).norm(dim=1)
            for _ in range(ipc - 1):
                nxt = int(dist.argmax())
                first.append(nxt)
                dist = torch.minimum(dist, (feats - feats[nxt]).norm(dim=1))
            picks = keep[first]
        chosen.append(z[picks])
    return torch.cat(chosen)


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


# --- the registry ------------------------------------------------------------------------------

REAL_INITS = ("real", "herding", "kmeans")  # inits that start from real training images


@dataclass
class Start:
    """What an initialisation may draw on."""

    dc: DistillConfig
    info: DatasetInfo
    labels: Tensor  # (N,) class-major, on the device
    real: Tensor | None  # (N, C, H, W) real images in [0, 1] for the real starts, on the device
    gen: torch.Generator  # the initialisation's own stream
    device: torch.device
    generator: Generator | None  # latent space, and pixel space's best_of_k
    classifier: Callable[[], RealClassifier]  # built (or loaded) on first call


# pixel space: normalised images (N, C, H, W); latent space: latents (N, latent_dim)
PIXEL_INITS: Registry[Callable[[Start], Tensor]] = Registry(
    "pixel-space init",
    {
        "noise": lambda s: torch.randn(_image_shape(s), generator=s.gen),
        "real": lambda s: s.info.normalize(s.real),
        "best_of_k": lambda s: _decode(s, _best_of_k(s)),
    },
)
LATENT_INITS: Registry[Callable[[Start], Tensor]] = Registry(
    "latent-space init",
    {
        "normal": lambda s: (
            s.dc.latent_scale * torch.randn(len(s.labels), s.generator.latent_dim, generator=s.gen)
        ),
        "truncated": lambda s: truncated_normal(
            len(s.labels), s.generator.latent_dim, s.dc.truncation, s.gen
        ),
        "best_of_k": lambda s: _best_of_k(s),
        "real": lambda s: invert(
            s.generator,
            to_gan_range(s.real),
            s.labels,
            s.dc.invert_steps,
            s.dc.init_candidates,
            s.gen,
        ),
    },
)


def _best_of_k(s: Start) -> Tensor:
    return best_of_k(
        s.generator,
        s.classifier(),
        s.dc.ipc,
        s.dc.init_candidates,
        s.gen,
        s.device,
        s.dc.select,
        scale=s.dc.latent_scale,
    )


@torch.no_grad()
def _decode(s: Start, z: Tensor, batch_size: int = 500) -> Tensor:
    """Normalised images of latents ``z`` (one per label of ``s``) through the generator: the
    pixels a latent set with these latents starts at."""
    s.generator.eval()
    parts = [
        s.info.normalize(from_gan_range(s.generator(zb, yb)))
        for zb, yb in zip(z.split(batch_size), s.labels.split(batch_size), strict=True)
    ]
    return torch.cat(parts)


def _image_shape(s: Start) -> tuple[int, int, int, int]:
    return (len(s.labels), s.info.channels, s.info.image_size, s.info.image_size)


SET_COPIES = 4  # float32 copies of the set a run holds: itself, its gradient, Adam's 2 moments


def check_init(init: str, ipc: int, train: ImageTensors) -> None:
    """One-line :class:`DataError`, before the set is made, when a real start asks for more
    images than a class has, or when the set alone would not fit in the memory available (an
    IPC of 100000000 is refused here instead of in an allocation)."""
    counts = train.class_counts()
    c = min(range(len(counts)), key=counts.__getitem__)
    if init in REAL_INITS and ipc > counts[c]:
        raise DataError(
            f"ipc {ipc} exceeds the {counts[c]} training images of class {c} for init '{init}'"
        )
    pixels = math.prod(train.images.shape[1:])
    need, have = ipc * train.num_classes * pixels * 4 * SET_COPIES, available_memory()
    if need > have:
        raise DataError(
            f"ipc {ipc} needs about {need / 2**30:.3g} GiB for the set of {train.num_classes} "
            f"classes alone; {have / 2**30:.3g} GiB of memory are available"
        )


def real_start(
    init: str,
    train: ImageTensors,
    ipc: int,
    seed: int,
    gen: torch.Generator,
    classifier: Callable[[], RealClassifier],
    device: torch.device,
) -> Tensor | None:
    """The real images (N, C, H, W) in [0, 1] a real start begins at: a random subset drawn
    from ``gen`` for ``real``, that coreset of the training split for ``herding``/``kmeans``."""
    if init == "real":
        return train.sample_per_class([ipc] * len(train.class_indices), gen)[0]
    if init in REAL_INITS:
        idx = select_coreset(init, train, ipc, seed, classifier(), device)
        return train.images[idx].float() / 255.0
    return None


def initial_set(
    dc: DistillConfig,
    info: DatasetInfo,
    train: ImageTensors,
    seed: int,
    device: torch.device,
    generator: Generator | None,
    classifier: Callable[[], RealClassifier],
    fresh: bool = True,
) -> SyntheticSet:
    """The set as ``dc.init`` starts it (a resolved config: see :func:`gandistill.config.resolve`);
    zeros to load a saved state into when not ``fresh`` (skipping a best-of-K search or an
    inversion whose result would be overwritten). Every draw comes from
    ``step_generator(seed, -10)``."""
    init = dc.init
    gen = step_generator(seed, -10)
    labels = torch.arange(info.num_classes).repeat_interleave(dc.ipc).to(device)
    real = None
    if fresh:
        real = real_start(init, train, dc.ipc, seed, gen, classifier, device)
        real = None if real is None else real.to(device)
        init = "real" if init in REAL_INITS else init  # a coreset starts as a real subset does
    start = Start(dc, info, labels, real, gen, device, generator, classifier)
    inits = PIXEL_INITS if dc.space == "pixel" else LATENT_INITS  # checked by config
    if dc.space == "pixel":
        pixels = inits[init](start) if fresh else torch.zeros(_image_shape(start))
        return SyntheticSet(labels, info, pixels=pixels.to(device))
    z = inits[init](start) if fresh else torch.zeros(len(labels), generator.latent_dim)
    syn = SyntheticSet(
        labels,
        info,
        generator=generator,
        latents=z.to(device),
        feature_level=dc.feature_level,
        residual=dc.space == "hybrid",
    )
    if real is not None and syn.residuals is not None:
        with torch.no_grad():  # start exactly at the real subset
            syn.residuals.copy_(info.normalize(real) - syn())
    return syn
