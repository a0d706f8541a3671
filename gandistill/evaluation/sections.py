"""Sections of a distilled set's report that need no network trained for them.

:func:`~gandistill.evaluation.report.evaluate_distilled` trains the networks (accuracy, the
full-data reference) and computes the fidelity; these functions turn their results and the set
into the other sections: ``source``, ``compression``, ``training_time``, the seed metrics of the
literature (``gradient_similarity``, ``distribution``, ``structure``, ``privacy``) and
``distillation``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from gandistill.classifier import RealClassifier
from gandistill.config import EvalConfig
from gandistill.data import DatasetInfo, ImageTensors, Splits
from gandistill.evaluation import metrics, nearest_real
from gandistill.evaluation.options import Profile
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


def splits_section(data: Splits) -> dict:
    """The ``splits`` section: each split's size and origin, and which split judged choices."""
    return {
        **data.describe(),
        "choices_read": data.val_name,
        "scores_read": "test",
    }


# DD-Ranking's label-robust score (Li et al. 2025, "DD-Ranking: Rethinking the Evaluation of
# Dataset Distillation", arXiv:2505.13300) weighs IOR against HLR with w = 0.5 on its leaderboard
LRS_WEIGHT = 0.5
DD_RANKING = "DD-Ranking (Li et al. 2025, arXiv:2505.13300)"


Z95 = 1.96  # two-sided 95% normal quantile: a difference below Z95 × its resolution is a tie
TIE_MARK = "≈"  # appended to an accuracy tied with the best


def difference_se(a: dict, b: dict) -> float | None:
    """Standard error of ``a.mean - b.mean``: each row's spread over its networks (std/√n) and
    its test split's binomial error, combined; None when a row records neither."""
    var = 0.0
    for stats in (a, b):
        n = len(stats.get("accuracies", ())) or 1
        var += stats.get("std", 0.0) ** 2 / n + stats.get("binomial_se", 0.0) ** 2
    return math.sqrt(var) if var > 0 else None


def fairness_section(accuracy: dict[str, dict]) -> dict:
    """DD-Ranking's metrics per architecture (accuracies as fractions).

    ``ior_hard`` (improvement over random) = accuracy of the set minus that of the random real
    subset of the same IPC, both with hard labels under the same protocol; ``ior_soft`` the same
    with both trained on the teacher's soft labels (when evaluated). ``hlr`` (hard-label
    recovery) = full-data hard-label accuracy minus the set's, where the full-data reference was
    trained (the first architecture); ``lrs`` = 100 · (e^α − e^−1) / (e − e^−1) with
    α = w · IOR − (1 − w) · HLR, IOR of the set's own label type (soft when evaluated), w = 0.5.
    Each difference comes with its standard error (``*_se``) from both rows' uncertainties.
    """
    out: dict = {"definitions": DD_RANKING, "lrs_weight": LRS_WEIGHT}
    for arch, rows in accuracy.items():
        m: dict[str, float | str | None] = {}
        pairs = {"ior_hard": ("distilled", "random_real"), "hlr": ("full_data", "distilled")}
        pairs["ior_soft"] = ("distilled_soft", "random_real_soft")
        if not rows.get("full_data", {}).get("converged", True):
            # a reference cut short is no reference: no ratio is taken against it
            del pairs["hlr"]
            m["hlr_omitted"] = "the full-data reference did not converge"
        for key, (a, b) in pairs.items():
            if a in rows and b in rows:
                m[key] = rows[a]["mean"] - rows[b]["mean"]
                m[f"{key}_se"] = difference_se(rows[a], rows[b])
        if "hlr" in m:
            ior = m.get("ior_soft", m["ior_hard"])
            alpha = LRS_WEIGHT * ior - (1 - LRS_WEIGHT) * m["hlr"]
            m["lrs"] = 100 * (math.exp(alpha) - math.exp(-1)) / (math.e - math.exp(-1))
        out[arch] = m
    return out


MATCHED_ARCH = "convnet"  # the network every matching objective runs on (distill.net_*)
CROSS_ARCH_ROWS = ("distilled", "distilled_soft", "random_real", "random_real_soft")


def mean_over_networks(parts: list[tuple[list[float], float]]) -> dict:
    """The mean accuracy over several architectures, each given as (its networks' accuracies,
    its test-split binomial error), and the mean's two uncertainties.

    ``network_se`` combines the architectures' network spreads as independent (sample
    variance / n each, summed, over the count²); None when an architecture has one network,
    which has no spread to measure. ``binomial_se`` is the mean of the binomial errors: the
    bound for fully correlated errors, as errors on one test split may be.
    """
    k = len(parts)
    spread = math.sqrt(sum(statistics.variance(a) / len(a) for a, _ in parts if len(a) > 1)) / k
    return {
        "mean": sum(statistics.fmean(a) for a, _ in parts) / k,
        "network_se": spread if all(len(a) > 1 for a, _ in parts) else None,
        "binomial_se": sum(b for _, b in parts) / k,
    }


CHANCE_MARGIN = 0.02  # a network within this of 1/K test accuracy learnt nothing


def at_chance(accuracies: list[float], num_classes: int) -> int:
    """How many of the networks ended at chance: test accuracy within :data:`CHANCE_MARGIN` of
    1/K. Networks without normalisation (AlexNet, as the DC code defines it) can have a loss
    spike under the protocol's SGD rate kill their ReLUs one layer after another until they
    predict one class (docs/benchmarks.md, "Why an AlexNet stays at chance"); such a network
    counts in the mean, and the report says so rather than hide it."""
    return sum(a <= 1.0 / num_classes + CHANCE_MARGIN for a in accuracies)


def cross_architecture_section(
    accuracy: dict[str, dict], protocols: dict[str, dict], num_classes: int
) -> dict:
    """Accuracy on the architectures distillation never saw: every evaluated architecture but
    the matching ConvNet, and the mean over them of each row (set, random real subset, with
    soft labels when evaluated); empty without an unseen architecture.

    The mean and its uncertainties are :func:`mean_over_networks`'. ``protocols`` states how
    each architecture was trained; ``at_chance`` counts, per architecture and row, the networks
    that ended at chance (:func:`at_chance`; rows without any are left out).
    """
    unseen = [a for a in accuracy if a != MATCHED_ARCH]
    if not unseen:
        return {}
    means = {}
    for row in CROSS_ARCH_ROWS:
        stats = [accuracy[a][row] for a in unseen if row in accuracy[a]]
        if len(stats) == len(unseen):
            means[row] = mean_over_networks(
                [(st["accuracies"], st.get("binomial_se", 0.0)) for st in stats]
            )
    failed: dict[str, dict[str, int]] = {}
    for arch, rows in accuracy.items():
        for row in CROSS_ARCH_ROWS:
            if row in rows and (n := at_chance(rows[row]["accuracies"], num_classes)):
                failed.setdefault(arch, {})[row] = n
    return {
        "matched": MATCHED_ARCH if MATCHED_ARCH in accuracy else None,
        "unseen": unseen,
        "protocols": {a: protocols[a] for a in accuracy},
        "unseen_mean": means,
        "at_chance": failed,
    }


def protocol_manifest(
    ec: EvalConfig,
    archs: list[str],
    profile: Profile,
    seed: int,
    soft_labels: bool,
    data: Splits,
) -> dict:
    """Everything that decides an accuracy, saved with every result: results made under
    different manifests do not compare."""
    return {
        **asdict(ec),
        "archs": list(archs),
        "full_data_epochs": profile.full_epochs,
        "full_data_stopping": (
            f"best validation accuracy; rate x0.1 after {profile.full_patience} epochs without "
            f"improvement, stop after {2 * profile.full_patience}, at most "
            f"{profile.full_epochs} epochs"
        ),
        "seed": seed,
        "network_seeds": [seed + 1000 * i for i in range(ec.n_models)],
        "augment_draws": "none" if ec.augment == "none" else "one per image",
        "label_types": ["hard", "soft"] if soft_labels else ["hard"],
        "soft_label_loss": (
            "kd_alpha * T^2 * KL(teacher_T || student_T) + (1 - kd_alpha) * CE, "
            "T = kd_temperature, teacher = the cached real-data classifier"
            if soft_labels
            else None
        ),
        "test_images": len(data.test),
        "choices_split": data.val_name,
    }


SET_PARTS = ("images_uint8", "labels", "latents", "feature_offsets", "residuals", "teacher_logits")
# what a latent set stores instead of pixels
CODE_PARTS = ("latents", "feature_offsets", "residuals")


def storage_bytes(ds: DistilledSet) -> dict[str, int]:
    """Bytes of each part the set holds (``SET_PARTS`` it has), as stored."""
    parts = {name: getattr(ds, name) for name in SET_PARTS}
    return {name: metrics.tensor_bytes(t) for name, t in parts.items() if t is not None}


def _generator_bytes(ds: DistilledSet) -> int | None:
    """Bytes of the weights a latent set is decoded through (the EMA generator's), when its
    generator file is at hand; None otherwise."""
    if ds.latents is None or not ds.generator_path or not Path(ds.generator_path).is_file():
        return None
    try:
        payload = torch.load(ds.generator_path, map_location="cpu", weights_only=True)
        weights = payload.get("ema_state_dict") or payload["state_dict"]
    except Exception:  # an unreadable file counts as absent here; decoding reports it
        return None
    return sum(metrics.tensor_bytes(t) for t in weights.values() if isinstance(t, torch.Tensor))


def full_bytes(train: ImageTensors) -> int:
    """Bytes of the full training data: uint8 images and int64 labels."""
    return metrics.tensor_bytes(train.images) + metrics.tensor_bytes(train.labels)


def image_cost(ds: DistilledSet) -> int:
    """Bytes of one of the set's images stored as uint8 pixels with its int64 label."""
    return ds.images_uint8[0].numel() + 8


def needed_bytes(ds: DistilledSet) -> tuple[int, int | None, int | None]:
    """``(as images, as codes, generator)``: bytes of the set with its labels and soft labels
    as uint8 images; as codes (latents, feature offsets, residuals; None unless latent); and
    the generator's weights the codes are decoded through (None unless at hand)."""
    stored = storage_bytes(ds)
    extras = stored["labels"] + stored.get("teacher_logits", 0)
    as_images = stored["images_uint8"] + extras
    codes = [stored[k] for k in CODE_PARTS if k in stored]
    as_codes = sum(codes) + extras if ds.latents is not None else None
    return as_images, as_codes, _generator_bytes(ds)


def compression_section(train: ImageTensors, ds: DistilledSet) -> dict:
    """The ``compression`` section: the ratios, with the bytes they come from.

    A set is counted with everything it needs to be used: its labels and soft labels, and, for a
    latent set stored as codes, its latents, feature offsets and pixel residuals; the generator
    those codes are decoded through is shown both left out (it is shared by every set drawn from
    it) and counted in.
    """
    as_images, as_codes, gen = needed_bytes(ds)
    full = full_bytes(train)
    comp = metrics.compression(len(train), len(ds.labels), full, as_images, as_codes, gen)
    comp.update(
        full_images=len(train),
        distilled_images=len(ds.labels),
        full_bytes=full,
        image_bytes=as_images,
        code_bytes=as_codes,
        generator_bytes=gen,
        bytes_by_part=storage_bytes(ds),
    )
    return comp


def training_time_section(distilled: dict, full_data: dict, epochs: int) -> dict:
    """The ``training_time`` section.

    Args:
        distilled: accuracy stats (with ``train_seconds``) of the distilled set's networks.
        full_data: the same of the full-data networks, with the ``epochs`` each ran.
        epochs: the protocol's epochs.
    """
    # the full-data run stops early; scale its per-epoch time to the protocol's epochs
    full_epochs = sum(full_data["epochs"]) / len(full_data["epochs"])
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
    data: Splits,
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
        data: the dataset's splits.
        clf: the real-data classifier (its features serve the sliced Wasserstein distance).
        logits: test logits of a network trained on the full data and of one trained on the
            distilled set (their softmax divergences).
        grad_networks: random networks the gradient similarity is averaged over.
        seed: the run's seed.
        device: where the networks run.
    """
    train, test, info = data.train, data.test, data.info
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
    (``[iteration, seconds, accuracy]``; empty for coresets and runs without checks) with the
    split they read."""
    history = ds.history or []
    last = history[-1] if history else {}
    checked = [h for h in history if "accuracy" in h]
    # sets made before quick checks recorded their split read the test split
    split = checked[-1].get("accuracy_split", "test") if checked else None
    return {
        "stop_reason": ds.stop_reason,
        "quick_checks_read": split,
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
