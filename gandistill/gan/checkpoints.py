"""The run folder of a GAN training and its checkpoints.

A run folder holds ``config.yaml`` (the resolved config), ``state/`` (ignite checkpoints of the
models, optimisers, engine and config), ``tb/`` (TensorBoard events) and, once training is done,
``generator.pt``. Here: the checks before a run starts or resumes, the clearing of an earlier run
(``--overwrite``), the checkpoint saver, and resuming from the newest checkpoint. On several
processes every rank resumes; rank 0 alone writes (the trainer runs :func:`init_run_dir` on rank 0
only, and :func:`adopt_checkpoints` prunes there).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch
from ignite.handlers import Checkpoint

from gandistill.config import Config, check_unchanged, config_from_dict, dump_yaml, to_dict
from gandistill.errors import ArtifactError, ConfigError
from gandistill.files import (
    GENERATOR_FILE,
    KIND_GENERATOR,
    atomic_write,
    load_payload,
    sha256_file,
)
from gandistill.handlers import make_checkpoint as checkpoint_handler
from gandistill.parallel import barrier, is_main

STATE_DIR = "state"
TB_DIR = "tb"
CONFIG_FILE = "config.yaml"
# Sections whose change makes a saved training state meaningless.
RESUME_LOCKED = (
    "seed",
    "data",
    "model",
    "match",
    "train.batch_size",
    "train.loss",
    "train.iterations",
    "train.init_from",
)
# checkpointed objects that checkpoints of earlier versions lack
OPTIONAL_STATE = ("clock",)


class TrainingClock:
    """Training time summed over the processes of one run (``train.max_minutes``), saved in
    every checkpoint: the seconds of earlier processes plus this one's since :meth:`start`."""

    def __init__(self) -> None:
        self.earlier = 0.0
        self._started: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def seconds(self) -> float:
        now = 0.0 if self._started is None else time.perf_counter() - self._started
        return self.earlier + now

    def state_dict(self) -> dict:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state: dict) -> None:
        self.earlier = float(state["seconds"])


class ConfigRecord:
    """Puts the resolved config in every ignite checkpoint (ignite saves ``state_dict()``)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def state_dict(self) -> dict:
        return to_dict(self.cfg)

    def load_state_dict(self, state: dict) -> None:  # checked before loading: check_resumable
        pass


def step_of(path: Path) -> int:
    """The iteration in an ignite checkpoint name (``checkpoint_120.pt`` → 120)."""
    return int("".join(ch for ch in path.stem.rsplit("_", 1)[-1] if ch.isdigit()) or 0)


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The checkpoints in ``run_dir/state``, oldest iteration first."""
    return sorted((run_dir / STATE_DIR).glob("*.pt"), key=step_of)


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a start that would resume nothing or silently mix with an earlier run.

    Args:
        run_dir: the run folder.
        resume: ``--resume`` was given.
        overwrite: ``--overwrite`` was given.

    Raises:
        ConfigError: both flags were given.
        ArtifactError: nothing to resume, or an earlier run is there and neither flag was given.
    """
    state = run_dir / STATE_DIR
    has_run = state.is_dir() and any(state.glob("*.pt"))
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if resume and not has_run:
        raise ArtifactError(f"nothing to resume: no checkpoint in {state}")
    if has_run and not resume and not overwrite:
        raise ArtifactError(
            f"{run_dir} already holds a run; pass --resume to continue it "
            "or --overwrite to start over"
        )


def init_run_dir(run_dir: Path, cfg: Config, clear: bool) -> None:
    """Clear an earlier run (``--overwrite``) and write the resolved config.

    Args:
        run_dir: the run folder, made if missing.
        cfg: the resolved config, written to ``config.yaml``.
        clear: delete an earlier run's state, events and generator first.

    Raises:
        ArtifactError: the folder cannot be written.
    """
    if clear:
        for sub in (STATE_DIR, TB_DIR):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        (run_dir / GENERATOR_FILE).unlink(missing_ok=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / CONFIG_FILE, lambda fh: fh.write(dump_yaml(cfg).encode()))
    except OSError as exc:
        raise ArtifactError(f"cannot write to {run_dir}: {exc.strerror}") from None


def make_checkpoint(to_save: dict[str, Any], run_dir: Path, n_saved: int) -> Checkpoint:
    """The ignite handler that saves ``to_save`` to ``run_dir/state`` as ``checkpoint_<it>.pt``,
    keeping the newest ``n_saved``."""
    return checkpoint_handler(to_save, run_dir / STATE_DIR, n_saved)


# --- resuming ---------------------------------------------------------------------------------


def read_checkpoint(path: Path, device: torch.device) -> dict:
    """A training checkpoint's contents, on ``device``.

    Raises:
        ArtifactError: the file is unreadable or holds no gandistill config.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception:
        raise ArtifactError(f"{path} is not a readable training checkpoint") from None
    saved = state.get("config") if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        raise ArtifactError(f"{path} is not a gandistill training checkpoint")
    return state


def check_resumable(saved: dict, cfg: Config, run_dir: Path) -> None:
    """Refuse to resume a run whose :data:`RESUME_LOCKED` settings differ from ``cfg``.

    Args:
        saved: the config stored in the checkpoint, as a dict.
        cfg: this run's config.
        run_dir: the run folder (for the message).

    Raises:
        ConfigError: a locked setting differs, or the saved config is invalid.
    """
    # validated, and with the defaults of keys newer than the file (a run saved before a
    # section existed ran with its defaults)
    saved = to_dict(config_from_dict(saved))
    check_unchanged(saved, cfg, RESUME_LOCKED, f"in {run_dir}")


def resume_from_newest(
    run_dir: Path,
    cfg: Config,
    device: torch.device,
    to_save: dict[str, Any],
    checkpoint: Checkpoint,
) -> None:
    """Load the newest checkpoint of ``run_dir`` into ``to_save`` and adopt the earlier files.

    Args:
        run_dir: the run folder; :func:`check_run_dir` has seen a checkpoint in it.
        cfg: this run's config, checked against the saved one.
        device: where the loaded tensors go.
        to_save: the objects :func:`make_checkpoint` saves, loaded in place.
        checkpoint: the run's checkpoint handler, told about the files already there.
    """
    files = checkpoint_files(run_dir)
    path = files[-1]
    state = read_checkpoint(path, device)
    check_resumable(state["config"], cfg, run_dir)
    # a checkpoint written before the training clock was saved resumes with it at zero
    optional = [k for k in OPTIONAL_STATE if k not in state]
    Checkpoint.load_objects({k: v for k, v in to_save.items() if k not in optional}, state)
    adopt_checkpoints(checkpoint, files, run_dir, cfg.train.n_saved)


def adopt_checkpoints(checkpoint: Checkpoint, files: list[Path], run_dir: Path, keep: int) -> None:
    """Let a new Checkpoint handler count the files of earlier processes towards ``n_saved``
    (else every restart would leave ``n_saved`` more), prune the surplus, and delete the
    temporary files of saves that a kill cut short.

    Args:
        checkpoint: the new handler.
        files: the checkpoints on disk, oldest first; every rank has read the newest.
        run_dir: the run folder.
        keep: ``train.n_saved``.
    """
    saved = [(step_of(p), p.name) for p in files[-keep:]]
    checkpoint.load_state_dict({"_saved": saved})
    barrier()  # every rank has read the newest checkpoint before rank 0 prunes
    if not is_main():
        return
    for old in files[:-keep]:
        old.unlink(missing_ok=True)
    for stray in (run_dir / STATE_DIR).iterdir():
        # atomic_save's temporary names, and ignite DiskSaver's of run folders written before
        # the checkpoints went through atomic_save
        name = stray.name
        ours = name.startswith(".") and name.endswith(".tmp")
        disk_saver = name.startswith("tmp") and not stray.suffix
        if (ours or disk_saver) and stray.is_file():
            stray.unlink(missing_ok=True)


# --- continuing another run (distillation into its generator) ---------------------------------

# what a continued run takes over from the source run's newest checkpoint (not the engine: its
# iteration is set, and the run's length is this config's)
CONTINUED = ("generator", "discriminator", "ema", "opt_g", "opt_d")
# settings a continued run must share with its source
CONTINUE_LOCKED = ("data", "model", "train.batch_size", "train.loss")


class SourceRecord:
    """The generator file a run continues ({"path", "sha256", "iteration"}), in its checkpoints
    so that a resumed run still knows it."""

    def __init__(self, source: dict | None = None) -> None:
        self.source = dict(source or {})

    def state_dict(self) -> dict:
        return dict(self.source)

    def load_state_dict(self, state: dict) -> None:
        self.source = dict(state)


def continue_from(
    generator_file: str | Path, cfg: Config, device: torch.device, to_save: dict[str, Any]
) -> dict:
    """Load the training state behind ``generator_file`` (its run folder's newest checkpoint)
    into ``to_save``'s :data:`CONTINUED` objects.

    Args:
        generator_file: a ``generator.pt`` beside the ``state/`` folder of its run.
        cfg: the continuing run's config (its :data:`CONTINUE_LOCKED` settings must match).
        device: where the loaded tensors go.
        to_save: the continuing run's checkpointed objects.

    Returns:
        The source's record: path, sha256 and iteration of the generator file.

    Raises:
        ArtifactError: no checkpoint beside the file, or its newest is not the file's iteration.
        ConfigError: a locked setting differs, or ``train.iterations`` does not go beyond the
            source's.
    """
    path = Path(generator_file)
    payload = load_payload(path, KIND_GENERATOR)
    iteration = int(payload.get("iteration", 0))
    files = checkpoint_files(path.parent)
    if not files:
        raise ArtifactError(
            f"distilling into {path} continues its training: its run folder's "
            f"{path.parent / STATE_DIR} holds no checkpoint (keep the file in its run folder)"
        )
    if step_of(files[-1]) != iteration:
        raise ArtifactError(
            f"the newest checkpoint in {path.parent / STATE_DIR} is of iteration "
            f"{step_of(files[-1])}, {path.name} of iteration {iteration}: retrain or restore it"
        )
    if cfg.train.iterations <= iteration:
        raise ConfigError(
            f"train.iterations {cfg.train.iterations} must go beyond the source's {iteration}"
        )
    state = read_checkpoint(files[-1], device)
    saved = to_dict(config_from_dict(state["config"]))
    check_unchanged(
        saved, cfg, CONTINUE_LOCKED, f"that made {path.name} (in {path.parent})", "distil into it"
    )
    Checkpoint.load_objects({k: to_save[k] for k in CONTINUED}, state)
    return {"path": str(path), "sha256": sha256_file(path), "iteration": iteration}
