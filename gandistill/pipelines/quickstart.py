"""``gandistill quickstart``: the three stages in one command on the embedded data.

Train a conditional GAN on ``mnist5k`` → distil IPC 10 through it → quick evaluation → the
headline table and where every output lies. Each stage writes its artifact into the run folder
and is skipped when its artifact is already there, so an interrupted quickstart continues where
it stopped, mid-training or mid-distillation (``overwrite`` starts over). Without a config file
the stages use the package defaults plus the preset ``gandistill/presets/quickstart.yaml`` (see
:func:`quickstart_preset`), sized for 10 minutes on a 2-core CPU (:data:`DEFAULT_MINUTES`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TypeVar

from gandistill.config import Config, apply_overrides, from_dict, load_config, read_yaml
from gandistill.distillation.loop import Distiller, state_path
from gandistill.errors import ConfigError
from gandistill.evaluation.render import REPORT_JSON, REPORT_MD, headline
from gandistill.evaluation.report import evaluate_distilled
from gandistill.files import GENERATOR_FILE, DistilledSet, load_generator_checkpoint
from gandistill.gan.checkpoints import STATE_DIR, TB_DIR
from gandistill.gan.trainer import train
from gandistill.locks import RunLock
from gandistill.runtime import format_seconds as _fmt

# package data, so that a non-editable install finds it too (pyproject.toml: package-data)
PRESET = "quickstart.yaml"
# the shares of a total (quickstart --minutes) that training and distillation are budgeted; the
# evaluation gets what they leave, which bounds its full-data reference only: loading the data,
# the real-data classifiers on a cold cache and the sets' networks (a fixed number of epochs
# each) have no budget of their own
STAGE_SHARES = {"train": 0.25, "distill": 0.2}
DEFAULT_MINUTES = 10  # what the preset's budgets are STAGE_SHARES of
MIN_EVAL_MINUTES = 0.01  # what the evaluation gets when the earlier stages spent the total
_T = TypeVar("_T")


@dataclass
class QuickstartResult:
    generator_path: Path
    distilled_path: Path
    report_dir: Path
    tensorboard_dir: Path
    report: dict
    seconds: dict[str, float]  # wall time of each stage that ran in this call


def quickstart_preset() -> dict:
    """The quickstart's own settings: the raw mapping of its preset file."""
    with resources.as_file(resources.files("gandistill") / "presets" / PRESET) as path:
        return read_yaml(path)


def quickstart_config(config: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """The quickstart's config: a file as given, else the defaults plus the quickstart's preset;
    then ``overrides``."""
    if config is not None:
        return load_config(config, overrides)
    return from_dict(Config, apply_overrides(quickstart_preset(), overrides))


def sized_to(cfg: Config, minutes: float) -> Config:
    """``cfg`` with training and distillation budgeted their :data:`STAGE_SHARES` of a total of
    ``minutes`` (``train.max_minutes``, ``distill.max_minutes``); each stage still stops at its
    iteration count when that comes first (on a GPU it may)."""
    if not minutes > 0:
        raise ConfigError(f"--minutes must be > 0, got {minutes}")
    return replace(
        cfg,
        train=replace(cfg.train, max_minutes=STAGE_SHARES["train"] * minutes),
        distill=replace(cfg.distill, max_minutes=STAGE_SHARES["distill"] * minutes),
    )


def _bound(iterations: int, minutes: float) -> str:
    """``"3000 iterations"`` or ``"3000 iterations or 4 min, what comes first"``."""
    text = f"{iterations} iterations"
    return f"{text} or {minutes:g} min, what comes first" if minutes else text


class _Stages:
    """The three stages in one run folder: where each writes and how long each took."""

    def __init__(self, cfg: Config, say: Callable[[str], None]) -> None:
        self.cfg, self.say = cfg, say
        self.run_dir = Path(cfg.run_dir)
        self.generator_path = self.run_dir / GENERATOR_FILE
        self.distilled_path = self.run_dir / f"distilled_ipc{cfg.distill.ipc}.pt"
        self.report_dir = self.run_dir / f"report_ipc{cfg.distill.ipc}"
        self.seconds: dict[str, float] = {}  # wall time of each stage that runs in this call

    def _timed(self, stage: str, work: Callable[[], _T]) -> _T:
        start = time.perf_counter()
        result = work()
        self.seconds[stage] = time.perf_counter() - start
        return result

    def clear(self) -> None:
        """Delete every stage's artifact and resume state, so that each runs afresh."""
        for path in (self.distilled_path, state_path(self.distilled_path), self.generator_path):
            path.unlink(missing_ok=True)
        for folder in (self.report_dir, self.run_dir / STATE_DIR, self.run_dir / TB_DIR):
            shutil.rmtree(folder, ignore_errors=True)

    def train_generator(self) -> None:
        """Stage 1: train (or resume training) the conditional GAN, unless its file exists."""
        cfg, say, path = self.cfg, self.say, self.generator_path
        if path.is_file():
            say(f"[1/3] generator: found {path}, reusing it (--overwrite retrains)")
            return
        states = self.run_dir / STATE_DIR
        resume = states.is_dir() and any(states.glob("*.pt"))
        verb = "resuming" if resume else "training"
        tc = cfg.train
        bound = _bound(tc.iterations, tc.max_minutes)
        say(f"[1/3] {verb} a conditional GAN on {cfg.data.name} ({bound})")
        result = self._timed("train", lambda: train(cfg, resume=resume))
        consistency = result.class_consistency
        extra = "" if consistency is None else f", class consistency {100 * consistency:.1f}%"
        stop = f"stopped: {result.stopped_by}, " if result.stopped_by else ""
        done = f"{stop}{result.iterations} iterations, {_fmt(self.seconds['train'])}"
        say(f"      wrote {path} ({done}{extra})")

    def distil(self) -> None:
        """Stage 2: distil (or resume distilling) through the generator, unless the set exists."""
        cfg, say, path, dc = self.cfg, self.say, self.distilled_path, self.cfg.distill
        if path.is_file():
            say(f"[2/3] distilled set: found {path}, reusing it")
            return
        budget = _bound(dc.max_iterations, dc.max_minutes)
        resume = state_path(path).is_file()  # an interrupted distillation
        verb = "resuming" if resume else "distilling"
        say(
            f"[2/3] {verb} {dc.ipc} images per class ({dc.space} space, {dc.objective}, "
            f"budget {budget})"
        )

        def run() -> DistilledSet:
            ckpt = load_generator_checkpoint(self.generator_path)
            return Distiller(cfg, generator=ckpt, out=path, resume=resume).run()

        ds = self._timed("distill", run)
        say(f"      wrote {path} ({ds.stop_reason}, {_fmt(self.seconds['distill'])})")

    def evaluate(self, progress: bool, minutes: float | None) -> dict:
        """Stage 3: the quick evaluation's report, read back if it was written before; with
        ``minutes`` (the run's total budget) it gets what the stages run so far left of it."""
        say, report_json = self.say, self.report_dir / REPORT_JSON
        if report_json.is_file():
            say(f"[3/3] report: found {report_json}, reusing it")
            return json.loads(report_json.read_text())
        left = None
        if minutes is not None:  # at least a moment: the full-data reference trains one epoch
            left = max(minutes - sum(self.seconds.values()) / 60.0, MIN_EVAL_MINUTES)
        bound = "" if left is None else f"; the full-data reference within the {left:.1f} min left"
        say(f"[3/3] quick evaluation (one network per set, 300 epochs, offline fidelity{bound})")
        report = self._timed(
            "evaluate",
            lambda: evaluate_distilled(
                self.distilled_path,  # a path, so the report names and hashes its source
                self.cfg,
                out=self.report_dir,
                progress=progress,
                max_minutes=left,
            ),
        )
        say(f"      wrote {self.report_dir} ({_fmt(self.seconds['evaluate'])})")
        return report


def quickstart(
    cfg: Config,
    overwrite: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
    minutes: float | None = None,
) -> QuickstartResult:
    """Run (or continue) train → distil → quick evaluation in ``cfg.run_dir``.

    Args:
        cfg: the run's config (see :func:`quickstart_config`).
        overwrite: delete the run folder's artifacts first and run every stage again.
        progress: show progress bars in the evaluation.
        say: where progress lines go.
        minutes: the total the stages were sized to (:func:`sized_to`; None: no total): the
            evaluation's full-data reference stops when what the earlier stages left of it is
            spent (:func:`~gandistill.evaluation.report.evaluate_distilled`'s ``max_minutes``).

    Returns:
        Where the artifacts lie, the report, and the wall time of each stage run in this call.
    """
    # one quickstart per folder; its stages take the same lock again (re-entrant)
    with RunLock(cfg.run_dir, folder=True):
        stages = _Stages(cfg, say)
        if overwrite:
            stages.clear()
        stages.train_generator()
        stages.distil()
        report = stages.evaluate(progress, minutes)
        return QuickstartResult(
            generator_path=stages.generator_path,
            distilled_path=stages.distilled_path,
            report_dir=stages.report_dir,
            tensorboard_dir=stages.run_dir,
            report=report,
            seconds=stages.seconds,
        )


def summary(result: QuickstartResult, minutes: float | None = None) -> str:
    """The headline table, where everything lies, the wall time (against ``minutes``, the
    total the stages were sized to, when given) and the commands to try next."""
    run, gen = result.tensorboard_dir, result.generator_path
    lines = [
        headline(result.report),
        "",
        f"generator checkpoint: {result.generator_path}",
        f"distilled set:        {result.distilled_path}",
        f"report:               {result.report_dir / REPORT_MD}",
        f"TensorBoard:          tensorboard --logdir {result.tensorboard_dir}",
    ]
    if result.seconds:
        total = sum(result.seconds.values())
        parts = ", ".join(f"{k} {_fmt(v)}" for k, v in result.seconds.items())
        budget = f" of a {minutes:g}-minute budget" if minutes else ""
        lines.append(f"wall time:            {_fmt(total)}{budget} ({parts})")
        if minutes and total > 60 * minutes:  # the sets' networks and set-up are not budgeted
            lines.append(
                f"                      {_fmt(total - 60 * minutes)} over: the sets' networks "
                "train the protocol's epochs whatever the budget leaves them"
            )
    lines += [
        "next:",
        f"  gandistill sample --generator {gen} --ipc 50 --out {run / 'sampled_ipc50.pt'}",
        f"  gandistill distill --generator {gen} --ipc 1 --out {run / 'distilled_ipc1.pt'} "
        "--set distill.max_minutes=5",
        f"  gandistill evaluate --distilled {result.distilled_path} --archs convnet,mlp,lenet "
        f"--out {run / 'report_cross'}",
    ]
    return "\n".join(lines)
