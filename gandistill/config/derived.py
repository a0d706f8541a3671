"""Settings derived from others: what ``auto`` (or 0) in the ``distill`` section stands for on a
device, and the rules between distill settings that one key's range cannot express.

Distillation saves its config resolved (:func:`resolve`), so a set file shows what actually ran.
"""

from __future__ import annotations

import dataclasses

from gandistill.config.schema import (
    GENERATOR_SPACES,
    MAX_DEPTH,
    MAX_WIDTH,
    Config,
    DistillConfig,
)
from gandistill.errors import ConfigError

# (outer_loop, inner_loop) of the DC reference implementation, by images per class
DC_SCHEDULE = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def default_loops(ipc: int) -> tuple[int, int]:
    """``(outer_loop, inner_loop)``: the DC schedule where it is tabulated; in between, outer =
    ipc and the inner loop interpolated linearly between the neighbouring entries; above 50, the
    IPC-50 entry."""
    if ipc in DC_SCHEDULE:
        return DC_SCHEDULE[ipc]
    if ipc > max(DC_SCHEDULE):
        return DC_SCHEDULE[max(DC_SCHEDULE)]
    lo = max(k for k in DC_SCHEDULE if k < ipc)
    hi = min(k for k in DC_SCHEDULE if k > ipc)
    inner_lo, inner_hi = DC_SCHEDULE[lo][1], DC_SCHEDULE[hi][1]
    return ipc, round(inner_lo + (inner_hi - inner_lo) * (ipc - lo) / (hi - lo))


def resolve_init(dc: DistillConfig) -> str:
    """The initialisation ``auto`` stands for. Latent space: best-of-K generator samples at small
    IPC (at IPC 1 they score 79% against 58% for one random real image per class on mnist5k),
    a random real subset inverted into the generator from IPC 10 (where generator samples fall
    behind real images: 88% against 95%)."""
    if dc.init != "auto":
        return dc.init
    if dc.space == "pixel":
        return "noise"
    return "best_of_k" if dc.ipc < 10 else "real"


def resolve(cfg: Config, device_type: str) -> Config:
    """``cfg`` as a run on ``device_type`` ('cpu', 'cuda') uses it: see :func:`resolve_distill`."""
    return dataclasses.replace(cfg, distill=resolve_distill(cfg.distill, device_type))


def resolve_distill(dc: DistillConfig, device_type: str) -> DistillConfig:
    """``dc`` with every ``auto`` (or 0-means-derived) setting replaced by the value a run on
    ``device_type`` ('cpu', 'cuda') uses, and the cross-field rules checked: what distillation
    saves with its set, so the artifact shows what actually ran."""
    latent, gm, cuda = dc.space != "pixel", dc.objective == "gm", device_type == "cuda"
    mtt = dc.objective == "mtt"  # Adam in either space: its steps do not hang on the loss scale
    outer, inner = default_loops(dc.ipc)
    dc = dataclasses.replace(
        dc,
        init=resolve_init(dc),
        outer_loop=dc.outer_loop or outer,
        inner_loop=dc.inner_loop or inner,
        optimizer=dc.optimizer if dc.optimizer != "auto" else ("adam" if latent or mtt else "sgd"),
        lr=dc.lr or (0.01 if latent or mtt else 0.1 if gm else 1.0),
        # the paper's CIFAR-10 student steps at IPC 1 and 10
        mtt_syn_steps=dc.mtt_syn_steps or (50 if dc.ipc == 1 else 30),
        real_batch=dc.real_batch or (64 if latent and gm else 256),
        grad_mode=dc.grad_mode if dc.grad_mode != "auto" else ("vmap" if cuda else "loop"),
    )
    check_distill(dc)
    return dc


def matching_archs(dc: DistillConfig) -> list[tuple[str, int, int]]:
    """The (norm, depth, width) variants the matching network is drawn from: those of
    ``net_archs``, or the one of ``net_norm``/``net_depth``/``net_width``."""
    if not dc.net_archs.strip():
        return [(dc.net_norm, dc.net_depth, dc.net_width)]
    norms = ("instancenorm", "batchnorm", "none")
    out = []
    for entry in dc.net_archs.split(","):
        parts = entry.strip().split(":")
        ok = len(parts) == 3 and parts[0] in norms and all(p.isdigit() for p in parts[1:])
        if ok:
            depth, width = int(parts[1]), int(parts[2])
            ok = 1 <= depth <= MAX_DEPTH and 1 <= width <= MAX_WIDTH
        if not ok:
            raise ConfigError(
                f"distill.net_archs entry '{entry.strip()}' is not NORM:DEPTH:WIDTH with NORM one "
                f"of {', '.join(norms)}, DEPTH 1..{MAX_DEPTH}, WIDTH 1..{MAX_WIDTH}"
            )
        out.append((parts[0], depth, width))
    return out


PIXEL_INIT_CHOICES = ("noise", "real", "herding", "kmeans", "best_of_k")
LATENT_INIT_CHOICES = ("normal", "truncated", "best_of_k", "real", "herding", "kmeans")


def uses_generator(dc: DistillConfig) -> bool:
    """Whether a run with ``dc`` needs a generator: latent and hybrid space decode through one;
    pixel space draws its start from one with ``init: best_of_k`` (and keeps only pixels)."""
    return dc.space in GENERATOR_SPACES or dc.init == "best_of_k"


def check_distill(dc: DistillConfig) -> None:
    """The rules between distill settings that one key's range cannot express."""
    if dc.space == "pixel" and dc.init not in (*PIXEL_INIT_CHOICES, "auto"):
        raise ConfigError(
            f"init '{dc.init}' is for latent space; pixel space takes noise, real, herding, "
            "kmeans or best_of_k (decoded generator samples)"
        )
    if dc.space != "pixel" and dc.init not in (*LATENT_INIT_CHOICES, "auto"):
        raise ConfigError(
            f"init '{dc.init}' is for pixel space; {dc.space} space takes "
            f"{', '.join(LATENT_INIT_CHOICES)}"
        )
    if dc.objective == "mtt":
        _check_mtt(dc)
    if dc.net_archs.strip():
        matching_archs(dc)
        if dc.pool_size or dc.objective == "mtt":
            what = "distill.pool_size" if dc.pool_size else "objective mtt"
            raise ConfigError(
                f"distill.net_archs draws a fresh network each iteration; {what} keeps networks "
                "of one architecture: leave net_archs empty"
            )
    if dc.objective == "dm" and dc.dm_weight > 0:
        raise ConfigError(
            "distill.dm_weight adds distribution matching to gradient matching; with "
            "objective dm set it to 0"
        )
    if dc.dm_layers and dc.objective != "dm" and dc.dm_weight == 0:
        raise ConfigError(
            "distill.dm_layers extends distribution matching; use objective dm or "
            "distill.dm_weight > 0"
        )
    if dc.pool_size and dc.objective == "gm" and dc.outer_loop > 1:
        raise ConfigError(
            "distill.pool_size trains pooled networks between iterations, so it takes one "
            f"matching step per network; objective gm at ipc {dc.ipc} takes "
            f"{dc.outer_loop} (set distill.outer_loop=1 or use objective dm or krr)"
        )


def _check_mtt(dc: DistillConfig) -> None:
    """Trajectory matching's own rules: the target must lie on the experts' trajectories, and
    the terms on a matching network's embeddings have no network to run on."""
    last = dc.mtt_max_start_epoch - 1 + dc.mtt_expert_epochs
    if last > dc.mtt_train_epochs:
        raise ConfigError(
            f"mtt targets reach expert epoch {last} (mtt_max_start_epoch - 1 + "
            f"mtt_expert_epochs) but experts train {dc.mtt_train_epochs} epochs; raise "
            "distill.mtt_train_epochs or lower the other two"
        )
    added = [
        name
        for name in ("dm_weight", "discrimination", "ce_weight", "pool_size", "net_warmup")
        if getattr(dc, name) > 0
    ] + (["dm_layers"] if dc.dm_layers else [])
    if added:
        raise ConfigError(
            f"objective mtt matches expert trajectories, not a matching network: set "
            f"distill.{added[0]} to 0"
        )
