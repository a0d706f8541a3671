"""The evaluation report of a distilled set: ``gandistill evaluate`` and :func:`evaluate_distilled`.

One call trains fresh networks on the distilled set, on a random real subset of the same size
and on the full training data (the two ends of the scale), under one protocol, and adds the
fidelity scores (FID and class-stratified KID ×10³ with bootstrap intervals, IS,
precision/recall, in the features of a network independent of the one that selects sets; the
random real subset of the set's size is their floor), compression, the training-time reduction
and the seed metrics of the literature (gradient similarity, distribution distances,
structure, privacy). It writes ``report.json`` (keys in :data:`REPORT_KEYS`), ``report.md``
with the image grid and plots, and TensorBoard scalars under ``eval/*``:
:mod:`gandistill.evaluation.render` renders and writes the files.

Profiles: ``quick`` (one network per set, 300 epochs without augmentation) and ``full``
(``cfg.eval``: the DC protocol, three networks, 1000 epochs with augmentation). The full-data
reference trains until its validation accuracy stalls (see ``Profile``); its results are cached
per dataset, protocol, stopping rule and seed under ``<cache_dir>/baselines``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gandistill.classifier import RealClassifier, get_classifier, get_independent_network
from gandistill.config import Config, EvalConfig, to_dict
from gandistill.data import DatasetInfo, ImageTensors, Splits, load_dataset, require_compatible
from gandistill.defaults import EVAL_PROFILE, FEATURE_EXTRACTOR
from gandistill.errors import ConfigError
from gandistill.evaluation.fidelity import (
    EXTRACTOR_CLASSIFIER,
    EXTRACTOR_INDEPENDENT,
    fidelity_table,
)
from gandistill.evaluation.options import PROFILES, apply_profile, checked_inputs
from gandistill.evaluation.render import write_report
from gandistill.evaluation.sections import (
    compression_section,
    cross_architecture_section,
    distillation_summary,
    fairness_section,
    protocol_manifest,
    seed_metrics_sections,
    source_section,
    splits_section,
    training_time_section,
)
from gandistill.files import DistilledSet, atomic_write, to_uint8
from gandistill.fit import (
    EvalResult,
    test_accuracy,
    test_logits,
    train_network,
    train_to_convergence,
)
from gandistill.locks import RunLock
from gandistill.runtime import library_versions, resolve_device, step_generator

REPORT_VERSION = 1
REPORT_KEYS = (
    "report_version",
    "source",
    "splits",
    "profile",
    "protocol",
    "accuracy",
    "cross_architecture",
    "fairness",
    "fidelity",
    "compression",
    "training_time",
    "gradient_similarity",
    "distribution",
    "structure",
    "privacy",
    "distillation",
    "wall_seconds",
    "versions",
)
BASELINE_DIR = "baselines"


def _stats(result: EvalResult, seconds: list[float], test_images: int) -> dict:
    """Accuracy over the networks with both of its uncertainties: the spread over networks
    (``std``) and the test split's binomial standard error at the mean (``binomial_se``: what
    1000 test images can resolve, however many networks were trained)."""
    p = result.mean
    return {
        "mean": p,
        "std": result.std,
        "accuracies": result.accuracies,
        "test_images": test_images,
        "binomial_se": math.sqrt(p * (1.0 - p) / test_images) if test_images else 0.0,
        "train_seconds": sum(seconds) / len(seconds),
    }


class _Trainer:
    """Trains the protocol's networks on one set; keeps accuracy, time and test logits."""

    def __init__(self, test: ImageTensors, info: DatasetInfo, seed: int, device: torch.device):
        self.test, self.info, self.seed, self.device = test, info, seed, device

    def run(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        ec: EvalConfig,
        progress: bool,
        teacher: torch.nn.Module | None = None,
    ) -> tuple[dict, torch.Tensor]:
        accs, seconds, logits = [], [], None
        for i in range(ec.n_models):
            start = time.perf_counter()
            net = train_network(
                images,
                labels,
                self.info,
                ec,
                self.seed + 1000 * i,
                self.device,
                None,
                progress,
                teacher,
            )
            seconds.append(time.perf_counter() - start)
            accs.append(test_accuracy(net, self.test, self.info, self.device))
            if logits is None:
                logits = test_logits(net, self.test, self.info, self.device)
        return _stats(EvalResult(accs), seconds, len(self.test)), logits


def converged_accuracy(
    images: torch.Tensor,
    labels: torch.Tensor,
    data: Splits,
    ec: EvalConfig,
    seed: int,
    device: torch.device,
    stop: dict,
    progress: bool,
    deadline: float | None = None,
) -> tuple[dict, torch.Tensor]:
    """Accuracy stats (as :func:`_stats`, plus the epochs, best epochs and validation accuracies
    of the runs) and the first network's test logits, of ``ec.n_models`` networks trained on the
    normalised ``images`` until their accuracy on the validation split stops improving
    (:func:`~gandistill.fit.train_to_convergence` with ``stop``'s ``max_epochs`` and
    ``patience``, and ``deadline``; ``out_of_time`` in the stats: a run was stopped by it)."""
    info, test = data.info, data.test
    accs, seconds, runs, logits = [], [], [], None
    for i in range(ec.n_models):
        start = time.perf_counter()
        net, run = train_to_convergence(
            images, labels, data.val, info, ec, seed + 1000 * i, device,
            progress=progress, deadline=deadline, **stop,
        )  # fmt: skip
        seconds.append(time.perf_counter() - start)
        runs.append(run)
        accs.append(test_accuracy(net, test, info, device))
        if logits is None:
            logits = test_logits(net, test, info, device)
    stats = _stats(EvalResult(accs), seconds, len(test))
    stats.update(
        epochs=[r["epochs"] for r in runs],
        best_epochs=[r["best_epoch"] for r in runs],
        val_accuracies=[r["val_accuracy"] for r in runs],
        converged=all(r["converged"] for r in runs),
        out_of_time=any(r["out_of_time"] for r in runs),
        **{f"stop_{k}": v for k, v in stop.items()},
    )
    return stats, logits


def convergence_stop(profile_name: str) -> dict:
    """The stop rule of a run trained to convergence under a report profile: ``max_epochs`` and
    ``patience`` for :func:`converged_accuracy`."""
    prof = PROFILES[profile_name]
    return {"max_epochs": prof.full_epochs, "patience": prof.full_patience}


def full_data_reference(
    data: Splits,
    cfg: Config,
    ec: EvalConfig,
    profile_name: str,
    device: torch.device,
    progress: bool,
    deadline: float | None = None,
) -> tuple[dict, torch.Tensor]:
    """Accuracy of the protocol's networks trained on all of the training split until their
    validation accuracy stops improving (at most the profile's ``full_epochs``; cached on
    disk): the reference a set is measured against, so it must be a converged one.

    A cached reference is used whatever ``deadline`` says; one that ``deadline`` (a
    :func:`time.perf_counter` value) stopped is reported (``out_of_time``) but not cached."""
    stop = convergence_stop(profile_name)
    key = json.dumps(
        {
            "data": to_dict(cfg.data),
            "eval": asdict(ec),
            "stop": stop,
            "seed": cfg.seed,
            "v": REPORT_VERSION,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = Path(cfg.cache_dir) / BASELINE_DIR / f"{cfg.data.name}-{profile_name}-{digest}.pt"
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        return json.loads(cached["stats"]), cached["logits"]
    train = data.train
    images = data.info.normalize(train.images.float() / 255.0)
    stats, logits = converged_accuracy(
        images, train.labels, data, ec, cfg.seed, device, stop, progress, deadline
    )
    if not stats["out_of_time"]:
        blob = {"stats": json.dumps(stats), "logits": logits}
        atomic_write(path, lambda fh: torch.save(blob, fh))
    return stats, logits


def random_real_subset(
    train: ImageTensors, ipc: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` random training images per class (in [0, 1]) and their labels: the real baseline
    (the benchmark scripts draw theirs with it too, so their subsets are the report's)."""
    return train.sample_per_class([ipc] * train.num_classes, step_generator(seed, -20))


def _real_per_class(split: ImageTensors, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` random images per class of ``split`` (in [0, 1]) and their labels: the real
    sample of the fidelity floor and the seed metrics."""
    counts = [min(n, c) for c in split.class_counts()]
    return split.sample_per_class(counts, step_generator(seed, -21))


@dataclass(frozen=True)
class _Reference:
    """The first architecture's results, against which time and distributions are compared."""

    arch: str
    distilled: dict  # accuracy stats of the distilled set's networks
    full_data: dict  # accuracy stats of the full-data networks (with the epochs they ran)
    logits: tuple[torch.Tensor, torch.Tensor]  # test logits of a full-data, a distilled network


def arch_protocol(ec: EvalConfig) -> dict:
    """How the networks of one architecture are trained: what a cross-architecture table states
    beside each."""
    return {
        "epochs": ec.epochs,
        "n_models": ec.n_models,
        "augment": ec.augment,
        "lr": ec.lr,
        "batch_size": ec.batch_size,
    }


def _accuracy_section(
    trainer: _Trainer,
    ds: DistilledSet,
    random_real: tuple[torch.Tensor, torch.Tensor],
    data: Splits,
    cfg: Config,
    ec: EvalConfig,
    archs: list[str],
    profile: str,
    teacher: torch.nn.Module | None,
    progress: bool,
    deadline: float | None = None,
) -> tuple[dict[str, dict], _Reference, dict[str, dict]]:
    """The ``accuracy`` section: rows per architecture of ``archs``.

    Each architecture gets the distilled set (also with ``teacher``'s soft labels when given,
    and the gain) and the random real subset (``random_real``: images in [0, 1], labels); the
    first one also gets the full training data, trained until validation accuracy stalls or
    ``deadline`` passes (:func:`full_data_reference`).

    Returns:
        The rows by architecture, the first architecture's results, and each architecture's
        protocol (:func:`arch_protocol`).
    """
    rand01, rand_labels = random_real
    accuracy: dict[str, dict] = {}
    protocols: dict[str, dict] = {}
    for arch in archs:
        arch_ec = apply_profile(ec, PROFILES[profile], arch)  # the profile's cuts for it
        protocols[arch] = arch_protocol(arch_ec)
        rows = accuracy[arch] = {}
        rows["distilled"], logits = trainer.run(ds.images_float, ds.labels, arch_ec, progress)
        if teacher is not None:
            rows["distilled_soft"], _ = trainer.run(
                ds.images_float, ds.labels, arch_ec, progress, teacher=teacher
            )
            rows["soft_label_gain"] = rows["distilled_soft"]["mean"] - rows["distilled"]["mean"]
        random_images = trainer.info.normalize(rand01)
        rows["random_real"], _ = trainer.run(random_images, rand_labels, arch_ec, progress)
        if teacher is not None:  # the same soft labels for the random subset: a fair IOR
            rows["random_real_soft"], _ = trainer.run(
                random_images, rand_labels, arch_ec, progress, teacher=teacher
            )
        if len(accuracy) == 1:  # the first architecture
            rows["full_data"], logits_full = full_data_reference(
                data, cfg, arch_ec, profile, trainer.device, progress, deadline
            )
            logits_pair = (logits_full, logits)
            reference = _Reference(arch, rows["distilled"], rows["full_data"], logits_pair)
    return accuracy, reference, protocols


def fidelity_network(
    extractor: str,
    clf: RealClassifier,
    cfg: Config,
    data: Splits,
    device: torch.device,
    progress: bool,
) -> RealClassifier | None:
    """The network whose features the fidelity scores use: the independent one (trained and
    cached on first use), the selection classifier itself, or none (Inception)."""
    if extractor == EXTRACTOR_INDEPENDENT:
        cc = cfg.classifier
        return get_independent_network(
            cfg.data, cc, cfg.seed, cfg.cache_dir, data, device, progress
        )
    return clf if extractor == EXTRACTOR_CLASSIFIER else None


def _measure(
    ds: DistilledSet,
    data: Splits,
    clf: RealClassifier,
    fid_net: RealClassifier | None,
    cfg: Config,
    profile: str,
    archs: list[str],
    teacher: torch.nn.Module | None,
    fidelity_options: dict,
    device: torch.device,
    progress: bool,
    deadline: float | None = None,
) -> dict:
    """The report's sections from ``protocol`` to ``privacy``, in the report's order.

    Arguments as :func:`evaluate_distilled` after
    :func:`~gandistill.evaluation.options.checked_inputs`; ``teacher`` gives the soft labels
    (None: none), ``fid_net`` the fidelity scores' features (None: Inception), ``deadline``
    the full-data reference's (a :func:`time.perf_counter` value; None: none).
    """
    train, test, info = data.train, data.test, data.info
    prof = PROFILES[profile]
    ec = apply_profile(cfg.eval, prof)
    # the sections run in this order, which fixes the random draws and the order of trainings
    random_real = random_real_subset(train, ds.ipc, cfg.seed)
    trainer = _Trainer(test, info, cfg.seed, device)
    accuracy, ref, protocols = _accuracy_section(
        trainer, ds, random_real, data, cfg, ec, archs or [ec.arch], profile, teacher, progress,
        deadline,
    )  # fmt: skip
    real = _real_per_class(train, prof.fidelity_real, cfg.seed)
    # the random real subset has the set's size and classes: the fair floor of its scores
    fidelity_sets = {
        "distilled": (ds.images_uint8, ds.labels),
        "random_real": (to_uint8(random_real[0]), random_real[1]),
    }
    ref_ec = apply_profile(ec, prof, ref.arch)
    return {
        "protocol": protocol_manifest(
            ref_ec,
            list(accuracy),
            prof,
            cfg.seed,
            teacher is not None,
            data,
        ),
        "accuracy": accuracy,
        "cross_architecture": cross_architecture_section(accuracy, protocols, info.num_classes),
        "fairness": fairness_section(accuracy),
        "fidelity": fidelity_table(
            fidelity_sets,
            (test.images, test.labels),
            fid_net,
            device=device,
            seed=cfg.seed,
            **fidelity_options,
        ),
        "compression": compression_section(train, ds),
        "training_time": training_time_section(ref.distilled, ref.full_data, ref_ec.epochs),
        **seed_metrics_sections(
            ds, real, data, clf, ref.logits, prof.grad_networks, cfg.seed, device
        ),
    }


def evaluate_distilled(
    distilled: str | Path | DistilledSet,
    cfg: Config | None = None,
    out: str | Path | None = None,
    profile: str = EVAL_PROFILE,
    extractor: str = FEATURE_EXTRACTOR,
    inception_weights: str | None = None,
    kid_subset_size: int | None = None,
    data: Splits | None = None,
    progress: bool = True,
    archs: Sequence[str] | None = None,
    soft_labels: bool = False,
    max_minutes: float | None = None,
) -> dict:
    """Evaluate a distilled set; returns the report (and writes it to ``out`` when given).

    Args:
        distilled: the distilled-set file (or a loaded set).
        cfg: the config whose ``data``, ``eval``, ``classifier``, ``seed``, ``device`` and
            ``cache_dir`` apply (default: the one saved with the set).
        out: folder for ``report.json``, ``report.md``, images and TensorBoard events.
        profile: ``quick``, ``cpu`` or ``full`` (see
            :data:`~gandistill.evaluation.options.PROFILES`).
        extractor: torch-fidelity feature extractor: ``classifier`` (offline) or
            ``inception-v3-compat`` (needs ``inception_weights`` or weights in the torch cache).
        inception_weights: local Inception weights file.
        kid_subset_size: set images per KID draw (default: the whole set; each draw's reference
            subset has their class counts); a size larger than the set is an error.
        data: pre-loaded :class:`~gandistill.data.Splits` (scores read its test split).
        progress: progress bars on the long trainings.
        archs: evaluation networks (default: ``cfg.eval.arch``); the first one also gets the
            full-data reference, every one the distilled set and the random real subset (the
            cross-architecture table).
        soft_labels: also train the distilled set's networks with the real-data classifier as
            teacher (:func:`gandistill.fit.distillation_loss`) and report the gain.
        max_minutes: a budget for the whole evaluation (None: none). The full-data reference,
            trained after the sets' networks, stops after the first epoch that ends past it
            (its row then says so, and it is not cached); the sets' networks keep the
            protocol's epochs, so that their scores stay comparable, and the sections after
            the networks are not cut either.
    """
    if max_minutes is not None and not max_minutes > 0:
        raise ConfigError(f"the evaluation's max_minutes must be > 0, got {max_minutes}")
    # one evaluation writes into a folder at a time
    with RunLock(out, folder=True) if out is not None else nullcontext():
        wall = time.perf_counter()
        ds, source_path, archs, fid_options = checked_inputs(
            distilled, profile, extractor, inception_weights, archs, kid_subset_size
        )
        cfg = cfg or ds.config
        device = resolve_device(cfg.device)
        data = data if data is not None else load_dataset(cfg.data)
        require_compatible(ds.info, data.info, "the distilled set")
        clf = get_classifier(
            cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, data, device, progress
        )
        teacher = clf.net if soft_labels else None
        fid_net = fidelity_network(fid_options["extractor"], clf, cfg, data, device, progress)
        sections = _measure(
            ds,
            data,
            clf,
            fid_net,
            cfg,
            profile,
            archs,
            teacher,
            fid_options,
            device,
            progress,
            None if max_minutes is None else wall + 60.0 * max_minutes,
        )
        report = {
            "report_version": REPORT_VERSION,
            "source": source_section(source_path, ds, data.info),
            "splits": splits_section(data),
            "profile": profile,
            **sections,
            "distillation": distillation_summary(ds),
            "wall_seconds": time.perf_counter() - wall,
            "versions": library_versions(),
        }
        if out is not None:
            write_report(report, Path(out), ds.images_uint8.float() / 255.0, data.info)
        return report
