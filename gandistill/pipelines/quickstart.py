"""``gandistill quickstart``: the three stages in one command on the embedded data.

Train a conditional GAN on ``mnist5k`` → distil IPC 10 through it → quick evaluation → the
headline table and where every output lies. Each stage writes its artifact into the run folder
and is skipped when its artifact is already there, so an interrupted quickstart continues where
it stopped, mid-training or mid-distillation (``overwrite`` starts over). Without a config file
the stages use the package defaults plus the preset ``gandistill/presets/quickstart.yaml`` (see
:func:`quickstart_preset`), sized for about 25 minutes on a 2-core CPU.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gandistill.config import Config, apply_overrides, from_dict, load_config, read_yaml
from gandistill.distillation.loop import Distiller, state_path
from gandistill.evaluation.report import REPORT_JSON, REPORT_MD, evaluate_distilled, headline
from gandistill.files import GENERATOR_FILE, DistilledSet, load_generator_checkpoint
from gandistill.gan.trainer import STATE_DIR, TB_DIR, train
from gandistill.runtime import format_seconds as _fmt

# package data, so that a non-editable install finds it too (pyproject.toml: package-data)
PRESET = "quickstart.yaml"


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


def quickstart(
    cfg: Config,
    overwrite: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> QuickstartResult:
    """Run (or continue) train → distil → quick evaluation in ``cfg.run_dir``."""
    run_dir = Path(cfg.run_dir)
    generator_path = run_dir / GENERATOR_FILE
    distilled_path = run_dir / f"distilled_ipc{cfg.distill.ipc}.pt"
    report_dir = run_dir / f"report_ipc{cfg.distill.ipc}"
    seconds: dict[str, float] = {}
    if overwrite:
        for path in (distilled_path, state_path(distilled_path), generator_path):
            path.unlink(missing_ok=True)
        for folder in (report_dir, run_dir / STATE_DIR, run_dir / TB_DIR):
            shutil.rmtree(folder, ignore_errors=True)

    tc = cfg.train
    if generator_path.is_file():
        say(f"[1/3] generator: found {generator_path}, reusing it (--overwrite retrains)")
    else:
        resume = (run_dir / STATE_DIR).is_dir() and any((run_dir / STATE_DIR).glob("*.pt"))
        verb = "resuming" if resume else "training"
        say(f"[1/3] {verb} a conditional GAN on {cfg.data.name} ({tc.iterations} iterations)")
        start = time.perf_counter()
        result = train(cfg, resume=resume)
        seconds["train"] = time.perf_counter() - start
        consistency = result.class_consistency
        extra = "" if consistency is None else f", class consistency {100 * consistency:.1f}%"
        say(f"      wrote {generator_path} ({_fmt(seconds['train'])}{extra})")

    dc = cfg.distill
    if distilled_path.is_file():
        say(f"[2/3] distilled set: found {distilled_path}, reusing it")
    else:
        budget = f"{dc.max_minutes:g} min" if dc.max_minutes else f"{dc.max_iterations} iterations"
        resume = state_path(distilled_path).is_file()  # an interrupted distillation
        verb = "resuming" if resume else "distilling"
        say(
            f"[2/3] {verb} {dc.ipc} images per class ({dc.space} space, {dc.objective}, "
            f"budget {budget})"
        )
        start = time.perf_counter()
        ckpt = load_generator_checkpoint(generator_path)
        ds = Distiller(cfg, generator=ckpt, out=distilled_path, resume=resume).run()
        seconds["distill"] = time.perf_counter() - start
        say(f"      wrote {distilled_path} ({ds.stop_reason}, {_fmt(seconds['distill'])})")

    if (report_dir / REPORT_JSON).is_file():
        say(f"[3/3] report: found {report_dir / REPORT_JSON}, reusing it")
        report = json.loads((report_dir / REPORT_JSON).read_text())
    else:
        say("[3/3] quick evaluation (one network per set, 300 epochs, offline fidelity)")
        start = time.perf_counter()
        report = evaluate_distilled(
            DistilledSet.load(distilled_path), cfg, out=report_dir, progress=progress
        )
        seconds["evaluate"] = time.perf_counter() - start
        say(f"      wrote {report_dir} ({_fmt(seconds['evaluate'])})")
    return QuickstartResult(
        generator_path=generator_path,
        distilled_path=distilled_path,
        report_dir=report_dir,
        tensorboard_dir=run_dir,
        report=report,
        seconds=seconds,
    )


def summary(result: QuickstartResult) -> str:
    """The headline table and where everything lies."""
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
        lines.append(f"wall time:            {_fmt(total)} ({parts})")
    return "\n".join(lines)
