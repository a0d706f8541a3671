"""Trajectory matching (MTT, Cazenavette et al. 2022, "Dataset Distillation by Matching Training
Trajectories"): the expert trajectories it matches and the loss of one iteration.

Experts are ConvNets of the matching network's shape trained on the real training split with
plain SGD (``mtt_teacher_lr``, no momentum; per-image DSA draws with ``distill.dsa``); their
parameters after every epoch form a trajectory. They are a property of the dataset and these
settings, not of a run: trained once, written to ``<cache_dir>/trajectories/<key>.pt`` (or
``distill.mtt_buffer``) after each expert, so an interrupted build goes on where it stopped and
a later run asking for more experts adds only the missing ones; a file made for another dataset
or setting is refused, naming what differs. Expert ``i`` draws from its own stream, whatever the
run's seed.

One iteration: an expert and a start epoch ``t`` are drawn; a student starts at the expert's
parameters θ*_t and takes ``mtt_syn_steps`` SGD steps of cross-entropy on the set, with a
learnable learning rate, keeping the graph of every step; the loss is the student's squared
distance to θ*_{t+M} (``M = mtt_expert_epochs``) over the expert's own squared distance from
θ*_t to θ*_{t+M}, so it is 1 for a student that does not move and 0 for one that lands there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from ignite.engine import Events
from torch import Tensor
from torch.func import functional_call
from torch.nn import functional as F

from gandistill.augment import dsa_augment
from gandistill.config import Config, to_dict
from gandistill.data import DatasetInfo, ImageTensors
from gandistill.errors import ArtifactError, ConfigError
from gandistill.files import FORMAT_VERSION, atomic_save, load_payload
from gandistill.fit import Batches, dsa_strategy_for, fit
from gandistill.locks import RunLock
from gandistill.models import ConvNet
from gandistill.runtime import step_generator

TRAJECTORY_DIR = "trajectories"  # under cache_dir
KIND_TRAJECTORIES = "gandistill.expert_trajectories"
EXPERT_SEED = 104729  # expert i draws from step_generator(EXPERT_SEED, i): the same for every run
EXPERT_BATCH = 256  # real images per expert SGD step (the paper's)


def trajectory_key(cfg: Config, info: DatasetInfo) -> dict:
    """Everything that determines an expert trajectory (not how many experts there are)."""
    dc = cfg.distill
    return {
        "data": to_dict(cfg.data),
        "classes": info.num_classes,
        "net": {"width": dc.net_width, "depth": dc.net_depth, "norm": dc.net_norm},
        "epochs": dc.mtt_train_epochs,
        "lr": dc.mtt_teacher_lr,
        "batch": EXPERT_BATCH,
        "dsa": dc.dsa,
    }


def trajectory_path(cfg: Config, key: dict) -> Path:
    """``distill.mtt_buffer`` when given, else the cache file named after ``key``'s hash."""
    if cfg.distill.mtt_buffer:
        return Path(cfg.distill.mtt_buffer)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cfg.cache_dir) / TRAJECTORY_DIR / f"{cfg.data.name}-{digest}.pt"


def _differences(saved: dict, key: dict, prefix: str = "") -> list[str]:
    """The dotted names of the entries in which ``saved`` and ``key`` differ."""
    out = []
    for name in sorted(set(saved) | set(key)):
        a, b = saved.get(name), key.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{name}.")
        elif a != b:
            out.append(f"{prefix}{name} ({a!r} there, {b!r} now)")
    return out


def load_trajectories(path: Path, key: dict) -> list[Tensor]:
    """The experts of ``path`` (each (epochs + 1, P) float32), refused unless made for ``key``."""
    payload = load_payload(path, KIND_TRAJECTORIES)
    try:
        saved, experts = payload["key"], list(payload["experts"])
    except (KeyError, TypeError):
        raise ArtifactError(f"{path} is a damaged trajectory file") from None
    diffs = _differences(saved, key)
    if diffs:
        raise ConfigError(
            f"{path} holds expert trajectories of another dataset or setting: "
            f"{'; '.join(diffs[:3])}; use another distill.mtt_buffer or leave it empty"
        )
    return experts


def flat_parameters(net: torch.nn.Module) -> Tensor:
    """The network's parameters as one float32 vector (in ``named_parameters`` order)."""
    return torch.cat([p.detach().float().reshape(-1) for p in net.parameters()]).cpu()


def new_convnet(cfg: Config, info: DatasetInfo) -> ConvNet:
    dc = cfg.distill
    return ConvNet(
        info.num_classes, info.channels, info.image_size, dc.net_width, dc.net_depth, dc.net_norm
    )


def train_expert(
    cfg: Config,
    info: DatasetInfo,
    train: ImageTensors,
    index: int,
    device: torch.device,
    progress: str = "",
) -> Tensor:
    """Expert ``index``'s trajectory: (mtt_train_epochs + 1, P), its parameters at the start and
    after every epoch (``progress``: a bar's description, "" for none)."""
    dc = cfg.distill
    gen = step_generator(EXPERT_SEED, index)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        net = new_convnet(cfg, info).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=dc.mtt_teacher_lr, momentum=0.0)
    strategy = dsa_strategy_for(info) if dc.dsa else ""
    images = info.normalize(train.take(torch.arange(len(train))))
    labels = train.labels

    def batches():
        for idx in torch.randperm(len(labels), generator=gen).split(EXPERT_BATCH):
            x = images[idx]
            if strategy:
                seed = int(torch.randint(2**31, (1,), generator=gen))
                x = dsa_augment(x, strategy, seed, siamese=False)
            yield x, labels[idx]

    snapshots = [flat_parameters(net)]

    def keep(engine) -> None:
        engine.add_event_handler(
            Events.EPOCH_COMPLETED, lambda _: snapshots.append(flat_parameters(net))
        )

    n_batches = -(-len(labels) // EXPERT_BATCH)
    epochs = dc.mtt_train_epochs
    fit(net, opt, Batches(batches, n_batches), epochs, device, progress=progress, attach=keep)
    return torch.stack(snapshots)


def expert_trajectories(
    cfg: Config,
    info: DatasetInfo,
    train: ImageTensors,
    device: torch.device,
    say=print,
    progress: bool = False,
) -> list[Tensor]:
    """``mtt_experts`` trajectories: read from their file, the missing ones trained and added
    (the file rewritten after each, so a killed build resumes); ``say`` names each expert as
    it starts, ``progress`` adds a bar over its epochs."""
    dc, key = cfg.distill, trajectory_key(cfg, info)
    path = trajectory_path(cfg, key)
    experts = load_trajectories(path, key) if path.is_file() else []
    if len(experts) >= dc.mtt_experts:
        return experts[: dc.mtt_experts]
    with RunLock(path, folder=False):
        experts = load_trajectories(path, key) if path.is_file() else []  # another run's
        for i in range(len(experts), dc.mtt_experts):
            say(f"mtt: training expert {i + 1}/{dc.mtt_experts} ({dc.mtt_train_epochs} epochs)")
            bar = f"expert {i + 1}/{dc.mtt_experts}" if progress else ""
            experts.append(train_expert(cfg, info, train, i, device, bar))
            payload = {
                "kind": KIND_TRAJECTORIES,
                "format_version": FORMAT_VERSION,
                "key": key,
                "experts": experts,
            }
            atomic_save(payload, path)
    return experts[: dc.mtt_experts]


def trajectory_loss(student: Tensor, start: Tensor, target: Tensor) -> Tensor:
    """MTT's normalised parameter distance: ‖student − target‖² / ‖start − target‖²."""
    return (student - target).pow(2).sum() / (start - target).pow(2).sum().clamp_min(1e-12)


class StudentNetwork:
    """A ConvNet run on a flat parameter vector (``functional_call``), so that SGD steps on it
    keep their graph."""

    def __init__(self, cfg: Config, info: DatasetInfo, device: torch.device) -> None:
        self.net = new_convnet(cfg, info).to(device)
        self.names = [n for n, _ in self.net.named_parameters()]
        self.shapes = [p.shape for _, p in self.net.named_parameters()]
        self.sizes = [p.numel() for _, p in self.net.named_parameters()]

    def __call__(self, flat: Tensor, x: Tensor) -> Tensor:
        parts = flat.split(self.sizes)
        params = {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}
        return functional_call(self.net, params, (x,))


def unrolled_student(
    student: StudentNetwork,
    start: Tensor,
    images: Tensor,
    labels: Tensor,
    lr: Tensor,
    steps: int,
    batch: int,
    gen: torch.Generator,
    dsa_strategy: str = "",
) -> Tensor:
    """The student's parameters after ``steps`` SGD steps of learning rate ``lr`` on
    ``images`` (batches of ``batch``, 0: all), with the graph back to ``images`` and ``lr``."""
    params = start.clone().requires_grad_(True)
    n = len(labels)
    for _ in range(steps):
        idx = torch.randperm(n, generator=gen)[: batch or n].to(images.device)
        x = images[idx]
        if dsa_strategy:
            x = dsa_augment(
                x, dsa_strategy, int(torch.randint(2**31, (1,), generator=gen)), siamese=False
            )
        ce = F.cross_entropy(student(params, x), labels[idx])
        (grad,) = torch.autograd.grad(ce, params, create_graph=True)
        params = params - lr * grad
    return params
