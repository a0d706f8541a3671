"""Small ignite-style handlers that both training loops (the GAN's and distillation's) share:
their checkpoints (one resume mechanism: ignite's ``Checkpoint`` writing atomically), the stop
after Ctrl-C or SIGTERM with its last checkpoint, the stop rules of a run that ends by
convergence or by a wall-clock budget, their progress bars, and the image grids they show in
TensorBoard.

Each one decides the same on every rank of a multi-process run: the interrupt flag is OR-ed over
the ranks and rank 0's clock decides the budget, so all ranks stop after the same iteration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, ProgressBar
from ignite.handlers.checkpoint import BaseSaveHandler
from ignite.handlers.tensorboard_logger import TensorboardLogger
from torch import Tensor

from gandistill.files import atomic_save, image_grid
from gandistill.parallel import any_rank, barrier, from_main, is_main
from gandistill.runtime import InterruptFlag


class AtomicSaver(BaseSaveHandler):
    """ignite's save handler for both loops' checkpoints: rank 0 writes each file through
    :func:`~gandistill.files.atomic_save` (the old file or the new one, never a partial one),
    and deletes an outdated checkpoint only once the next one is on disk.

    ignite removes the oldest file before writing the new one, so a kill in between would leave
    ``n_saved - 1`` checkpoints (none with ``n_saved: 1``); here it leaves one too many, which
    the next resume prunes.
    """

    def __init__(self, dirname: str | Path) -> None:
        self.dirname = Path(dirname)
        self._outdated: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if is_main():
            atomic_save(checkpoint, self.dirname / filename)
            for name in self._outdated:
                if name != filename:  # a re-save under the same name replaces it in place
                    (self.dirname / name).unlink(missing_ok=True)
        self._outdated.clear()

    def remove(self, filename: str) -> None:
        self._outdated.append(filename)


def make_checkpoint(
    to_save: dict[str, Any], dirname: str | Path, n_saved: int = 1, filename: str = ""
) -> Checkpoint:
    """The ignite handler that saves ``to_save`` (objects with ``state_dict()``) into
    ``dirname`` at the engine's iteration, keeping the newest ``n_saved`` files.

    Args:
        to_save: the objects; a single one is saved as its bare ``state_dict()``.
        dirname: the folder of the checkpoints.
        n_saved: how many files to keep.
        filename: a fixed file name (each save replaces the last); by default
            ``checkpoint_<iteration>.pt``.
    """
    pattern = filename.replace("{", "{{").replace("}", "}}") if filename else None
    return Checkpoint(
        to_save,
        AtomicSaver(dirname),
        n_saved=n_saved,
        filename_pattern=pattern,
        global_step_transform=lambda engine, _: engine.state.iteration,
    )


class StopOnInterrupt:
    """After Ctrl-C or SIGTERM on any rank (``flag`` raised), save the completed iteration and
    stop the engine without its COMPLETED event; attach on ITERATION_COMPLETED, after the
    handlers whose results the save should hold.

    Args:
        flag: the :class:`~gandistill.runtime.InterruptFlag` the run is entered in.
        save: writes the checkpoint of the engine's current iteration.
        saved: whether that iteration is already saved (by a periodic checkpoint).
        when: whether the iteration may be the last (e.g. its losses are finite); if not, the
            run goes on and another handler ends it.
    """

    def __init__(
        self,
        flag: InterruptFlag,
        save: Callable[[Engine], object],
        saved: Callable[[Engine], bool] = lambda engine: False,
        when: Callable[[Engine], bool] = lambda engine: True,
    ) -> None:
        self.flag, self.save, self.saved, self.when = flag, save, saved, when
        self.stopped_at: int | None = None  # the iteration saved and stopped after

    def __call__(self, engine: Engine) -> None:
        requested = any_rank(self.flag.requested)  # a collective: every rank calls it
        if not requested or not self.when(engine):
            return
        if not self.saved(engine):
            self.save(engine)
        barrier()  # no rank exits while rank 0 writes
        self.stopped_at = engine.state.iteration
        engine.terminate(skip_completed=True)


class LossPatience:
    """Convergence rule: the loss, smoothed by an exponential moving average, has not improved
    by a relative ``tolerance`` for ``patience`` iterations (0: never converges).

    Its state (smoothed loss, best value, iteration of the best) resumes with the run.
    """

    def __init__(self, patience: int, tolerance: float, smoothing: float = 0.9) -> None:
        self.patience, self.tolerance, self.smoothing = patience, tolerance, smoothing
        self.smoothed: float | None = None
        self.best = float("inf")
        self.best_at = 0

    def converged(self, loss: float, iteration: int) -> bool:
        """Take iteration ``iteration``'s loss; whether the run has converged."""
        s = self.smoothed
        self.smoothed = loss if s is None else self.smoothing * s + (1 - self.smoothing) * loss
        if self.smoothed < self.best * (1.0 - self.tolerance):
            self.best, self.best_at = self.smoothed, iteration
        return bool(self.patience) and iteration - self.best_at >= self.patience

    def state_dict(self) -> dict:
        return {"smoothed": self.smoothed, "best": self.best, "at": self.best_at}

    def load_state_dict(self, state: dict) -> None:
        self.smoothed, self.best, self.best_at = state["smoothed"], state["best"], int(state["at"])


def budget_spent(seconds: float, minutes: float) -> bool:
    """Whether ``seconds`` of run time (rank 0's clock, for every rank) exhaust a budget of
    ``minutes`` (0: no budget)."""
    return bool(minutes) and from_main(seconds >= 60.0 * minutes)


class ImageGrid:
    """Writes a grid of ``images01()`` (N, C, H, W in [0, 1]), ``nrow`` to a row, to
    TensorBoard under ``tag`` at the engine's iteration; attach on ITERATION_COMPLETED(every=k)
    or call directly."""

    def __init__(
        self, tb: TensorboardLogger, tag: str, images01: Callable[[], Tensor], nrow: int
    ) -> None:
        self.tb, self.tag, self.images01, self.nrow = tb, tag, images01, nrow

    def __call__(self, engine: Engine) -> None:
        picture = image_grid(self.images01(), self.nrow)
        self.tb.writer.add_image(self.tag, picture, engine.state.iteration)


def attach_progress(
    engine: Engine,
    desc: str,
    fields: Callable[[Any], dict],
    max_minutes: float,
    seconds: Callable[[Any], float],
    stopped_by: Callable[[], str | None],
) -> ProgressBar:
    """A bar over a loop's iterations showing ``fields(output)``, and the budget spent (from
    ``seconds(output)``) when there is one.

    A run that ends before its last iteration (``stopped_by()`` names why: the time budget,
    convergence) leaves its bar where it stopped, the reason in front (``train, stopped (time
    budget spent)``), not filled to 100%.
    """

    def shown(out: Any) -> dict:
        values = fields(out)
        if max_minutes:
            values["budget"] = f"{seconds(out) / 60:.1f}/{max_minutes:g} min"
        return values

    # with a time budget, the budget, not the iteration cap, decides the end: no ETA
    fmt = "{desc}[{n_fmt}/{total_fmt}] {percentage:3.0f}%|{bar}{postfix} [{elapsed}]"
    style = {"bar_format": fmt} if max_minutes else {}
    progress = ProgressBar(persist=True, desc=desc, **style)

    def close_where_stopped(e: Engine) -> None:
        bar, why = progress.pbar, stopped_by()
        if bar is not None and why:  # closed here: ignite's close would fill the bar
            bar.set_description(f"{desc}, stopped ({why})", refresh=False)
            bar.close()
            progress.pbar = None

    engine.add_event_handler(Events.COMPLETED, close_where_stopped)  # before ignite's close
    # closed on COMPLETED, however the run stops (a budget or convergence stop ends it before
    # the last iteration does), so later output starts on a new line
    progress.attach(engine, output_transform=shown, closing_event_name=Events.COMPLETED)
    return progress
