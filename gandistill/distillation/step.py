"""One outer iteration of distillation: the matching updates of the set against one network,
with the inner training of that network on the set between them.

Gradient matching compares the per-class gradients of a network's loss on real batches (detached)
and on the synthetic images (with graph) and backpropagates their distance through the frozen
generator into the latents; it runs ``outer_loop`` such updates against a freshly drawn network,
with ``inner_loop`` epochs of training on the set in between. Distribution matching and KRR make
one update against a network that is not trained (:class:`MatchingStep`). Trajectory matching
(objective ``mtt``) has no matching network but a student unrolled from an expert's checkpoint
(:class:`TrajectoryStep`, see :mod:`~gandistill.distillation.trajectories`).

Every draw of iteration ``it`` comes from ``step_generator(seed, it)`` (the network and its
warm-up from their own streams, see :mod:`~gandistill.distillation.networks`), which resumed runs
rely on. On several processes every rank holds the whole set, draws the same network and real
batches, updates only its own classes' rows and merges them after each update (a masked
all-reduce), so the inner training, which needs the whole set, is the same everywhere; gradient
clipping uses the norm over all ranks.
"""

from __future__ import annotations

import torch

from gandistill.config import Config, DistillConfig
from gandistill.data import DatasetInfo, ImageTensors
from gandistill.distillation.networks import MatchingNetworks, train_on_set
from gandistill.distillation.objectives import Batch, matching_loss, real_batch, siamese
from gandistill.distillation.synthetic import SyntheticSet, clip_gradients, merge_rows
from gandistill.distillation.trajectories import (
    StudentNetwork,
    expert_trajectories,
    trajectory_loss,
    unrolled_student,
)
from gandistill.errors import ConfigError
from gandistill.fit import dsa_strategy_for
from gandistill.models import ConvNet
from gandistill.parallel import all_sum_, world_size
from gandistill.runtime import step_generator


def check_processes(dc: DistillConfig, num_classes: int) -> None:
    """Refuse a process count the run cannot split its classes over."""
    if world_size() > num_classes:
        raise ConfigError(
            f"{world_size()} processes for {num_classes} classes: distillation splits the "
            "classes over the processes, so use at most one process per class"
        )
    if world_size() > 1 and (dc.discrimination > 0 or dc.objective in ("krr", "mtt")):
        whole = dc.objective in ("krr", "mtt")
        what = f"objective {dc.objective}" if whole else "distill.discrimination"
        why = (
            "trains one student on the whole set"
            if dc.objective == "mtt"
            else "compares every class with every other"
        )
        raise ConfigError(f"{what} {why}, so it runs in one process; drop --nproc")


class _Step:
    """What every outer iteration holds: the run's config, data, set and device.

    Args:
        cfg: the resolved config (``distill`` section).
        info: the dataset's description.
        train: the real training split.
        syn: the synthetic set, updated in place.
        classes: this rank's classes (all of them in one process).
        device: where the networks and batches live.
    """

    def __init__(
        self,
        cfg: Config,
        info: DatasetInfo,
        train: ImageTensors,
        syn: SyntheticSet,
        classes: range,
        device: torch.device,
    ) -> None:
        dc = cfg.distill
        self.cfg, self.info, self.train, self.syn, self.device = cfg, info, train, syn, device
        self.classes = classes
        self.rows = slice(classes.start * dc.ipc, classes.stop * dc.ipc)
        self.dsa_strategy = dsa_strategy_for(info) if dc.dsa else ""


class MatchingStep(_Step):
    """Holds the set's optimiser and the matching networks; a call runs one outer iteration
    (arguments: :class:`_Step`'s)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        dc = self.cfg.distill
        self.networks = MatchingNetworks(self.cfg, self.info, self.train, self.device)
        self.opt = set_optimizer(dc, [{"params": self.syn.image_parameters(), "lr": dc.lr}])

    def __call__(self, it: int) -> dict[str, float]:
        """Outer iteration ``it``; returns its mean losses and gradient statistics."""
        dc = self.cfg.distill
        gen = step_generator(self.cfg.seed, it)
        net, net_opt, slot = self.networks.draw(it)
        net.train()
        outer = dc.outer_loop if dc.objective == "gm" else 1
        if dc.objective != "gm":
            net.requires_grad_(False)
        stats: list[dict[str, float]] = []
        for ol in range(outer):
            stats.append(self.update(net, gen))
            if ol == outer - 1:
                break
            self.train_net(net, net_opt, gen, dc.inner_loop)
        if slot is not None:  # one epoch on the updated set, then back into the pool
            net.requires_grad_(True)
            self.train_net(net, net_opt, gen, 1)
            slot["age"] += 1
        out = {key: sum(s[key] for s in stats) / len(stats) for key in stats[0]}
        out["match_loss"] /= self.info.num_classes  # per class, comparable across datasets
        out["latent_norm"] = self.syn.latent_radius()
        if dc.objective != "gm":
            del out["grad_cosine"], out["grad_l2"]
        return out

    def update(self, net: ConvNet, gen: torch.Generator) -> dict[str, float]:
        """One update of the set's rows of this rank's classes against ``net``."""
        dc, k = self.cfg.distill, len(self.classes)
        n = self.info.num_classes
        real, real_y = real_batch(
            self.train, self.classes, dc.real_batch, self.info, gen, self.device
        )
        syn = self.syn(self.rows).view(k, dc.ipc, *real.shape[2:])
        syn_y = self.syn.labels[self.rows].view(k, dc.ipc)
        real, syn = siamese(real, syn, self.dsa_strategy, self.classes, n, gen)
        batch = Batch(real, real_y, syn, syn_y)
        match, extra, (grad_cos, grad_l2) = matching_loss(
            net, batch, dc, dc.grad_mode, self.device, n
        )
        loss = match + self.syn.penalty(dc, self.rows)
        for term in extra:
            loss = loss + term
        self.opt.zero_grad(set_to_none=True)
        # gradients for the set only: the network's weights are in the graph (the synthetic
        # gradients and embeddings depend on them) but their gradients would go unread
        params = self.syn.image_parameters()
        loss.backward(inputs=params)
        if dc.grad_clip > 0:
            clip_gradients(self.syn, dc.grad_clip)
        self.opt.step()
        self.syn.clamp_latents(dc.latent_clip)
        merge_rows(params, self.rows)
        sums = torch.tensor([match.item(), grad_cos, grad_l2], dtype=torch.float64)
        match_sum, cos_sum, l2_sum = all_sum_(sums.to(self.device)).tolist()
        return {"match_loss": match_sum, "grad_cosine": cos_sum / n, "grad_l2": l2_sum / n}

    def train_net(
        self, net: ConvNet, opt: torch.optim.Optimizer, gen: torch.Generator, epochs: int
    ) -> None:
        """The inner loop: ``epochs`` epochs of ``net`` on the (detached) set."""
        dc = self.cfg.distill
        with torch.no_grad():
            images = self.syn().detach()
        labels, strategy = self.syn.labels, self.dsa_strategy
        train_on_set(net, opt, images, labels, epochs, dc.batch_train, gen, strategy, dc.amp)


class TrajectoryStep(_Step):
    """Trajectory matching's outer iteration (objective ``mtt``, one process, so every row is
    this rank's): a student from a drawn expert checkpoint takes ``mtt_syn_steps`` steps on the
    set, and its normalised distance to the expert's later checkpoint is backpropagated into
    the set and the student's learning rate. Holds the experts, the student and the
    optimiser; no matching network (``networks`` is None). Arguments: :class:`_Step`'s.
    """

    networks = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cfg, dc, syn = self.cfg, self.cfg.distill, self.syn
        self.experts = expert_trajectories(
            cfg, self.info, self.train, self.device, progress=dc.progress
        )
        self.student = StudentNetwork(cfg, self.info, self.device)
        groups = [{"params": syn.image_parameters(), "lr": dc.lr}]
        lr = syn.add_student_lr(dc.mtt_teacher_lr, learnable=dc.mtt_lr_lr > 0)
        if dc.mtt_lr_lr > 0:  # a group of its own (the schedule drives group 0 only)
            groups.append({"params": [lr], "lr": dc.mtt_lr_lr})
        self.opt = set_optimizer(dc, groups)

    def __call__(self, it: int) -> dict[str, float]:
        """Outer iteration ``it``; returns its loss, the student's rate and the latent norm."""
        gen = step_generator(self.cfg.seed, it)
        dc, syn = self.cfg.distill, self.syn
        expert = self.experts[int(torch.randint(len(self.experts), (1,), generator=gen))]
        t = int(torch.randint(dc.mtt_max_start_epoch, (1,), generator=gen))
        start = expert[t].to(self.device)
        target = expert[t + dc.mtt_expert_epochs].to(self.device)
        student = unrolled_student(
            self.student, start, syn(), syn.labels, syn.student_lr, dc.mtt_syn_steps,
            dc.mtt_batch_syn, gen, self.dsa_strategy,
        )  # fmt: skip
        match = trajectory_loss(student, start, target)
        loss = match + syn.penalty(dc)
        self.opt.zero_grad(set_to_none=True)
        params = [p for group in self.opt.param_groups for p in group["params"]]
        loss.backward(inputs=params)
        if dc.grad_clip > 0:
            clip_gradients(syn, dc.grad_clip)
        self.opt.step()
        with torch.no_grad():  # a negative rate would climb the loss
            syn.student_lr.clamp_(min=0.0)
        syn.clamp_latents(dc.latent_clip)
        return {
            "match_loss": match.item(),
            "student_lr": syn.student_lr.item(),
            "latent_norm": syn.latent_radius(),
        }


def make_step(
    cfg: Config,
    info: DatasetInfo,
    train: ImageTensors,
    syn: SyntheticSet,
    classes: range,
    device: torch.device,
) -> MatchingStep | TrajectoryStep:
    """The outer iteration of ``cfg.distill.objective``: a student's trajectory for ``mtt``,
    a matching network for the others."""
    kind = TrajectoryStep if cfg.distill.objective == "mtt" else MatchingStep
    return kind(cfg, info, train, syn, classes, device)


def set_optimizer(dc: DistillConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """The set's optimiser over ``groups`` (the set's parameters first: the schedule drives
    group 0)."""
    if dc.optimizer == "adam":
        return torch.optim.Adam(groups)
    return torch.optim.SGD(groups, momentum=dc.momentum)
