"""A distillation's resumable state: where it lies next to the output, what it holds, and the
checks that refuse to continue it under a changed config or generator.

Every ``checkpoint_every`` iterations and on Ctrl-C the set, its optimiser and the loop's books
go to ``<out>.state.pt`` (``set.pt`` -> ``set.state.pt``); since every draw of iteration ``i``
comes from ``step_generator(seed, i)``, a resumed run ends with exactly the set of an
uninterrupted one on CPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from ignite.engine import Engine

from gandistill.config import Config, check_unchanged, to_dict
from gandistill.distillation.synthetic import SET_PARAMETERS, SyntheticSet, merge_rows, per_row
from gandistill.errors import ArtifactError
from gandistill.files import FORMAT_VERSION, KIND_DISTILL_STATE, load_payload

STATE_SUFFIX = ".state.pt"
STOP_ITERATIONS = "max_iterations"  # the stop reason of a run that has not stopped early
# Keys whose change makes a saved distillation state meaningless (or unloadable); with a cosine
# schedule also distill.max_iterations. The generator is checked by its sha256.
RESUME_LOCKED = (
    "seed",
    "data",
    "distill.ipc",
    "distill.space",
    "distill.objective",
    "distill.optimizer",
    "distill.lr_schedule",
    "distill.feature_level",
    "distill.pool_size",
)


def state_path(out: str | Path) -> Path:
    """Where a distillation writing ``out`` keeps its resumable state (``set.pt`` →
    ``set.state.pt``)."""
    out = Path(out)
    return out.with_name(out.stem + STATE_SUFFIX)


def load_state(path: Path, cfg: Config, generator_sha256: str | None, out: Path) -> dict:
    """The state saved in ``path``, checked against this run's locked config keys and
    generator; temporary files of writes that a kill cut short are removed."""
    state = load_payload(path, KIND_DISTILL_STATE)
    dc = cfg.distill
    locked = RESUME_LOCKED + (("distill.max_iterations",) if dc.lr_schedule == "cosine" else ())
    try:
        check_unchanged(state["config"], cfg, locked, f"saved in {path}")
    except (KeyError, TypeError):
        raise ArtifactError(f"{path} is a damaged distillation state (no config)") from None
    if state.get("generator_sha256") != generator_sha256:
        there = str(state.get("generator_sha256"))[:12]
        raise ArtifactError(
            f"cannot resume: {path} was distilled through another generator "
            f"(sha256 {there} there, {str(generator_sha256)[:12]} now)"
        )
    for name in (path.name, out.name):
        for stray in path.parent.glob(f".{name}.*.tmp"):
            stray.unlink(missing_ok=True)
    return state


def set_tensors(syn: SyntheticSet) -> dict[str, torch.Tensor]:
    """The set's parameters on the CPU, by name (what the state saves of the set)."""
    return {
        name: getattr(syn, name).detach().cpu()
        for name in SET_PARAMETERS
        if getattr(syn, name) is not None
    }


@torch.no_grad()
def load_set_tensors(syn: SyntheticSet, saved: dict[str, torch.Tensor], path: Path) -> None:
    """Copy :func:`set_tensors`' saved parameters into a freshly built set of the same shape."""
    for name in SET_PARAMETERS:
        param, value = getattr(syn, name), saved.get(name)
        if (param is None) != (value is None) or (param is not None and param.shape != value.shape):
            raise ArtifactError(f"{path} holds a differently shaped set ('{name}')")
        if param is not None:
            param.copy_(value)


class ResumableState:
    """What the :class:`~gandistill.distillation.loop.Distiller` saves and restores: its
    ``state_dict`` is the state file's content, saved by ignite's ``Checkpoint`` (the GAN
    trainer's resume mechanism) and loaded by ``Checkpoint.load_objects``.

    A mixin of the Distiller: it reads the set (``syn``, ``rows``), its optimiser and schedule,
    the matching networks' pool, the loop's books (``history``, ``stop_reason``, ``patience``,
    the clock) and the engine.
    """

    def save_state(self, engine: Engine) -> None:
        """Checkpoint the completed iteration to ``<out>.state.pt`` (atomic). On several
        processes all call it: the optimiser's per-row state is merged first, so the state
        resumes on any number of processes; rank 0 writes it."""
        syn = self.syn
        moments = [v for st in self.opt.state.values() for v in st.values() if per_row(v, syn)]
        merge_rows(moments, self.rows)
        self.checkpoint(engine)

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue after the engine's iteration (what
        ignite's ``Checkpoint`` saves)."""
        return {
            "kind": KIND_DISTILL_STATE,
            "format_version": FORMAT_VERSION,
            "config": to_dict(self.cfg),
            "generator_sha256": None if self.ckpt is None else self.ckpt.sha256,
            "iteration": self.engine.state.iteration,
            "seconds": time.perf_counter() - self._t0,  # distillation time, all processes
            "set": set_tensors(self.syn),
            "optimizer": self.opt.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "pool": [] if self.networks is None else self.networks.state_dict(),
            "history": self.history,
            "stop_reason": self.stop_reason,
            "loss_tracking": self.patience.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Load a saved state (checked by :func:`load_state`) into the freshly built set,
        optimiser, schedule and loop."""
        path, dc = self.state_path, self.cfg.distill
        try:
            load_set_tensors(self.syn, state["set"], path)
            self.opt.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if self.networks is not None:
                self.networks.load_state_dict(state.get("pool") or [], path)
            self.patience.load_state_dict(state["loss_tracking"])
            self.history = list(state["history"])
            self.stop_reason = str(state["stop_reason"])
            self._elapsed = float(state["seconds"])
            iteration = int(state["iteration"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{path} is a damaged distillation state ({exc})") from None
        self._done = self.stop_reason != STOP_ITERATIONS or iteration >= dc.max_iterations
        if self._done:  # nothing left to run; the final check and result read the iteration
            self.engine.state.iteration = iteration
        else:
            self.engine.load_state_dict(
                {"iteration": iteration, "epoch_length": dc.max_iterations, "max_epochs": 1}
            )
