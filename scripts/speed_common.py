"""Timing helpers and the plain per-class matching loop shared by the speed benchmarks.

``bench_distill.py speed`` and ``bench_speed.py`` import this file as a sibling module (a script's
own folder is on ``sys.path``). The plain loop is what the reference code of the field does,
written out with the same network and batch sizes as gandistill, so that a ratio against it
measures gandistill's own cost.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from gandistill.config import Config, load_config
from gandistill.data import Splits
from gandistill.distillation.loop import Distiller
from gandistill.models import ConvNet

# one matching step per outer iteration and nothing else: no inner loop, no checks, no teacher
OUTER_STEP_OVERRIDES = (
    "distill.space=pixel",
    "distill.outer_loop=1",
    "distill.inner_loop=1",
    "distill.eval_every=0",
    "distill.progress=false",
    "distill.teacher_logits=false",
)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    fn: Callable[[], object], device: torch.device, repeats: int, min_seconds: float = 0.0
) -> float:
    """Median wall seconds of one ``fn()`` call over ``repeats`` timed rounds.

    One warm-up call comes first and a second one sizes the rounds: a round repeats ``fn`` until
    it lasts about ``min_seconds``, so that fast kernels are timed above the clock's resolution.
    The median keeps a round that the operating system paused from skewing the result.
    """
    fn()
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    calls = max(1, math.ceil(min_seconds / max(time.perf_counter() - start, 1e-9)))
    rounds = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        synchronize(device)
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def median_interval(stamps: Sequence[float]) -> float:
    """Median gap between consecutive time stamps (per-step seconds from end-of-step stamps)."""
    if len(stamps) < 2:
        raise ValueError("time at least two steps (the first is warm-up)")
    return statistics.median(b - a for a, b in itertools.pairwise(stamps))


def outer_step_config(
    config: str | None, device: str, ipc: int, repeats: int, extra: Sequence[str] = ()
) -> Config:
    """A config that runs ``repeats + 1`` pixel-space outer steps (the first one is warm-up)."""
    return load_config(
        config,
        [
            f"device={device}",
            *OUTER_STEP_OVERRIDES,
            f"distill.ipc={ipc}",
            f"distill.max_iterations={repeats + 1}",
            *extra,
        ],
    )


def outer_step_seconds(cfg: Config, data: Splits | None = None) -> tuple[float, Distiller]:
    """Median seconds of one outer step as gandistill's :class:`Distiller` runs it.

    ``cfg`` comes from :func:`outer_step_config`; the first step is warm-up.
    """
    d = Distiller(cfg, data=data)
    d.run()
    return median_interval([h["seconds"] for h in d.history]), d


def plain_outer_step(net: ConvNet, real: torch.Tensor, syn: torch.Tensor) -> float:
    """The reference recipe: one class at a time, float32, per-layer 1 − cos distance."""
    params = list(net.parameters())
    loss = torch.zeros((), device=syn.device)
    for c in range(real.shape[0]):
        y_real = torch.full((real.shape[1],), c, device=real.device)
        g_real = torch.autograd.grad(F.cross_entropy(net(real[c]), y_real), params)
        g_real = [g.detach() for g in g_real]
        y_syn = torch.full((syn.shape[1],), c, device=syn.device)
        g_syn = torch.autograd.grad(F.cross_entropy(net(syn[c]), y_syn), params, create_graph=True)
        for gr, gs in zip(g_real, g_syn, strict=True):
            if gr.dim() < 2:
                continue
            gr, gs = gr.flatten(1), gs.flatten(1)
            cos = (gr * gs).sum(1) / (gr.norm(dim=1) * gs.norm(dim=1) + 1e-6)
            loss = loss + (1 - cos).sum()
    loss.backward()
    return loss.item()


def plain_outer_seconds(d: Distiller, repeats: int) -> float:
    """Median seconds of :func:`plain_outer_step` with the shapes and network of ``d``."""
    info, dc, k = d.info, d.cfg.distill, d.info.num_classes
    image = (info.channels, info.image_size, info.image_size)
    gen = torch.Generator().manual_seed(0)
    net = ConvNet(k, info.channels, info.image_size, dc.net_width, dc.net_depth, dc.net_norm)
    net = net.to(d.device)
    real = torch.randn(k, d.cfg.distill.real_batch, *image, generator=gen).to(d.device)
    syn = torch.randn(k, dc.ipc, *image, generator=gen).to(d.device).requires_grad_(True)
    return median_seconds(lambda: plain_outer_step(net, real, syn), d.device, repeats)
