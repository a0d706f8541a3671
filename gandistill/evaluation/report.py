"""The evaluation report of a distilled set: ``gandistill evaluate`` and :func:`evaluate_distilled`.

One call trains fresh networks on the distilled set, on a random real subset of the same size
and on the full training data (the two ends of the scale), under one protocol, and adds the
fidelity scores (torch-fidelity with the offline classifier extractor, each beside the real-vs-
real floor), compression, the training-time reduction and the seed metrics of the literature
(gradient similarity, distribution distances, structure, privacy). It writes ``report.json``
(keys in :data:`REPORT_KEYS`), ``report.md`` with the image grid and a plot, and TensorBoard
scalars under ``eval/*``.

Profiles: ``quick`` (one network per set, 300 epochs without augmentation, a short full-data
run: a few minutes on a 2-core CPU at IPC 10) and ``full`` (``cfg.eval``: the DC protocol, three
networks, 1000 epochs with augmentation). Full-data results are cached per dataset, profile and
seed under ``<cache_dir>/baselines`` since they never change.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO

import torch
from ignite.handlers.tensorboard_logger import TensorboardLogger
from torchvision.utils import save_image

from gandistill.classifier import get_classifier
from gandistill.config import Config, EvalConfig, to_dict
from gandistill.data import DatasetInfo, ImageTensors, load_dataset, require_same_shape
from gandistill.errors import ConfigError
from gandistill.evaluation import metrics
from gandistill.evaluation.fidelity import check_extractor, fidelity_metrics
from gandistill.files import DistilledSet, atomic_write, sha256_file, to_uint8
from gandistill.fit import EVAL_ARCHS, EvalResult, test_accuracy, test_logits, train_network
from gandistill.models import ConvNet
from gandistill.runtime import library_versions, resolve_device, step_generator

REPORT_VERSION = 1
REPORT_JSON, REPORT_MD = "report.json", "report.md"
REPORT_KEYS = (
    "report_version",
    "source",
    "profile",
    "protocol",
    "accuracy",
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


@dataclass(frozen=True)
class Profile:
    """How much evaluation to run, on top of the config's ``eval`` section (the protocol)."""

    max_epochs: int | None  # cap on the protocol's epochs (None: as configured)
    augment: str | None  # None: as configured
    n_models: int | None  # None: as configured
    full_epochs: int  # cap on the full-data run's epochs (the protocol's 1000 would take hours)
    grad_networks: int
    fidelity_real: int  # real training images per class in the fidelity / distribution sets


PROFILES = {
    "quick": Profile(300, "none", 1, 5, 3, 100),
    "full": Profile(None, None, None, 50, 10, 400),
}


def apply_profile(ec: EvalConfig, profile: Profile) -> EvalConfig:
    """The protocol ``ec`` as ``profile`` trims it (fewer epochs, another augmentation, fewer
    networks)."""
    return replace(
        ec,
        epochs=min(ec.epochs, profile.max_epochs or ec.epochs),
        augment=profile.augment or ec.augment,
        n_models=profile.n_models or ec.n_models,
    )


def _stats(result: EvalResult, seconds: list[float]) -> dict:
    return {
        "mean": result.mean,
        "std": result.std,
        "accuracies": result.accuracies,
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
        return _stats(EvalResult(accs), seconds), logits


def _full_data_baseline(
    trainer: _Trainer,
    train: ImageTensors,
    cfg: Config,
    ec: EvalConfig,
    profile_name: str,
    progress: bool,
) -> tuple[dict, torch.Tensor]:
    """Accuracy of the protocol's networks trained on all of ``train`` (cached on disk)."""
    key = json.dumps(
        {"data": to_dict(cfg.data), "eval": asdict(ec), "seed": cfg.seed, "v": REPORT_VERSION},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = Path(cfg.cache_dir) / BASELINE_DIR / f"{cfg.data.name}-{profile_name}-{digest}.pt"
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        return json.loads(cached["stats"]), cached["logits"]
    images = trainer.info.normalize(train.images.float() / 255.0)
    stats, logits = trainer.run(images, train.labels, ec, progress)
    atomic_write(path, lambda fh: torch.save({"stats": json.dumps(stats), "logits": logits}, fh))
    return stats, logits


def _random_subset(train: ImageTensors, ipc: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = step_generator(seed, -20)
    images = torch.cat([train.sample_class(c, ipc, gen) for c in range(train.num_classes)])
    return images, torch.arange(train.num_classes).repeat_interleave(ipc)


def _real_per_class(split: ImageTensors, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = step_generator(seed, -21)
    counts = [min(n, c) for c in split.class_counts()]
    images = torch.cat([split.sample_class(c, k, gen) for c, k in enumerate(counts)])
    return images, torch.repeat_interleave(torch.arange(split.num_classes), torch.tensor(counts))


def evaluate_distilled(
    distilled: str | Path | DistilledSet,
    cfg: Config | None = None,
    out: str | Path | None = None,
    profile: str = "quick",
    extractor: str = "classifier",
    inception_weights: str | None = None,
    kid_subset_size: int | None = None,
    data: tuple[ImageTensors, ImageTensors, DatasetInfo] | None = None,
    progress: bool = True,
    archs: Sequence[str] | None = None,
    soft_labels: bool = False,
) -> dict:
    """Evaluate a distilled set; returns the report (and writes it to ``out`` when given).

    Args:
        distilled: the distilled-set file (or a loaded set).
        cfg: the config whose ``data``, ``eval``, ``classifier``, ``seed``, ``device`` and
            ``cache_dir`` apply (default: the one saved with the set).
        out: folder for ``report.json``, ``report.md``, images and TensorBoard events.
        profile: ``quick`` or ``full`` (see :data:`PROFILES`).
        extractor: torch-fidelity feature extractor: ``classifier`` (offline) or
            ``inception-v3-compat`` (needs ``inception_weights`` or weights in the torch cache).
        inception_weights: local Inception weights file.
        kid_subset_size: KID subset size (default: 1000 clamped to the smaller set; an explicit
            size larger than a set is an error).
        data: pre-loaded ``(train, test, info)``.
        progress: progress bars on the long trainings.
        archs: evaluation networks (default: ``cfg.eval.arch``); the first one also gets the
            full-data reference, every one the distilled set and the random real subset (the
            cross-architecture table).
        soft_labels: also train the distilled set's networks with the real-data classifier as
            teacher (:func:`gandistill.fit.distillation_loss`) and report the gain.
    """
    wall = time.perf_counter()
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}' (known: {', '.join(PROFILES)})")
    inception_weights = check_extractor(extractor, inception_weights)
    archs = list(archs or [])
    unknown = [a for a in archs if a not in EVAL_ARCHS]
    if unknown:
        raise ConfigError(
            f"unknown architecture(s) {', '.join(unknown)} (known: {', '.join(EVAL_ARCHS)})"
        )
    source_path = None
    if not isinstance(distilled, DistilledSet):
        source_path = Path(distilled)
        distilled = DistilledSet.load(source_path)
    ds = distilled
    if kid_subset_size is not None and not 2 <= kid_subset_size <= len(ds.labels):
        raise ConfigError(
            f"KID subset size {kid_subset_size} must lie in 2..{len(ds.labels)} "
            "(the distilled set's size)"
        )
    cfg = cfg or ds.config
    device = resolve_device(cfg.device)
    train, test, info = data if data is not None else load_dataset(cfg.data)
    require_same_shape(ds.info, info, "the distilled set")
    ec = apply_profile(cfg.eval, PROFILES[profile])
    prof = PROFILES[profile]
    trainer = _Trainer(test, info, cfg.seed, device)
    ipc = ds.ipc

    clf = get_classifier(
        cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, (train, test, info), device, progress
    )

    # --- downstream accuracy --------------------------------------------------------------
    syn_images01 = ds.images_uint8.float() / 255.0  # the pixels as shipped
    rand01, rand_labels = _random_subset(train, ipc, cfg.seed)
    accuracy: dict[str, dict] = {}
    for arch in archs or [ec.arch]:
        arch_ec = replace(ec, arch=arch)
        rows = accuracy[arch] = {}
        rows["distilled"], logits = trainer.run(ds.images_float, ds.labels, arch_ec, progress)
        if soft_labels:
            rows["distilled_soft"], _ = trainer.run(
                ds.images_float, ds.labels, arch_ec, progress, teacher=clf.net
            )
            rows["soft_label_gain"] = rows["distilled_soft"]["mean"] - rows["distilled"]["mean"]
        rows["random_real"], _ = trainer.run(info.normalize(rand01), rand_labels, arch_ec, progress)
        if len(accuracy) == 1:  # the first architecture
            main_arch, acc_syn, logits_syn = arch, rows["distilled"], logits
            full_ec = replace(arch_ec, epochs=min(ec.epochs, prof.full_epochs))
            acc_full, logits_full = _full_data_baseline(
                trainer, train, cfg, full_ec, profile, progress
            )
            rows["full_data"] = acc_full

    # --- fidelity (torch-fidelity), each beside the real-vs-real floor ----------------------
    test_u8 = test.images
    real01, real_labels = _real_per_class(train, prof.fidelity_real, cfg.seed)

    def fid(images_u8: torch.Tensor) -> dict:
        return fidelity_metrics(
            images_u8,
            test_u8,
            clf=clf,
            extractor=extractor,
            inception_weights=inception_weights,
            kid_subset_size=kid_subset_size,
            device=str(device),
        )

    fidelity = {
        "distilled": fid(ds.images_uint8),
        "random_real": fid(to_uint8(rand01)),
        "real_train": fid(to_uint8(real01)),
    }
    fidelity["extractor"] = fidelity["distilled"].pop("extractor")
    for key in ("random_real", "real_train"):
        fidelity[key].pop("extractor", None)

    # --- compression and time ---------------------------------------------------------------
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
    # the full-data run uses fewer epochs; scale its per-epoch time to the protocol's epochs
    full_per_epoch = acc_full["train_seconds"] / full_ec.epochs
    training_time = {
        "distilled_seconds": acc_syn["train_seconds"],
        "full_data_seconds": acc_full["train_seconds"],
        "full_data_epochs": full_ec.epochs,
        "full_data_seconds_at_protocol_epochs": full_per_epoch * ec.epochs,
        "reduction": full_per_epoch * ec.epochs / max(acc_syn["train_seconds"], 1e-9),
    }

    # --- gradients, distributions, structure, privacy ------------------------------------
    gen = step_generator(cfg.seed, -22)

    def make_net(seed: int) -> ConvNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return ConvNet(info.num_classes, info.channels, info.image_size)

    grads = metrics.gradient_similarity(
        make_net,
        ds.images_float.to(device),
        ds.labels.to(device),
        info.normalize(real01).to(device),
        real_labels.to(device),
        prof.grad_networks,
        gen,
    )
    with torch.no_grad():
        clf.net.eval()
        f_syn = clf.features(syn_images01.to(device)).float().cpu()
        f_real = clf.features(real01.to(device)).float().cpu()
    distribution = {
        "pixel_mmd": float(metrics.pixel_mmd(syn_images01, real01)),
        "feature_swd": float(metrics.sliced_wasserstein(f_syn, f_real, generator=gen)),
        "class_js": float(metrics.class_proportion_js(ds.labels, train.labels, info.num_classes)),
        "softmax_vs_full": metrics.softmax_divergences(logits_full, logits_syn),
    }
    ssim = metrics.nearest_real_ssim(syn_images01, ds.labels, real01, real_labels)
    structure = {"nearest_real_ssim_mean": float(ssim.mean()), "per_image": ssim.tolist()}
    privacy = metrics.privacy_report(
        syn_images01, train.images.float() / 255.0, test.images.float() / 255.0
    )

    report = {
        "report_version": REPORT_VERSION,
        "source": {
            "path": str(source_path) if source_path else None,
            "sha256": sha256_file(source_path) if source_path else None,
            "space": ds.space,
            "ipc": ipc,
            "classes": info.num_classes,
            "dataset": info.name,
            "generator_sha256": ds.generator_sha256,
        },
        "profile": profile,
        "protocol": {
            **asdict(replace(ec, arch=main_arch)),
            "archs": list(accuracy),
            "full_data_epochs": full_ec.epochs,
            "seed": cfg.seed,
        },
        "accuracy": accuracy,
        "fidelity": fidelity,
        "compression": comp,
        "training_time": training_time,
        "gradient_similarity": grads,
        "distribution": distribution,
        "structure": structure,
        "privacy": privacy,
        "distillation": distillation_summary(ds),
        "wall_seconds": time.perf_counter() - wall,
        "versions": library_versions(),
    }
    if out is not None:
        write_report(report, Path(out), syn_images01, info)
    return report


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


# --- output ----------------------------------------------------------------------------------


ROW_LABELS = {
    "distilled": "distilled (IPC {ipc})",
    "distilled_soft": "distilled, soft labels",
    "random_real": "random real subset",
    "full_data": "full training data",
}
FIDELITY_OF_ROW = {
    "distilled": "distilled",
    "random_real": "random_real",
    "full_data": "real_train",
}


def _stat_rows(rows: dict) -> list[tuple[str, dict]]:
    """The accuracy rows of one architecture (skipping derived numbers such as the gain)."""
    return [(name, stats) for name, stats in rows.items() if isinstance(stats, dict)]


def _pct(stats: dict) -> str:
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}%"


def headline(report: dict) -> str:
    """The headline table as markdown: accuracy, fidelity, compression, time."""
    fid = report["fidelity"]
    lines = [
        "| set | accuracy | FID | KID | IS |",
        "|---|---|---|---|---|",
    ]
    for arch, rows in report["accuracy"].items():
        for name, stats in _stat_rows(rows):
            label = ROW_LABELS[name].format(ipc=report["source"]["ipc"])
            f = fid.get(FIDELITY_OF_ROW.get(name, ""), {})
            cells = [f"{f[k]:.3g}" if k in f else "–" for k in ("fid", "kid_mean", "is_mean")]
            lines.append(f"| {label} ({arch}) | {_pct(stats)} | " + " | ".join(cells) + " |")
    comp, tt = report["compression"], report["training_time"]
    lines += [
        "",
        f"Fidelity extractor: `{fid['extractor']}`; the full-data row's fidelity is a real "
        "training subset against the test split (the floor).",
        f"Compression: {comp['image_ratio']:.0f}× fewer images, {comp['image_bytes_ratio']:.0f}× "
        "fewer image bytes"
        + (
            f", {comp['latent_bytes_ratio']:.0f}× fewer bytes as latents (plus the generator)"
            if "latent_bytes_ratio" in comp
            else ""
        )
        + ".",
        f"Training time: {tt['distilled_seconds']:.1f} s on the distilled set against "
        f"{tt['full_data_seconds_at_protocol_epochs']:.0f} s on the full data at the same epochs "
        f"({tt['reduction']:.0f}× less; measured over {tt['full_data_epochs']} full-data epochs).",
    ]
    return "\n".join(lines)


def _figure(width: float = 5.0, height: float = 3.2, ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height))
    return plt, fig, axes


def _save(plt, fig, fh: BinaryIO) -> None:
    fig.tight_layout()
    fig.savefig(fh, dpi=110, format="png")
    plt.close(fig)


def _plot(report: dict, fh: BinaryIO) -> None:
    """Accuracy of every row (mean ± std), one bar group per architecture."""
    plt, fig, ax = _figure()
    for arch, rows in report["accuracy"].items():
        stat_rows = _stat_rows(rows)
        ax.bar(
            [f"{n}\n({arch})" for n, _ in stat_rows],
            [100 * st["mean"] for _, st in stat_rows],
            yerr=[100 * st["std"] for _, st in stat_rows],
            capsize=4,
        )
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"IPC {report['source']['ipc']}, profile {report['profile']}")
    _save(plt, fig, fh)


def _plot_fidelity(report: dict, fh: BinaryIO) -> None:
    """FID and KID of the distilled set, the random real subset and the real-vs-real floor."""
    fid = report["fidelity"]
    names = [n for n in ("distilled", "random_real", "real_train") if n in fid]
    plt, fig, axes = _figure(7.0, 3.0, 2)
    for ax, key, label in zip(axes, ("fid", "kid_mean"), ("FID", "KID"), strict=True):
        ax.bar(names, [fid[n].get(key, float("nan")) for n in names], color="tab:orange")
        ax.set_ylabel(f"{label} against the test split")
    fig.suptitle(f"fidelity, extractor {fid['extractor'][:40]}", fontsize=9)
    _save(plt, fig, fh)


def _plot_distillation(report: dict, fh: BinaryIO) -> None:
    """Matching loss against iteration and quick-check accuracy against distillation time."""
    hist = report["distillation"]
    plt, fig, (loss_ax, acc_ax) = _figure(8.0, 3.0, 2)
    if hist["match_loss"]:
        its, loss = zip(*hist["match_loss"], strict=True)
        loss_ax.plot(its, loss, lw=0.8)
    loss_ax.set_xlabel("iteration")
    loss_ax.set_ylabel("matching loss per class")
    if hist["quick_checks"]:
        _, secs, acc = zip(*hist["quick_checks"], strict=True)
        acc_ax.plot([s / 60 for s in secs], [100 * a for a in acc], marker="o")
    random_real = report["accuracy"].get(report["protocol"]["arch"], {}).get("random_real")
    if random_real:
        acc_ax.axhline(100 * random_real["mean"], ls="--", color="gray", label="random real")
        acc_ax.legend(fontsize=8)
    acc_ax.set_xlabel("distillation time (min)")
    acc_ax.set_ylabel("quick-check accuracy (%)")
    _save(plt, fig, fh)


def write_files(
    out: Path,
    report: dict,
    markdown: list[str],
    images01: torch.Tensor,
    nrow: int,
    scalars: dict[str, float],
    step: int,
    extra_png: dict[str, Callable[[BinaryIO], object]] | None = None,
) -> None:
    """Write a report folder: ``grid.png`` (+ ``extra_png``), ``report.md``, ``report.json``
    (each atomically) and TensorBoard scalars and the image grid under ``tb``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "grid.png", lambda fh: save_image(images01, fh, nrow=nrow, format="png"))
    for name, draw in (extra_png or {}).items():
        atomic_write(out / name, draw)
    atomic_write(out / REPORT_MD, lambda fh: fh.write("\n".join(markdown).encode()))
    atomic_write(out / REPORT_JSON, lambda fh: fh.write(json.dumps(report, indent=1).encode()))
    tb = TensorboardLogger(log_dir=str(out / "tb"))
    for tag, value in scalars.items():
        tb.writer.add_scalar(f"eval/{tag}", value, step)
    tb.writer.add_images("eval/images", images01, step)
    tb.close()


def fidelity_scalars(fidelity: dict) -> dict[str, float]:
    """``{metric}_{set}`` scalars of a report's fidelity section."""
    return {
        f"{key}_{name}": value
        for name, scores in fidelity.items()
        if isinstance(scores, dict)
        for key, value in scores.items()
    }


def write_report(report: dict, out: Path, images01: torch.Tensor, info: DatasetInfo) -> None:
    """``report.json``, ``report.md`` (+ grid and plot PNGs) and TensorBoard ``eval/*``."""
    ipc = report["source"]["ipc"]
    has_history = bool(report["distillation"]["match_loss"])
    md = [
        f"# Evaluation report ({report['profile']} profile)",
        "",
        f"Source: `{report['source']['path']}` ({report['source']['space']} space, IPC {ipc}, "
        f"dataset {report['source']['dataset']}).",
        f"Protocol: {report['protocol']['arch']}, {report['protocol']['epochs']} epochs, "
        f"augmentation {report['protocol']['augment']}, {report['protocol']['n_models']} "
        "network(s) per set.",
        "",
        headline(report),
        "",
        "![distilled images](grid.png) ![accuracy](accuracy.png)",
        "",
        "![fidelity](fidelity.png)",
        *(["", "![distillation](distillation.png)"] if has_history else []),
        "",
        "## Seed metrics",
        "",
        "```json",
        json.dumps(
            {
                k: report[k]
                for k in ("gradient_similarity", "distribution", "privacy", "compression")
            },
            indent=1,
        ),
        "```",
        f"Mean SSIM to the nearest real image of the class: "
        f"{report['structure']['nearest_real_ssim_mean']:.3f}.",
        "",
    ]
    scalars = {
        f"accuracy_{arch}_{name}": stats["mean"]
        for arch, rows in report["accuracy"].items()
        for name, stats in _stat_rows(rows)
    }
    scalars |= fidelity_scalars(report["fidelity"])
    scalars["training_time_reduction"] = report["training_time"]["reduction"]
    plots = {
        "accuracy.png": lambda fh: _plot(report, fh),
        "fidelity.png": lambda fh: _plot_fidelity(report, fh),
    }
    if has_history:
        plots["distillation.png"] = lambda fh: _plot_distillation(report, fh)
    write_files(out, report, md, images01, ipc, scalars, ipc, plots)
