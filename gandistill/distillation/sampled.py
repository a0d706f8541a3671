"""Distilled sets on demand: a static set of ``ipc`` images per class drawn from a generator.

The latents are drawn once from the seed (by default ``candidates`` per kept image, of which
``ipc`` per class are kept in the real-data classifier's features: the latent init
``best_of_k``), decoded through the generator's EMA weights, and the result is an ordinary
latent-space :class:`~gandistill.files.DistilledSet` (``stop_reason``
``sampled``): ``evaluate``, ``benchmark`` and :meth:`DistilledSet.load` treat it like any other
set, and :meth:`DistilledSet.decode` draws the same images again from its latents and the
generator's hash. Static means the images are drawn once; nothing here regenerates a set per
batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from gandistill.classifier import get_classifier
from gandistill.config.schema import MAX_CANDIDATES
from gandistill.data import Splits, load_dataset, require_compatible
from gandistill.defaults import SAMPLE_CANDIDATES, SAMPLE_LATENT_SCALE, SAMPLE_SELECT
from gandistill.distillation.init import best_of_k
from gandistill.errors import ConfigError
from gandistill.files import (
    DistilledSet,
    GeneratorCheckpoint,
    load_generator_checkpoint,
    to_uint8,
)
from gandistill.models import from_gan_range
from gandistill.runtime import library_versions, step_generator

SAMPLE_KEY = -40  # step_generator key of a sampled set's latents
MAX_SET_BYTES = 8 * 1024**3  # refuse a set whose tensors would need more memory than this
STOP_REASON = "sampled"
SELECTIONS = ("none", "kcenter", "herding", "kmeans")  # "none": the first ipc draws per class


def set_bytes(ipc: int, num_classes: int, image_numel: int, latent_dim: int) -> int:
    """Bytes a sampled set holds in memory: float32 images, uint8 images, latents, labels."""
    n = ipc * num_classes
    return n * (image_numel * 5 + latent_dim * 4 + 8)


def default_latent_scale(ipc: int) -> float:
    """ψ of a set of ``ipc`` per class when none is given (``defaults.SAMPLE_LATENT_SCALE``)."""
    return SAMPLE_LATENT_SCALE.get(ipc, 1.0)


def selection_of(ds: DistilledSet) -> tuple[str, int]:
    """How a sampled set kept its latents: (``select``, candidates per image), ``("none", 1)``
    for the first draws."""
    dc = ds.config.distill
    return (dc.select, dc.init_candidates) if dc.init == "best_of_k" else ("none", 1)


def sample_set(
    generator: str | Path | GeneratorCheckpoint,
    ipc: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 500,
    select: str = SAMPLE_SELECT,
    candidates: int = SAMPLE_CANDIDATES,
    data: Splits | None = None,
    progress: bool = False,
    latent_scale: float | None = None,
) -> DistilledSet:
    """A static set of ``ipc`` samples per class from ``generator``'s EMA weights.

    Args:
        generator: a generator file (or a loaded one).
        ipc: images per class, at least 1.
        seed: seeds the latents: a seed gives the same set, another seed another one.
        device: where the generator runs.
        batch_size: images decoded at once.
        select: ``none`` keeps the first ``ipc`` draws of each class; ``kcenter``, ``herding``
            or ``kmeans`` draws ``candidates · ipc`` per class and keeps ``ipc`` of them in the
            real-data classifier's features (latent init ``best_of_k`` with that
            ``distill.select``; the classifier is the run's cached one, trained on the training
            split when missing).
        candidates: candidates per kept image when selecting.
        data: the dataset's splits for the classifier (loaded from the generator's config when
            missing and needed).
        progress: show progress while a missing classifier trains.
        latent_scale: ψ: every latent (candidate or kept draw) is ψ · N(0, I); below 1 the
            draws keep nearer each class's typical sample (the truncation trick), which is what
            one image per class needs; 0 draws that sample alone. None: 0.3 at ``ipc`` 1, else
            1 (``defaults.SAMPLE_LATENT_SCALE``).

    Returns:
        A latent-space set (labels sorted by class) whose config is the generator's with
        ``seed``, ``distill.ipc`` and how the latents were drawn set to the values used:
        ``distill.init`` ``normal`` (no selection) or ``best_of_k`` with ``init_candidates``
        and ``select`` (see :func:`selection_of`), and ``distill.latent_scale``.

    Raises:
        ConfigError: ``ipc`` below 1, ``candidates`` outside 1..``MAX_CANDIDATES``, an unknown
            ``select``, ``latent_scale`` outside 0..1, or a set too large for memory (with its
            estimated size).
    """
    ckpt = (
        generator
        if isinstance(generator, GeneratorCheckpoint)
        else load_generator_checkpoint(generator, device=device)
    )
    device = torch.device(device)
    g, info = ckpt.generator.to(device).eval(), ckpt.info
    if ipc < 1:
        raise ConfigError(f"--ipc must be at least 1, got {ipc}")
    if select not in SELECTIONS:
        raise ConfigError(f"unknown selection '{select}' (use {', '.join(SELECTIONS)})")
    if not 1 <= candidates <= MAX_CANDIDATES:
        raise ConfigError(f"--candidates must lie in 1..{MAX_CANDIDATES}, got {candidates}")
    if latent_scale is None:
        latent_scale = default_latent_scale(ipc)
    if not 0.0 <= latent_scale <= 1.0:
        raise ConfigError(f"--latent-scale must lie in 0..1, got {latent_scale}")
    numel = info.channels * info.image_size * info.image_size
    need = set_bytes(ipc, info.num_classes, numel, g.latent_dim)
    if select != "none":  # the candidates of one class are decoded (in batches) at a time
        need = max(need, candidates * ipc * (numel + g.latent_dim) * 4)
    if need > MAX_SET_BYTES:
        raise ConfigError(
            f"--ipc {ipc} would need about {need / 1024**3:.1f} GiB for "
            f"{ipc * info.num_classes} images (at most {MAX_SET_BYTES / 1024**3:.0f} GiB)"
        )
    labels = torch.arange(info.num_classes).repeat_interleave(ipc)
    cfg = ckpt.config
    gen = step_generator(seed, SAMPLE_KEY)
    if select == "none":
        latents = g.sample_latents(len(labels), gen).cpu() * latent_scale  # no gradients
        cfg = replace(cfg, distill=replace(cfg.distill, init="normal"))
    else:
        data = data if data is not None else load_dataset(cfg.data)
        require_compatible(info, data.info, "the generator")
        # trained here when not cached, so outside any no_grad
        clf = get_classifier(
            cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, data, device, progress
        )
        latents = best_of_k(
            g, clf, ipc, candidates, gen, device, select, batch_size, scale=latent_scale
        ).cpu()
        cfg = replace(
            cfg,
            distill=replace(
                cfg.distill, init="best_of_k", init_candidates=candidates, select=select
            ),
        )
    with torch.no_grad():
        images01 = torch.cat(
            [
                from_gan_range(g(z.to(device), y.to(device)).float()).cpu()
                for z, y in zip(latents.split(batch_size), labels.split(batch_size), strict=True)
            ]
        )
    cfg = replace(
        cfg,
        seed=seed,
        distill=replace(cfg.distill, ipc=ipc, feature_level=-1, latent_scale=latent_scale),
    )
    return DistilledSet(
        labels=labels,
        images_float=info.normalize(images01),
        images_uint8=to_uint8(images01),
        info=info,
        config=cfg,
        space="latent",
        latents=latents,
        generator_path=str(ckpt.path),
        generator_sha256=ckpt.sha256,
        stop_reason=STOP_REASON,
        history=[],
        versions=library_versions(),
    )
