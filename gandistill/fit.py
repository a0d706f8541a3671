"""Downstream accuracy: train fresh networks on a (distilled) set only, test on real data.

The protocol of the DC/DSA/DM papers: SGD (lr 0.01, momentum 0.9, weight decay 5e-4), batch 256,
cross-entropy, learning rate ×0.1 once at half the epochs; 1000 epochs with augmentation (the DC
crop/scale/rotate set for MNIST-like data, or DSA), 300 without. Mean ± std over fresh networks.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from ignite.engine import Engine, Events, create_supervised_evaluator, create_supervised_trainer
from ignite.exceptions import NotComputableError
from ignite.handlers import EarlyStopping, ProgressBar, ReduceLROnPlateauScheduler
from ignite.metrics import Accuracy
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from gandistill.augment import DSA_STRATEGY, dc_augment, dsa_augment
from gandistill.config import EvalConfig
from gandistill.data import DatasetInfo, ImageTensors
from gandistill.models import ConvNet
from gandistill.models.evalnets import EVAL_NETWORKS
from gandistill.runtime import amp_context

EVAL_ARCHS: dict[str, Callable[[DatasetInfo], nn.Module]] = {
    "convnet": lambda info: ConvNet(info.num_classes, info.channels, info.image_size),
    **{
        name: (lambda info, make=make: make(info.num_classes, info.channels, info.image_size))
        for name, make in EVAL_NETWORKS.items()
    },
}


def dsa_strategy_for(info: DatasetInfo) -> str:
    """The reference DSA strategy; flips are left out for digit-like grayscale data."""
    if info.channels == 1:
        return DSA_STRATEGY.replace("flip_", "")
    return DSA_STRATEGY


@dataclass
class EvalResult:
    """Test accuracies of fresh networks trained on one set."""

    accuracies: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:  # population std, as the papers report
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}% (n={len(self.accuracies)})"


def _augmenter(kind: str, info: DatasetInfo, seed: int) -> Callable[[Tensor], Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if kind == "dc":
        return lambda x: dc_augment(x, gen)
    if kind == "dsa":
        strategy = dsa_strategy_for(info)

        def dsa(x: Tensor) -> Tensor:  # fresh seed per batch; per-image draws, as in evaluation
            batch_seed = int(torch.randint(2**31, (1,), generator=gen))
            return dsa_augment(x, strategy, batch_seed, siamese=False)

        return dsa
    return lambda x: x


def distillation_loss(temperature: float, alpha: float) -> Callable[[Tensor, tuple], Tensor]:
    """Knowledge distillation (Hinton et al. 2015): ``alpha`` · T² · KL(teacher_T ‖ student_T)
    plus ``1 − alpha`` · cross-entropy on the hard labels; targets come as ``(labels, logits)``."""

    def loss(student: Tensor, target: tuple[Tensor, Tensor]) -> Tensor:
        labels, teacher = target
        soft = F.kl_div(
            F.log_softmax(student / temperature, 1),
            F.log_softmax(teacher / temperature, 1),
            reduction="batchmean",
            log_target=True,
        )
        hard = F.cross_entropy(student, labels)
        return alpha * temperature**2 * soft + (1.0 - alpha) * hard

    return loss


def _fresh_network(ec: EvalConfig, info: DatasetInfo, seed: int, device: torch.device) -> nn.Module:
    """A new ``ec.arch`` network initialised from ``seed``, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EVAL_ARCHS[ec.arch](info).to(device)


def _train_loader(
    images: Tensor, labels: Tensor, teacher: nn.Module | Tensor | None, batch_size: int, seed: int
) -> DataLoader:
    """Shuffled CPU batches ``(images, labels[, stored teacher logits])``, ordered by ``seed``."""
    tensors = [images.detach().float().cpu(), labels.cpu()]
    if isinstance(teacher, Tensor):
        tensors.append(teacher.detach().float().cpu())
    return DataLoader(
        TensorDataset(*tensors),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def _forward(ec: EvalConfig, device: torch.device) -> Callable[[nn.Module, Tensor], Tensor] | None:
    """The training forward pass under ``ec.amp`` (bfloat16 autocast where
    :func:`~gandistill.runtime.amp_context` allows it); None: the plain ``net(x)``."""
    if not ec.amp:
        return None

    def forward(net: nn.Module, x: Tensor) -> Tensor:
        with amp_context(device, True):
            return net(x)

    return forward


def _batch_preparer(
    augment: Callable[[Tensor], Tensor], teacher: nn.Module | Tensor | None
) -> Callable[[list[Tensor], torch.device, bool], tuple]:
    """ignite's ``prepare_batch``: augment on the device; with a teacher the target is
    ``(labels, logits)``, the teacher network seeing the augmented batch the student sees."""

    def prepare(batch: list[Tensor], device: torch.device, non_blocking: bool) -> tuple:
        x, y = augment(batch[0].to(device)), batch[1].to(device)
        if teacher is None:
            return x, y
        if isinstance(teacher, nn.Module):
            with torch.no_grad():
                return x, (y, teacher(x).float())
        return x, (y, batch[2].to(device))

    return prepare


class Batches:
    """A re-iterable of ``length`` batches made on demand: every epoch calls ``make()`` afresh,
    so batches drawn from a seeded generator come in the order a plain loop would draw them."""

    def __init__(self, make: Callable[[], Iterator], length: int) -> None:
        self.make, self.length = make, length

    def __iter__(self) -> Iterator:
        return iter(self.make())

    def __len__(self) -> int:
        return self.length


def fit(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    batches: Iterable,
    epochs: int,
    device: torch.device,
    loss_fn: Callable[[Any, Any], Tensor] = F.cross_entropy,
    prepare_batch: Callable | None = None,
    model_fn: Callable[[nn.Module, Any], Any] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    schedule_every: str = "epoch",
    progress: str = "",
    attach: Callable[[Engine], None] | None = None,
) -> nn.Module:
    """The one loop that trains a network on batches: ignite's supervised trainer (per batch:
    zero the gradients, forward, loss, backward, step) for ``epochs`` passes over ``batches``.

    Args:
        net: the network, trained in place (and returned).
        opt: its optimiser.
        batches: a sized iterable of batches (a DataLoader, or :class:`Batches`), iterated
            anew each epoch.
        epochs: passes over ``batches``.
        device: where the batches go.
        loss_fn: ``loss_fn(prediction, target)``; cross-entropy by default.
        prepare_batch: ignite's ``prepare_batch(batch, device, non_blocking) -> (x, y)``; by
            default the batch's two tensors moved to ``device``.
        model_fn: ``model_fn(net, x)``, the forward pass (e.g. under autocast); ``net(x)`` by
            default.
        scheduler: a learning-rate schedule stepped after every epoch or every iteration
            (``schedule_every``).
        progress: the description of a progress bar ("" for none).
        attach: called with ignite's trainer before it runs, to add handlers (early stopping).
    """
    if epochs <= 0 or len(batches) == 0:  # type: ignore[arg-type]
        return net
    kwargs = {} if prepare_batch is None else {"prepare_batch": prepare_batch}
    if model_fn is not None:
        kwargs["model_fn"] = model_fn
    trainer = create_supervised_trainer(
        net,
        opt,
        loss_fn,
        device=device,
        # the loss stays a tensor: reading it with .item() would sync the device every step
        output_transform=lambda x, y, y_pred, loss: loss.detach(),
        **kwargs,
    )
    if scheduler is not None:
        event = {"epoch": Events.EPOCH_COMPLETED, "iteration": Events.ITERATION_COMPLETED}
        trainer.add_event_handler(event[schedule_every], lambda _: scheduler.step())
    if progress:
        ProgressBar(persist=False, desc=progress).attach(trainer)
    if attach is not None:
        attach(trainer)
    trainer.run(batches, max_epochs=epochs)
    return net


def train_network(
    images: Tensor,
    labels: Tensor,
    info: DatasetInfo,
    ec: EvalConfig,
    seed: int,
    device: torch.device,
    epochs: int | None = None,
    progress: bool = False,
    teacher: nn.Module | Tensor | None = None,
) -> nn.Module:
    """Train one fresh ``ec.arch`` network on normalised ``images`` under the protocol.

    Args:
        images: normalised training images (N, C, H, W) (``info.normalize`` of [0, 1] pixels).
        labels: int64 labels (N,).
        info: dataset facts (normalisation, shape).
        ec: the protocol.
        seed: seeds the network's initialisation, the batch order and the augmentation.
        device: where to train.
        epochs: overrides ``ec.epochs`` (quick checks during distillation).
        progress: show a progress bar.
        teacher: soft labels: a network taking normalised images (applied to each augmented
            batch) or stored teacher logits (N, K); trained with :func:`distillation_loss`
            (``ec.kd_temperature``, ``ec.kd_alpha``).

    Returns:
        The trained network (on ``device``).
    """
    epochs = epochs or ec.epochs
    net = _fresh_network(ec, info, seed, device)
    opt = torch.optim.SGD(
        net.parameters(), lr=ec.lr, momentum=ec.momentum, weight_decay=ec.weight_decay
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 2], gamma=0.1)
    loader = _train_loader(images, labels, teacher, ec.batch_size, seed)
    augment = _augmenter(ec.augment, info, seed + 1)
    if isinstance(teacher, nn.Module):
        teacher.eval()
    loss_fn = (
        nn.CrossEntropyLoss()
        if teacher is None
        else distillation_loss(ec.kd_temperature, ec.kd_alpha)
    )
    return fit(
        net,
        opt,
        loader,
        epochs,
        device,
        loss_fn,
        prepare_batch=_batch_preparer(augment, teacher),
        model_fn=_forward(ec, device),
        scheduler=sched,
        progress="eval" if progress else "",
    )


def train_to_convergence(
    images: Tensor,
    labels: Tensor,
    val_set: ImageTensors,
    info: DatasetInfo,
    ec: EvalConfig,
    seed: int,
    device: torch.device,
    max_epochs: int,
    patience: int,
    progress: bool = False,
    deadline: float | None = None,
) -> tuple[nn.Module, dict]:
    """Train one fresh ``ec.arch`` network on normalised ``images`` until its accuracy on
    ``val_set`` stops improving: the full-data reference, which a fixed short schedule would
    leave short of what the data can give.

    The protocol's optimiser and augmentation; its learning rate is divided by 10 after
    ``patience`` epochs without a better validation accuracy, training stops after
    ``2 * patience`` such epochs (or at ``max_epochs``, or after the first epoch that ends past
    ``deadline``, a :func:`time.perf_counter` value), and the weights of the best validation
    epoch are restored.

    Returns:
        The network (best validation epoch) and a summary: ``epochs`` trained, ``best_epoch``,
        ``val_accuracy`` there, ``out_of_time`` (stopped by ``deadline``) and ``converged``
        (stopped by the validation accuracy, neither at ``max_epochs`` nor by ``deadline``).
    """
    net = _fresh_network(ec, info, seed, device)
    opt = torch.optim.SGD(
        net.parameters(), lr=ec.lr, momentum=ec.momentum, weight_decay=ec.weight_decay
    )
    loader = _train_loader(images, labels, None, ec.batch_size, seed)
    best: dict = {"accuracy": -1.0, "epoch": 0, "state": None}
    engines: list[Engine] = []
    timed_out: list[int] = []  # the epoch the deadline stopped, if it did

    def prepare(batch, device, non_blocking):
        x, y = batch
        return info.normalize(x.to(device)), y.to(device)

    evaluator = create_supervised_evaluator(
        net, metrics={"accuracy": LocalAccuracy()}, device=device, prepare_batch=prepare
    )
    val_loader = DataLoader(val_set, batch_size=500)

    def attach(trainer: Engine) -> None:
        engines.append(trainer)

        def validate(engine: Engine) -> None:
            evaluator.run(val_loader)
            acc = evaluator.state.metrics["accuracy"]
            if acc > best["accuracy"]:
                state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                best.update(accuracy=acc, epoch=engine.state.epoch, state=state)
            net.train()

        trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
        evaluator.add_event_handler(
            Events.COMPLETED,
            ReduceLROnPlateauScheduler(
                opt, "accuracy", mode="max", factor=0.1, patience=patience - 1
            ),
        )
        stopper = EarlyStopping(2 * patience, lambda e: e.state.metrics["accuracy"], trainer)
        stopper.logger.setLevel(logging.WARNING)  # the stop is in the returned summary
        evaluator.add_event_handler(Events.COMPLETED, stopper)

        def out_of_time(engine: Engine) -> None:
            if deadline is not None and time.perf_counter() >= deadline:
                timed_out.append(engine.state.epoch)
                engine.terminate()

        trainer.add_event_handler(Events.EPOCH_COMPLETED, out_of_time)

    fit(
        net,
        opt,
        loader,
        max_epochs,
        device,
        prepare_batch=_batch_preparer(_augmenter(ec.augment, info, seed + 1), None),
        model_fn=_forward(ec, device),
        progress="full data" if progress else "",
        attach=attach,
    )
    net.load_state_dict(best["state"])
    epochs = engines[0].state.epoch
    return net, {
        "epochs": epochs,
        "best_epoch": best["epoch"],
        "val_accuracy": best["accuracy"],
        "out_of_time": bool(timed_out),
        "converged": epochs < max_epochs and not timed_out,
    }


def train_and_test(
    images: Tensor,
    labels: Tensor,
    test_set: ImageTensors,
    info: DatasetInfo,
    ec: EvalConfig,
    seed: int,
    device: torch.device,
    epochs: int | None = None,
    progress: bool = False,
) -> float:
    """Test accuracy of one fresh network trained by :func:`train_network` (same arguments)."""
    net = train_network(images, labels, info, ec, seed, device, epochs, progress)
    return test_accuracy(net, test_set, info, device)


@torch.no_grad()
def test_logits(
    net: nn.Module, test_set: ImageTensors, info: DatasetInfo, device: torch.device
) -> Tensor:
    """Logits (N_test, K) of ``net`` on the real test split, in its order."""
    net.eval()
    loader = DataLoader(test_set, batch_size=500)
    return torch.cat([net(info.normalize(x.to(device))).float().cpu() for x, _ in loader])


class LocalAccuracy(Accuracy):
    """ignite's Accuracy without the reduction over processes: in a run on several processes
    rank 0 evaluates alone, and the reduced metric would wait for ranks that never join."""

    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError("accuracy needs at least one example")
        return self._num_correct.item() / self._num_examples


@torch.no_grad()
def test_accuracy(
    net: nn.Module, test_set: ImageTensors, info: DatasetInfo, device: torch.device
) -> float:
    """Accuracy of ``net`` (taking normalised input) on the real test split."""

    def prepare(batch, device, non_blocking):
        x, y = batch
        return info.normalize(x.to(device)), y.to(device)

    net.eval()
    evaluator = create_supervised_evaluator(
        net, metrics={"accuracy": LocalAccuracy()}, device=device, prepare_batch=prepare
    )
    evaluator.run(DataLoader(test_set, batch_size=500))
    return float(evaluator.state.metrics["accuracy"])


def evaluate_set(
    images: Tensor,
    labels: Tensor,
    test_set: ImageTensors,
    info: DatasetInfo,
    ec: EvalConfig,
    seed: int,
    device: torch.device,
    progress: bool = False,
) -> EvalResult:
    """``ec.n_models`` fresh networks trained on the set, seeds ``seed, seed + 1000, ...``."""
    accs = [
        train_and_test(images, labels, test_set, info, ec, seed + 1000 * i, device, None, progress)
        for i in range(ec.n_models)
    ]
    return EvalResult(accs)
