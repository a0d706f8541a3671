"""The networks distillation matches against: a fresh ConvNet per outer iteration (optionally
warmed up on real data) or one drawn from a pool of networks trained on the set (FRePo), and
the inner loop that trains a network on the set between matching steps.

Every draw comes from the iteration's own streams (``step_generator(seed, it, key)``), so all
ranks of a multi-process run hold the same network and a resumed run draws what an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from gandistill.augment import dsa_augment
from gandistill.config import Config
from gandistill.config.derived import matching_archs
from gandistill.data import DatasetInfo, ImageTensors
from gandistill.errors import ConfigError
from gandistill.fit import Batches, fit
from gandistill.models import ConvNet
from gandistill.runtime import amp_context, step_generator

NET_STREAM, WARMUP_STREAM, POOL_STREAM = 1, 2, 3  # step_generator keys within an iteration


class MatchingNetworks:
    """Hands out the matching network of each outer iteration.

    Args:
        cfg: the run's config (``distill.net_*``, ``lr_net``, ``pool_*``, ``batch_train``).
        info: the dataset's description.
        train: the real training split (for warm-up batches).
        device: where the networks live.
    """

    def __init__(
        self, cfg: Config, info: DatasetInfo, train: ImageTensors, device: torch.device
    ) -> None:
        self.cfg, self.info, self.train, self.device = cfg, info, train, device
        self.archs = matching_archs(cfg.distill)  # (norm, depth, width) variants
        # FRePo's model pool: slots of {"net", "opt", "age"}, filled on first use
        self.pool: list[dict | None] = [None] * cfg.distill.pool_size

    def fresh(self, it: int) -> ConvNet:
        """A newly initialised ConvNet, seeded from iteration ``it``'s stream; with
        ``net_archs`` its variant is drawn from that stream first."""
        info = self.info
        gen = step_generator(self.cfg.seed, it, NET_STREAM)
        norm, depth, width = self.archs[0]
        if len(self.archs) > 1:
            norm, depth, width = self.archs[
                int(torch.randint(len(self.archs), (1,), generator=gen))
            ]
        seed = int(torch.randint(2**62, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = ConvNet(info.num_classes, info.channels, info.image_size, width, depth, norm)
        return net.to(self.device)

    def optimizer(self, net: ConvNet) -> torch.optim.Optimizer:
        """The optimiser of the inner loop."""
        return torch.optim.SGD(net.parameters(), lr=self.cfg.distill.lr_net, momentum=0.5)

    def draw(self, it: int) -> tuple[ConvNet, torch.optim.Optimizer, dict | None]:
        """Iteration ``it``'s network, its optimiser, and its pool slot (None without a pool)."""
        if self.cfg.distill.pool_size:
            slot = self._pool_slot(it)
            return slot["net"], slot["opt"], slot
        net = self.fresh(it)
        if self.cfg.distill.net_warmup > 0:
            self.warm_up(net, it)
        return net, self.optimizer(net), None

    def _pool_slot(self, it: int) -> dict:
        """The pooled network drawn for iteration ``it`` (from its own stream, so the real
        batches are those of a run without the pool); a slot that is empty or whose network
        has been trained ``pool_steps`` epochs gets a fresh network first."""
        dc = self.cfg.distill
        gen = step_generator(self.cfg.seed, it, POOL_STREAM)
        i = int(torch.randint(dc.pool_size, (1,), generator=gen))
        slot = self.pool[i]
        if slot is None or slot["age"] >= dc.pool_steps:
            net = self.fresh(it)
            if dc.net_warmup > 0:
                self.warm_up(net, it)
            slot = self.pool[i] = {"net": net, "opt": self.optimizer(net), "age": 0}
        return slot

    def warm_up(self, net: ConvNet, it: int) -> int:
        """Train ``net`` for 0..``net_warmup`` SGD steps (drawn) on balanced real batches, so
        matching sees networks from random to partly trained; returns the number of steps."""
        dc, k = self.cfg.distill, self.info.num_classes
        gen = step_generator(self.cfg.seed, it, WARMUP_STREAM)
        steps = int(torch.randint(dc.net_warmup + 1, (1,), generator=gen))
        opt = torch.optim.SGD(net.parameters(), lr=dc.lr_net, momentum=0.9, weight_decay=5e-4)
        per_class = max(1, dc.batch_train // k)
        labels = torch.arange(k, device=self.device).repeat_interleave(per_class)

        def real_batches() -> Iterator[tuple[Tensor, Tensor]]:
            for _ in range(steps):
                x = torch.cat([self.train.sample_class(c, per_class, gen) for c in range(k)])
                yield self.info.normalize(x.to(self.device)), labels

        if steps:
            forward, loss_fn = autocast(self.device, dc.amp)
            fit(net, opt, Batches(real_batches, steps), 1, self.device, loss_fn, model_fn=forward)
        return steps

    def state_dict(self) -> list[dict | None]:
        """The pool's networks, optimisers and ages (what a resumed run needs)."""
        return [
            None
            if slot is None
            else {
                "net": slot["net"].state_dict(),
                "opt": slot["opt"].state_dict(),
                "age": slot["age"],
            }
            for slot in self.pool
        ]

    def load_state_dict(self, saved: list[dict | None], path: Path) -> None:
        """Refill the pool from :meth:`state_dict`'s list, saved in ``path``."""
        for i, slot in enumerate(saved):
            if slot is None:
                continue
            net = self.fresh(0)  # the architecture from any seed, then its weights
            try:
                net.load_state_dict(slot["net"])
            except RuntimeError:
                raise ConfigError(
                    f"cannot resume: the networks pooled in {path} do not fit "
                    "distill.net_width/net_depth/net_norm as they are now"
                ) from None
            opt = self.optimizer(net)
            opt.load_state_dict(slot["opt"])
            for group in opt.param_groups:  # momenta resume; lr_net may change
                group["lr"] = self.cfg.distill.lr_net
            self.pool[i] = {"net": net, "opt": opt, "age": int(slot["age"])}


def train_on_set(
    net: ConvNet,
    opt: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    dsa_strategy: str = "",
    amp: bool = False,
) -> None:
    """The inner loop: ``epochs`` epochs of cross-entropy on the (detached) set, in batches of
    ``batch_size`` drawn from ``gen``; with a DSA strategy each image gets its own draw (the
    reference trains this way; the shared Siamese draws belong to matching)."""
    device = images.device

    def set_batches() -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(labels), generator=gen).to(device)
        for idx in order.split(batch_size):
            x = images[idx]
            if dsa_strategy:
                seed = int(torch.randint(2**31, (1,), generator=gen))
                x = dsa_augment(x, dsa_strategy, seed, siamese=False)
            yield x, labels[idx]

    forward, loss_fn = autocast(device, amp)
    n_batches = -(-len(labels) // batch_size)
    fit(net, opt, Batches(set_batches, n_batches), epochs, device, loss_fn, model_fn=forward)


def autocast(device: torch.device, amp: bool) -> tuple[Callable, Callable]:
    """The forward pass and the cross-entropy of :func:`~gandistill.fit.fit`, both under
    :func:`amp_context` (reduced precision when ``amp`` is on)."""

    def forward(net: torch.nn.Module, x: Tensor) -> Tensor:
        with amp_context(device, amp):
            return net(x)

    def loss_fn(logits: Tensor, y: Tensor) -> Tensor:
        with amp_context(device, amp):
            return F.cross_entropy(logits, y)

    return forward, loss_fn
