"""What a GAN training shows while it runs: grids of samples, TensorBoard scalars, a progress bar.

Rank 0 alone calls :func:`attach_monitor`; the other ranks of a multi-process run log nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar
from ignite.handlers.tensorboard_logger import OptimizerParamsHandler, TensorboardLogger
from torch import Tensor, nn
from torch.optim import Optimizer
from torchvision.utils import make_grid

from gandistill.config import TrainConfig
from gandistill.models import from_gan_range

GRID_COLUMNS = 8


@torch.no_grad()
def class_grid(generator: nn.Module, z: Tensor, num_classes: int) -> Tensor:
    """A (C, H, W) grid in [0, 1]: one row per class, one column per latent of ``z``."""
    n = z.shape[0]
    labels = torch.arange(num_classes, device=z.device).repeat_interleave(n)
    images = generator(z.repeat(num_classes, 1), labels)
    return make_grid(from_gan_range(images.float()), nrow=n, padding=2, pad_value=1.0)


def attach_monitor(
    engine: Engine,
    log_dir: Path,
    tc: TrainConfig,
    optimizers: dict[str, Optimizer],
    log_grid: Callable[[Engine], None],
) -> TensorboardLogger:
    """Log the step's outputs and learning rates to TensorBoard, samples, and show progress.

    Args:
        engine: the training engine, whose output is the step's dict of losses.
        log_dir: where the TensorBoard events go.
        tc: the ``train`` section (``log_every``, ``sample_every``, ``progress``).
        optimizers: tag suffix (``lr_g``, ...) → optimiser whose learning rate is logged.
        log_grid: writes a grid of samples; called every ``sample_every`` iterations.

    Returns:
        The TensorBoard logger, for further writes and to close at the end.
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
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=tc.sample_every), log_grid)
    if tc.progress:
        ProgressBar(persist=True, desc="train").attach(
            engine, output_transform=lambda out: {k: out[k] for k in ("loss_d", "loss_g")}
        )
    return tb
