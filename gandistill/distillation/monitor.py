"""What a distillation shows while it runs: the progress bar (with the time budget when there is
one), a note on how long a run without a budget will take, TensorBoard scalars of every
iteration and grids of the set's images."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ignite.engine import Engine, Events
from ignite.handlers.tensorboard_logger import TensorboardLogger
from torch import Tensor

from gandistill.config import DistillConfig
from gandistill.handlers import ImageGrid
from gandistill.runtime import format_seconds

GRID_TAG = "images/distilled"
PACE_AFTER = (3, 30.0)  # the pace is judged after this many iterations or seconds, what comes first
PACE_NOTE_MINUTES = 10.0  # a run without a budget projected to take longer gets a note


def pace_note(seconds: float, iteration: int, max_iterations: int) -> str | None:
    """The note for a run without a time budget whose first ``iteration`` iterations took
    ``seconds``: how long its ``max_iterations`` will take at that pace and how to stop it
    sooner; None when it ends within :data:`PACE_NOTE_MINUTES`."""
    rate = seconds / iteration
    total = rate * max_iterations
    if total < 60 * PACE_NOTE_MINUTES:
        return None
    hours = f" ({total / 3600:.1f} h)" if total >= 3600 else ""
    return (
        f"gandistill: note: at {format_seconds(rate)} per iteration the {max_iterations} "
        f"iterations configured take about {format_seconds(total)}{hours} here; "
        "--set distill.max_minutes=N stops after N minutes (or lower distill.max_iterations)"
    )


def attach_pace_note(
    engine: Engine, max_iterations: int, write: Callable[[str], None] | None = None
) -> None:
    """Write :func:`pace_note` once, after the first iterations (see :data:`PACE_AFTER`), with
    ``write`` (default: to stderr)."""

    judged = False

    def judge(e: Engine) -> None:
        nonlocal judged
        seconds, it = e.state.output["seconds"], e.state.iteration
        if judged or (it < PACE_AFTER[0] and seconds < PACE_AFTER[1] and it < max_iterations):
            return
        judged = True
        note = pace_note(seconds, it, max_iterations)
        if note:
            (write or (lambda text: print(text, file=sys.stderr)))(note)

    engine.add_event_handler(Events.ITERATION_COMPLETED, judge)


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
