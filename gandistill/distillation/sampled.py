"""Distilled sets on demand: a static set of ``ipc`` images per class drawn from a generator.

The latents are drawn once from the seed, decoded through the generator's EMA weights, and the
result is an ordinary latent-space :class:`~gandistill.files.DistilledSet` (``stop_reason``
``sampled``): ``evaluate``, ``benchmark`` and :meth:`DistilledSet.load` treat it like any other
set, and :meth:`DistilledSet.decode` draws the same images again from its latents and the
generator's hash. Static means the images are drawn once; nothing here regenerates a set per
batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

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


def set_bytes(ipc: int, num_classes: int, image_numel: int, latent_dim: int) -> int:
    """Bytes a sampled set holds in memory: float32 images, uint8 images, latents, labels."""
    n = ipc * num_classes
    return n * (image_numel * 5 + latent_dim * 4 + 8)


@torch.no_grad()
def sample_set(
    generator: str | Path | GeneratorCheckpoint,
    ipc: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 500,
) -> DistilledSet:
    """A static set of ``ipc`` samples per class from ``generator``'s EMA weights.

    Args:
        generator: a generator file (or a loaded one).
        ipc: images per class, at least 1.
        seed: seeds the latents: a seed gives the same set, another seed another one.
        device: where the generator runs.
        batch_size: images decoded at once.

    Returns:
        A latent-space set (labels sorted by class) whose config is the generator's with
        ``seed`` and ``distill.ipc`` set to the values used.

    Raises:
        ConfigError: ``ipc`` below 1, or a set too large for memory (with its estimated size).
    """
    ckpt = (
        generator
        if isinstance(generator, GeneratorCheckpoint)
        else load_generator_checkpoint(generator, device=device)
    )
    g, info = ckpt.generator.to(device).eval(), ckpt.info
    if ipc < 1:
        raise ConfigError(f"--ipc must be at least 1, got {ipc}")
    numel = info.channels * info.image_size * info.image_size
    need = set_bytes(ipc, info.num_classes, numel, g.latent_dim)
    if need > MAX_SET_BYTES:
        raise ConfigError(
            f"--ipc {ipc} would need about {need / 1024**3:.1f} GiB for "
            f"{ipc * info.num_classes} images (at most {MAX_SET_BYTES / 1024**3:.0f} GiB)"
        )
    labels = torch.arange(info.num_classes).repeat_interleave(ipc)
    latents = g.sample_latents(len(labels), step_generator(seed, SAMPLE_KEY)).cpu()
    images01 = torch.cat(
        [
            from_gan_range(g(z.to(device), y.to(device)).float()).cpu()
            for z, y in zip(latents.split(batch_size), labels.split(batch_size), strict=True)
        ]
    )
    cfg = ckpt.config
    cfg = replace(cfg, seed=seed, distill=replace(cfg.distill, ipc=ipc, feature_level=-1))
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
