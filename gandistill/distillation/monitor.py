"""What a distillation shows while it runs: the progress bar (with the time budget when there is
one), TensorBoard scalars of every iteration and grids of the set's images."""

from __future__ import annotations

from collections.abc import Callable

from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar
from ignite.handlers.tensorboard_logger import TensorboardLogger
from torch import Tensor

from gandistill.config import DistillConfig
from gandistill.handlers import ImageGrid

GRID_TAG = "images/distilled"


def attach_progress(
    engine: Engine, max_minutes: float, stopped_by: Callable[[], str | None]
) -> ProgressBar:
    """A bar over the iterations showing the loss, and the budget spent when there is one.

    A run that ends before its last iteration (``stopped_by()`` names why: the time budget,
    convergence) leaves its bar where it stopped, the reason in front, not filled to 100%.
    """

    def shown(out: dict) -> dict:
        fields = {"loss": out["match_loss"]}
        if max_minutes:
            fields["budget"] = f"{out['seconds'] / 60:.1f}/{max_minutes:g} min"
        return fields

    # with a time budget, the budget, not the iteration cap, decides the end: no ETA
    fmt = "{desc}[{n_fmt}/{total_fmt}] {percentage:3.0f}%|{bar}{postfix} [{elapsed}]"
    style = {"bar_format": fmt} if max_minutes else {}
    progress = ProgressBar(persist=True, desc="distill", **style)

    def close_where_stopped(e: Engine) -> None:
        bar, why = progress.pbar, stopped_by()
        if bar is not None and why:  # closed here: ignite's close would fill the bar
            bar.set_description(f"distill, stopped ({why})", refresh=False)
            bar.close()
            progress.pbar = None

    engine.add_event_handler(Events.COMPLETED, close_where_stopped)  # before ignite's close
    # closed on COMPLETED, however the run stops (a budget or convergence stop ends it before
    # the epoch of max_iterations does), so later output starts on a new line
    progress.attach(engine, output_transform=shown, closing_event_name=Events.COMPLETED)
    return progress


def attach_tensorboard(
    engine: Engine, tb: TensorboardLogger, dc: DistillConfig, images01: Callable[[], Tensor]
) -> None:
    """Every iteration's output as ``distill/*`` scalars (each ``log_every``) and a grid of
    ``images01()`` (N, C, H, W) in [0, 1], a row per class, each ``image_every``."""
    tb.attach_output_handler(
        engine,
        Events.ITERATION_COMPLETED(every=dc.log_every),
        tag="distill",
        output_transform=lambda out: out,
    )

    grid = ImageGrid(tb, GRID_TAG, images01, nrow=dc.ipc)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=dc.image_every), grid)
