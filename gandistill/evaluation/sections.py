"""Sections of a distilled set's report that need no network trained for them.

:func:`~gandistill.evaluation.report.evaluate_distilled` trains the networks (accuracy, the
full-data reference) and computes the fidelity; these functions turn their results and the set
into the other sections: ``source``, ``compression``, ``training_time``, the seed metrics of the
literature (``gradient_similarity``, ``distribution``, ``structure``, ``privacy``) and
``distillation``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gandistill.classifier import RealClassifier
from gandistill.data import DatasetInfo, ImageTensors
from gandistill.evaluation import metrics, nearest_real
from gandistill.files import DistilledSet, sha256_file
from gandistill.models import ConvNet
from gandistill.runtime import step_generator


def source_section(source_path: Path | None, ds: DistilledSet, info: DatasetInfo) -> dict:
    """The ``source`` section: which set was evaluated (``source_path``: None for a set given
    loaded), on which dataset."""
    return {
        "path": str(source_path) if source_path else None,
        "sha256": sha256_file(source_path) if source_path else None,
        "space": ds.space,
        "ipc": ds.ipc,
        "classes": info.num_classes,
        "dataset": info.name,
        "generator_sha256": ds.generator_sha256,
    }


def compression_section(train: ImageTensors, ds: DistilledSet) -> dict:
    """The ``compression`` section: the ratios, with the counts and bytes they come from."""
    comp = metrics.compression(
        len(train),
        len(ds.labels),
        metrics.tensor_bytes(train.images),
        metrics.tensor_bytes(ds.images_uint8),
        metrics.tensor_bytes(ds.latents) if ds.latents is not None else None,
    )
    comp.update(
        full_images=len(train),
        distilled_images=len(ds.labels),
        full_bytes=metrics.tensor_bytes(train.images),
        image_bytes=metrics.tensor_bytes(ds.images_uint8),
    )
    return comp


def training_time_section(distilled: dict, full_data: dict, full_epochs: int, epochs: int) -> dict:
    """The ``training_time`` section.

    Args:
        distilled: accuracy stats (with ``train_seconds``) of the distilled set's networks.
        full_data: the same of the full-data networks, trained for ``full_epochs``.
        epochs: the protocol's epochs.
    """
    # the full-data run uses fewer epochs; scale its per-epoch time to the protocol's epochs
    full_per_epoch = full_data["train_seconds"] / full_epochs
    return {
        "distilled_seconds": distilled["train_seconds"],
        "full_data_seconds": full_data["train_seconds"],
        "full_data_epochs": full_epochs,
        "full_data_seconds_at_protocol_epochs": full_per_epoch * epochs,
        "reduction": full_per_epoch * epochs / max(distilled["train_seconds"], 1e-9),
    }


def seed_metrics_sections(
    ds: DistilledSet,
    real: tuple[torch.Tensor, torch.Tensor],
    data: tuple[ImageTensors, ImageTensors, DatasetInfo],
    clf: RealClassifier,
    logits: tuple[torch.Tensor, torch.Tensor],
    grad_networks: int,
    seed: int,
    device: torch.device,
) -> dict[str, dict]:
    """The ``gradient_similarity``, ``distribution``, ``structure`` and ``privacy`` sections.

    Args:
        ds: the distilled set.
        real: a real per-class training sample (images in [0, 1], labels) to compare it with.
        data: ``(train, test, info)``.
        clf: the real-data classifier (its features serve the sliced Wasserstein distance).
        logits: test logits of a network trained on the full data and of one trained on the
            distilled set (their softmax divergences).
        grad_networks: random networks the gradient similarity is averaged over.
        seed: the run's seed.
        device: where the networks run.
    """
    train, test, info = data
    real01, real_labels = real
    syn01 = ds.images_uint8.float() / 255.0  # the pixels as shipped
    # one stream, drawn in this order: the random networks' seeds, then the SWD directions
    gen = step_generator(seed, -22)

    def make_net(net_seed: int) -> ConvNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(net_seed)
            return ConvNet(info.num_classes, info.channels, info.image_size)

    grads = metrics.gradient_similarity(
        make_net,
        ds.images_float.to(device),
        ds.labels.to(device),
        info.normalize(real01).to(device),
        real_labels.to(device),
        grad_networks,
        gen,
    )
    with torch.no_grad():
        clf.net.eval()
        f_syn = clf.features(syn01.to(device)).float().cpu()
        f_real = clf.features(real01.to(device)).float().cpu()
    distribution = {
        "pixel_mmd": float(metrics.pixel_mmd(syn01, real01)),
        "feature_swd": float(metrics.sliced_wasserstein(f_syn, f_real, generator=gen)),
        "class_js": float(metrics.class_proportion_js(ds.labels, train.labels, info.num_classes)),
        "softmax_vs_full": metrics.softmax_divergences(*logits),
    }
    ssim = nearest_real.nearest_real_ssim(syn01, ds.labels, real01, real_labels)
    return {
        "gradient_similarity": grads,
        "distribution": distribution,
        "structure": {"nearest_real_ssim_mean": float(ssim.mean()), "per_image": ssim.tolist()},
        "privacy": nearest_real.privacy_report(
            syn01, train.images.float() / 255.0, test.images.float() / 255.0
        ),
    }


def distillation_summary(ds: DistilledSet) -> dict:
    """How the set was made: stop reason, iterations, seconds and the quick checks on the way
    (``[iteration, seconds, accuracy]``; empty for coresets and runs without checks)."""
    history = ds.history or []
    last = history[-1] if history else {}
    return {
        "stop_reason": ds.stop_reason,
        "iterations": int(last.get("iteration", 0)),
        "seconds": float(last.get("seconds", 0.0)),
        "quick_checks": [
            [int(h["iteration"]), float(h["seconds"]), float(h["accuracy"])]
            for h in history
            if "accuracy" in h
        ],
        "match_loss": [
            [int(h["iteration"]), float(h["match_loss"])] for h in history if "match_loss" in h
        ],
    }
