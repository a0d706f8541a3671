"""A distillation's resumable state: where it lies next to the output, what it holds, and the
checks that refuse to continue it under a changed config or generator.

Every ``checkpoint_every`` iterations and on Ctrl-C the set, its optimiser and the loop's books
go to ``<out>.state.pt`` (``set.pt`` -> ``set.state.pt``); since every draw of iteration ``i``
comes from ``step_generator(seed, i)``, a resumed run ends with exactly the set of an
uninterrupted one on CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gandistill.config import Config, check_unchanged
from gandistill.distillation.synthetic import SET_PARAMETERS, SyntheticSet
from gandistill.errors import ArtifactError
from gandistill.files import KIND_DISTILL_STATE, load_payload

STATE_SUFFIX = ".state.pt"
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
    "distill.residual",
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
