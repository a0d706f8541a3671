"""What a GAN training shows while it runs: grids of samples, TensorBoard scalars, a progress bar.

Rank 0 alone calls :func:`attach_monitor`; the other ranks of a multi-process run log nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from ignite.handlers.tensorboard_logger import OptimizerParamsHandler, TensorboardLogger
from torch import Tensor, nn
from torch.optim import Optimizer

from gandistill.config import TrainConfig
from gandistill.distances import diversity_ratios
from gandistill.files import image_grid
from gandistill.handlers import ImageGrid
from gandistill.models import from_gan_range

GRID_COLUMNS = 8  # samples per class in the TensorBoard grid
DIVERSITY_SAMPLES = 32  # samples (and real images) per class of the logged diversity
SAMPLES_TAG = "images/samples"


@torch.no_grad()
def class_samples(generator: nn.Module, z: Tensor, num_classes: int) -> Tensor:
    """Samples (K·n, C, H, W) in [0, 1], class by class, one per latent of ``z`` (n, D)."""
    n = z.shape[0]
    labels = torch.arange(num_classes, device=z.device).repeat_interleave(n)
    return from_gan_range(generator(z.repeat(num_classes, 1), labels).float())


@torch.no_grad()
def diversity_scalars(
    generators: dict[str, nn.Module], z: Tensor, real01: Tensor, real_labels: Tensor
) -> dict[str, float]:
    """``diversity/<name>`` (mean over classes) and ``diversity/<name>_min`` (the least diverse
    class) of each generator's samples of latents ``z``, each class against ``real01``'s
    images of it (see :func:`~gandistill.evaluation.metrics.diversity_ratios`)."""
    num_classes = int(real_labels.max()) + 1
    out = {}
    for name, g in generators.items():
        was_training = g.training
        g.eval()
        fake = class_samples(g, z, num_classes).cpu()
        g.train(was_training)
        labels = torch.arange(num_classes).repeat_interleave(z.shape[0])
        ratios = diversity_ratios(fake, labels, real01, real_labels, num_classes)
        out[f"diversity/{name}"] = sum(ratios) / len(ratios)
        out[f"diversity/{name}_min"] = min(ratios)
    return out


def class_grid(generator: nn.Module, z: Tensor, num_classes: int) -> Tensor:
    """A (C, H, W) grid in [0, 1]: one row per class, one column per latent of ``z``."""
    return image_grid(class_samples(generator, z, num_classes), nrow=z.shape[0])


def attach_monitor(
    engine: Engine,
    log_dir: Path,
    tc: TrainConfig,
    optimizers: dict[str, Optimizer],
    samples01: Callable[[], Tensor],
    diversity: Callable[[], dict[str, float]] | None = None,
) -> tuple[TensorboardLogger, ImageGrid]:
    """Log the step's outputs and learning rates to TensorBoard, and samples.

    Args:
        engine: the training engine, whose output is the step's dict of losses.
        log_dir: where the TensorBoard events go.
        tc: the ``train`` section (``log_every``, ``sample_every``).
        optimizers: tag suffix (``lr_g``, ...) → optimiser whose learning rate is logged.
        samples01: the samples (N, C, H, W) in [0, 1] whose grid (a row of
            :data:`GRID_COLUMNS` per class) is logged every ``sample_every`` iterations.
        diversity: scalars (tag → value) logged at the same iterations: the intra-class
            diversity that shows a collapse as it happens.

    Returns:
        The TensorBoard logger (for further writes, to close at the end) and the grid
        handler (to log the final samples).
    """
    tb = TensorboardLogger(log_dir=str(log_dir))
    tb.attach_output_handler(
        engine,
        Events.ITERATION_COMPLETED(every=tc.log_every),
        tag="train",
        output_transform=lambda out: out,
    )
    for name, opt in optimizers.items():
        tb.attach(
            engine,
            OptimizerParamsHandler(opt, param_name="lr", tag=f"train/{name}"),
            Events.ITERATION_COMPLETED(every=tc.log_every),
        )
    grid = ImageGrid(tb, SAMPLES_TAG, samples01, GRID_COLUMNS)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=tc.sample_every), grid)
    if diversity is not None:

        def log_diversity(e: Engine) -> None:
            for tag, value in diversity().items():
                tb.writer.add_scalar(tag, value, e.state.iteration)

        engine.add_event_handler(Events.ITERATION_COMPLETED(every=tc.sample_every), log_diversity)
    return tb, grid
