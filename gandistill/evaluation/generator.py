"""The evaluation report of a generator: ``gandistill evaluate --generator``.

Samples ``n`` images per class from the (EMA) generator and reports their fidelity to the real
test split (FID, stratified KID ×10³ with bootstrap intervals, IS, precision/recall; the
independent network's features by default) beside real training images of the same number per
class (the floor), their class consistency under the real-data classifier, their intra-class
diversity (mean pairwise distance among a class's samples over the same among its real images:
near 0 for a class collapsed to one image, which consistency and FID do not show), and how well
a fresh network tells held-out real images from new samples (a classifier two-sample test: 50%
means it cannot). Files and TensorBoard scalars as for a distilled set
(:func:`~gandistill.evaluation.render.write_generator_report`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from gandistill.classifier import get_classifier
from gandistill.config import Config
from gandistill.data import DatasetInfo, Splits, load_dataset, require_compatible
from gandistill.defaults import EVAL_PROFILE, FEATURE_EXTRACTOR
from gandistill.distances import diversity_ratios
from gandistill.errors import ConfigError
from gandistill.evaluation.fidelity import check_extractor, fidelity_table
from gandistill.evaluation.options import PROFILES as REPORT_PROFILES
from gandistill.evaluation.options import apply_profile
from gandistill.evaluation.render import write_generator_report
from gandistill.evaluation.report import (
    REPORT_VERSION,
    converged_accuracy,
    convergence_stop,
    fidelity_network,
    full_data_reference,
)
from gandistill.files import GeneratorCheckpoint, load_generator_checkpoint, to_uint8
from gandistill.fit import evaluate_set, fit
from gandistill.models import ConvNet, from_gan_range
from gandistill.runtime import library_versions, resolve_device, step_generator

GENERATOR_REPORT_KEYS = (
    "report_version",
    "source",
    "profile",
    "samples_per_class",
    "fidelity",
    "class_consistency",
    "diversity",
    "cas",
    "real_vs_generated",
    "wall_seconds",
    "versions",
)
# samples per class, epochs of the two-sample classifier
GENERATOR_PROFILES = {"quick": (100, 3), "full": (1000, 10)}
# samples per class of the classification accuracy score, per profile
CAS_SAMPLES = {"quick": (1, 10), "full": (1, 10, 50)}


def sample_images(
    generator: nn.Module, num_classes: int, n_per_class: int, seed: int, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """``n_per_class`` samples of each class: images in [0, 1] (CPU) and their labels."""
    return sample_per_class_counts(generator, [n_per_class] * num_classes, seed, batch_size)


@torch.no_grad()
def sample_per_class_counts(
    generator: nn.Module, counts: list[int], seed: int, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """``counts[c]`` samples of class ``c``, ordered by class: images in [0, 1] (CPU) and their
    labels."""
    generator.eval()
    device = next(generator.parameters()).device
    gen = step_generator(seed, -30)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    images = []
    for y in labels.split(batch_size):
        z = generator.sample_latents(len(y), gen)
        images.append(from_gan_range(generator(z, y.to(device))).clamp(0, 1).cpu())
    return torch.cat(images), labels


def real_vs_generated_accuracy(
    real_train: Tensor,
    fake_train: Tensor,
    real_test: Tensor,
    fake_test: Tensor,
    info: DatasetInfo,
    epochs: int,
    seed: int,
    device: torch.device,
) -> float:
    """Test accuracy of a fresh small ConvNet trained to tell real (0) from generated (1) images.

    Inputs are images in [0, 1]; train and test sets are disjoint (held-out real images, fresh
    samples). 0.5 means the two are indistinguishable to it; 1.0 means it always tells them apart.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ConvNet(2, info.channels, info.image_size, width=32).to(device)
    x = info.normalize(torch.cat([real_train, fake_train]))
    y = torch.cat([torch.zeros(len(real_train)), torch.ones(len(fake_train))]).long()
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=128,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    fit(net, opt, loader, epochs, device, nn.CrossEntropyLoss())
    net.eval()
    with torch.no_grad():
        correct = 0
        for images, label in ((real_test, 0), (fake_test, 1)):
            for batch in images.split(500):
                pred = net(info.normalize(batch.to(device))).argmax(1)
                correct += int((pred == label).sum())
    return correct / (len(real_test) + len(fake_test))


def _cas_stats(stats: dict) -> dict:
    """The fields of an accuracy result a CAS row keeps."""
    keep = ("mean", "std", "accuracies", "binomial_se", "epochs", "best_epochs", "converged")
    return {k: stats[k] for k in keep if k in stats}


def cas_section(
    generator: nn.Module, data: Splits, cfg: Config, profile: str, device: torch.device
) -> dict:
    """The classification accuracy score (CAS, Ravuri & Vinyals 2019): fresh networks trained on
    ``k`` generated samples per class only, tested on the real test split, beside the same
    networks trained on ``k`` random real training images per class, for each ``k`` of the
    profile's :data:`CAS_SAMPLES`, under the evaluation report's protocol of that profile.
    A generator whose samples of a class are near-duplicates scores far below real images.

    The row ``full`` draws as many samples per class as the training split holds and trains
    until validation accuracy stalls, beside the report's converged full-data reference (the
    whole training split): whether the generator could stand in for the data."""
    ec = apply_profile(cfg.eval, REPORT_PROFILES[profile])
    train, test, info = data.train, data.test, data.info
    rows = {}
    for k in CAS_SAMPLES[profile]:
        fake01, fake_labels = sample_images(generator, info.num_classes, k, cfg.seed + k)
        real_k = [min(k, n) for n in train.class_counts()]
        real01, real_labels = train.sample_per_class(real_k, step_generator(cfg.seed, -32 - k))
        row: dict = {"samples_per_class": k}
        for name, (x, y) in (("generated", (fake01, fake_labels)), ("real", (real01, real_labels))):
            result = evaluate_set(info.normalize(x), y, test, info, ec, cfg.seed, device)
            p = result.mean
            row[name] = {
                "mean": p,
                "std": result.std,
                "accuracies": result.accuracies,
                "binomial_se": math.sqrt(p * (1 - p) / len(test)),
            }
        rows[str(k)] = row
    counts = train.class_counts()
    fake01, fake_labels = sample_per_class_counts(generator, counts, cfg.seed - 1)
    stop = convergence_stop(profile)
    generated, _ = converged_accuracy(
        info.normalize(fake01), fake_labels, data, ec, cfg.seed, device, stop, progress=False
    )
    real, _ = full_data_reference(data, cfg, ec, profile, device, progress=False)
    rows["full"] = {
        "samples_per_class": round(sum(counts) / len(counts)),
        "generated": _cas_stats(generated),
        "real": _cas_stats(real),
    }
    return {
        "protocol": {
            "epochs": ec.epochs,
            "augment": ec.augment,
            "n_models": ec.n_models,
            "full_max_epochs": stop["max_epochs"],
            "full_patience": stop["patience"],
        },
        "samples_per_class": list(CAS_SAMPLES[profile]),
        "rows": rows,
    }


def _checked_inputs(
    generator: str | Path | GeneratorCheckpoint,
    profile: str,
    extractor: str,
    inception_weights: str | None,
) -> tuple[GeneratorCheckpoint, str | None]:
    """Refuse bad arguments before anything is sampled; the checkpoint (loaded when given as a
    path) and the Inception weights file as
    :func:`~gandistill.evaluation.fidelity.check_extractor` resolves it."""
    if profile not in GENERATOR_PROFILES:
        raise ConfigError(f"unknown profile '{profile}' (known: {', '.join(GENERATOR_PROFILES)})")
    inception_weights = check_extractor(extractor, inception_weights)
    ckpt = (
        generator
        if isinstance(generator, GeneratorCheckpoint)
        else load_generator_checkpoint(generator)
    )
    return ckpt, inception_weights


def _source(ckpt: GeneratorCheckpoint, info: DatasetInfo) -> dict:
    """The ``source`` section: which generator checkpoint was evaluated, on which dataset."""
    return {
        "path": str(ckpt.path),
        "sha256": ckpt.sha256,
        "kind": "generator",
        "dataset": info.name,
        "iteration": ckpt.iteration,
        # the generator file it was distilled from (distill-generator), else None
        "derived_from": ckpt.derived_from,
    }


def _halves(num_classes: int, n: int) -> tuple[Tensor, Tensor]:
    """Indices of the first and of the second ``n`` samples of each class among ``2 n`` per
    class (ordered by class, as :func:`sample_images` returns them)."""
    first = torch.cat([torch.arange(c * 2 * n, c * 2 * n + n) for c in range(num_classes)])
    second = torch.cat([torch.arange(c * 2 * n + n, (c + 1) * 2 * n) for c in range(num_classes)])
    return first, second


def evaluate_generator(
    generator: str | Path | GeneratorCheckpoint,
    cfg: Config | None = None,
    out: str | Path | None = None,
    profile: str = EVAL_PROFILE,
    extractor: str = FEATURE_EXTRACTOR,
    inception_weights: str | None = None,
    kid_subset_size: int | None = None,
    data: Splits | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate a generator; returns the report (keys :data:`GENERATOR_REPORT_KEYS`) and writes
    it to ``out`` when given. Arguments as
    :func:`~gandistill.evaluation.report.evaluate_distilled`."""
    wall = time.perf_counter()
    ckpt, inception_weights = _checked_inputs(generator, profile, extractor, inception_weights)
    cfg = cfg or ckpt.config
    device = resolve_device(cfg.device)
    data = data if data is not None else load_dataset(cfg.data)
    train, test, info = data.train, data.test, data.info
    require_compatible(ckpt.info, info, "the generator")
    n, epochs = GENERATOR_PROFILES[profile]
    ckpt.generator.to(device)
    # 2n per class: the first n are scored and train the two-sample test, the rest test it
    fake01, fake_labels = sample_images(ckpt.generator, info.num_classes, 2 * n, cfg.seed)
    first, second = _halves(info.num_classes, n)
    clf = get_classifier(cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, data, device, progress)
    real01, real_labels = train.sample_balanced(
        min(len(train), n * info.num_classes), step_generator(cfg.seed, -31)
    )
    fidelity = fidelity_table(
        {
            "generated": (to_uint8(fake01[first]), fake_labels[first]),
            "real_train": (to_uint8(real01), real_labels),  # the floor: real, same size
        },
        (test.images, test.labels),
        fidelity_network(extractor, clf, cfg, data, device, progress),
        extractor=extractor,
        inception_weights=inception_weights,
        kid_subset_size=kid_subset_size,
        device=device,
        seed=cfg.seed,
    )
    predicted = clf.predict(fake01[first].to(device))
    consistency = float((predicted == fake_labels[first]).float().mean())
    ratios = diversity_ratios(
        fake01[first], fake_labels[first], real01, real_labels, info.num_classes
    )
    test01 = test.images.float() / 255.0
    c2st = real_vs_generated_accuracy(
        real01, fake01[first], test01, fake01[second][: len(test01)], info, epochs, cfg.seed, device
    )
    report = {
        "report_version": REPORT_VERSION,
        "source": _source(ckpt, info),
        "profile": profile,
        "samples_per_class": n,
        "fidelity": fidelity,
        "class_consistency": consistency,
        "diversity": {"per_class": ratios, "mean": sum(ratios) / len(ratios), "min": min(ratios)},
        "cas": cas_section(ckpt.generator, data, cfg, profile, device),
        "real_vs_generated": {"accuracy": c2st, "epochs": epochs},
        "wall_seconds": time.perf_counter() - wall,
        "versions": library_versions(),
    }
    if out is not None:
        # the first 8 samples of each class, a grid row each
        grid = torch.cat([fake01[c * 2 * n : c * 2 * n + 8] for c in range(info.num_classes)])
        write_generator_report(report, Path(out), grid, ckpt.iteration)
    return report
