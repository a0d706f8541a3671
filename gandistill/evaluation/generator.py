"""The evaluation report of a generator: ``gandistill evaluate --generator``.

Samples ``n`` images per class from the (EMA) generator and reports their fidelity to the real
test split (torch-fidelity, offline classifier extractor by default) beside the real-vs-real
floor, their class consistency under the real-data classifier, and how well a fresh network
tells held-out real images from new samples (a classifier two-sample test: 50% means it cannot).
Files and TensorBoard scalars as for a distilled set
(:func:`~gandistill.evaluation.report.write_files`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from ignite.engine import create_supervised_trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from gandistill.classifier import get_classifier
from gandistill.config import Config
from gandistill.data import DatasetInfo, ImageTensors, load_dataset, require_same_shape
from gandistill.errors import ConfigError
from gandistill.evaluation.fidelity import check_extractor, fidelity_metrics
from gandistill.evaluation.report import REPORT_VERSION, fidelity_scalars, write_files
from gandistill.files import GeneratorCheckpoint, load_generator_checkpoint, to_uint8
from gandistill.models import ConvNet, from_gan_range
from gandistill.runtime import library_versions, resolve_device, step_generator

GENERATOR_REPORT_KEYS = (
    "report_version",
    "source",
    "profile",
    "samples_per_class",
    "fidelity",
    "class_consistency",
    "real_vs_generated",
    "wall_seconds",
    "versions",
)
# samples per class, epochs of the two-sample classifier
GENERATOR_PROFILES = {"quick": (100, 3), "full": (1000, 10)}


@torch.no_grad()
def sample_images(
    generator: nn.Module, num_classes: int, n_per_class: int, seed: int, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """``n_per_class`` samples of each class: images in [0, 1] (CPU) and their labels."""
    generator.eval()
    device = next(generator.parameters()).device
    gen = step_generator(seed, -30)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
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
    create_supervised_trainer(net, opt, nn.CrossEntropyLoss(), device=device).run(
        loader, max_epochs=epochs
    )
    net.eval()
    with torch.no_grad():
        correct = 0
        for images, label in ((real_test, 0), (fake_test, 1)):
            for batch in images.split(500):
                pred = net(info.normalize(batch.to(device))).argmax(1)
                correct += int((pred == label).sum())
    return correct / (len(real_test) + len(fake_test))


def evaluate_generator(
    generator: str | Path | GeneratorCheckpoint,
    cfg: Config | None = None,
    out: str | Path | None = None,
    profile: str = "quick",
    extractor: str = "classifier",
    inception_weights: str | None = None,
    kid_subset_size: int | None = None,
    data: tuple[ImageTensors, ImageTensors, DatasetInfo] | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate a generator; returns the report (keys :data:`GENERATOR_REPORT_KEYS`) and writes
    it to ``out`` when given. Arguments as
    :func:`~gandistill.evaluation.report.evaluate_distilled`."""
    wall = time.perf_counter()
    if profile not in GENERATOR_PROFILES:
        raise ConfigError(f"unknown profile '{profile}' (known: {', '.join(GENERATOR_PROFILES)})")
    inception_weights = check_extractor(extractor, inception_weights)
    ckpt = (
        generator
        if isinstance(generator, GeneratorCheckpoint)
        else load_generator_checkpoint(generator)
    )
    cfg = cfg or ckpt.config
    device = resolve_device(cfg.device)
    train, test, info = data if data is not None else load_dataset(cfg.data)
    require_same_shape(ckpt.info, info, "the generator")
    n, epochs = GENERATOR_PROFILES[profile]
    ckpt.generator.to(device)
    fake01, fake_labels = sample_images(ckpt.generator, info.num_classes, 2 * n, cfg.seed)
    first = torch.cat([torch.arange(c * 2 * n, c * 2 * n + n) for c in range(info.num_classes)])
    second = torch.cat(
        [torch.arange(c * 2 * n + n, (c + 1) * 2 * n) for c in range(info.num_classes)]
    )
    clf = get_classifier(
        cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, (train, test, info), device, progress
    )
    gen = step_generator(cfg.seed, -31)
    real01, _ = train.sample_balanced(min(len(train), n * info.num_classes), gen)

    def fid(images01: Tensor) -> dict:
        return fidelity_metrics(
            to_uint8(images01),
            test.images,
            clf=clf,
            extractor=extractor,
            inception_weights=inception_weights,
            kid_subset_size=kid_subset_size,
            device=str(device),
        )

    fidelity = {"generated": fid(fake01[first]), "real_train": fid(real01)}
    fidelity["extractor"] = fidelity["generated"].pop("extractor")
    fidelity["real_train"].pop("extractor", None)
    predicted = clf.predict(fake01[first].to(device))
    consistency = float((predicted == fake_labels[first]).float().mean())
    test01 = test.images.float() / 255.0
    c2st = real_vs_generated_accuracy(
        real01, fake01[first], test01, fake01[second][: len(test01)], info, epochs, cfg.seed, device
    )
    report = {
        "report_version": REPORT_VERSION,
        "source": {
            "path": str(ckpt.path),
            "sha256": ckpt.sha256,
            "kind": "generator",
            "dataset": info.name,
            "iteration": ckpt.iteration,
        },
        "profile": profile,
        "samples_per_class": n,
        "fidelity": fidelity,
        "class_consistency": consistency,
        "real_vs_generated": {"accuracy": c2st, "epochs": epochs},
        "wall_seconds": time.perf_counter() - wall,
        "versions": library_versions(),
    }
    if out is not None:
        grid = torch.cat([fake01[c * 2 * n : c * 2 * n + 8] for c in range(info.num_classes)])
        write_files(
            Path(out),
            report,
            generator_markdown(report),
            grid,
            8,
            fidelity_scalars(fidelity)
            | {"class_consistency": consistency, "real_vs_generated_accuracy": c2st},
            ckpt.iteration,
        )
    return report


def generator_markdown(report: dict) -> list[str]:
    """``report.md`` of a generator report, as lines."""
    fid = report["fidelity"]
    rows = [
        f"| {label} | " + " | ".join(f"{fid[key][m]:.3g}" for m in ("fid", "kid_mean", "is_mean"))
        for key, label in (("generated", "generated samples"), ("real_train", "real (floor)"))
    ]
    return [
        f"# Generator report ({report['profile']} profile)",
        "",
        f"Source: `{report['source']['path']}` (iteration {report['source']['iteration']}, "
        f"dataset {report['source']['dataset']}); {report['samples_per_class']} samples per class.",
        "",
        "| set (against the test split) | FID | KID | IS |",
        "|---|---|---|---|",
        *[r + " |" for r in rows],
        "",
        f"Fidelity extractor: `{fid['extractor']}`.",
        f"Class consistency: {100 * report['class_consistency']:.1f}%. A fresh network tells "
        f"held-out real images from new samples with "
        f"{100 * report['real_vs_generated']['accuracy']:.1f}% accuracy (50% = indistinguishable).",
        "",
        "![samples](grid.png)",
        "",
    ]
