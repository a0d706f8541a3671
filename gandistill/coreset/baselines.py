"""Coreset baselines: ``ipc`` real training images per class instead of distilled ones.

The images chosen by a rule of :mod:`gandistill.selection` are written as an ordinary
:class:`~gandistill.files.DistilledSet` (space ``real``), so ``gandistill evaluate`` scores a
coreset exactly as it scores a distilled set.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from gandistill.classifier import RealClassifier, get_classifier
from gandistill.config import Config
from gandistill.data import DatasetInfo, ImageTensors, Splits, load_dataset
from gandistill.errors import ConfigError, DataError
from gandistill.files import DistilledSet
from gandistill.runtime import library_versions, resolve_device
from gandistill.selection import METHODS, select_coreset

SPACE_REAL = "real"  # DistilledSet.space of a coreset: real training images, nothing optimised


def _check_ipc(ipc: int, train: ImageTensors, info: DatasetInfo) -> None:
    if ipc < 1:
        raise ConfigError(f"ipc must be >= 1, got {ipc}")
    for c, count in enumerate(train.class_counts()):
        if ipc > count:
            raise DataError(
                f"ipc {ipc} exceeds the {count} training images of class {c} "
                f"('{info.class_names[c]}')"
            )


def _classifier_if_needed(
    cfg: Config,
    method: str,
    data: Splits,
    device: torch.device,
) -> RealClassifier | None:
    """The real-data classifier, loaded (or trained) only when the method selects with it or the
    set stores teacher logits: ``random`` alone must not pay for training one."""
    if method == "random" and not cfg.distill.teacher_logits:
        return None
    return get_classifier(
        cfg.data,
        cfg.classifier,
        cfg.seed,
        cfg.cache_dir,
        data,
        device,
        progress=cfg.distill.progress,
    )


@torch.no_grad()
def _teacher_logits(clf: RealClassifier, pixels: Tensor, device: torch.device) -> Tensor:
    """The classifier's logits (N, K) on uint8 ``pixels``, in batches of 500, on the CPU."""
    clf.net.eval()
    return torch.cat(
        [clf.logits(b.to(device).float() / 255.0).float().cpu() for b in pixels.split(500)]
    )


def build_baseline(
    cfg: Config,
    method: str,
    ipc: int | None = None,
    out: str | Path | None = None,
    data: Splits | None = None,
) -> DistilledSet:
    """Select ``ipc`` real training images per class with a coreset method.

    Args:
        cfg: the config whose ``data``, ``classifier``, ``seed``, ``device``, ``cache_dir`` and
            ``distill.teacher_logits`` apply.
        method: one of :data:`METHODS`.
        ipc: images per class (default: ``cfg.distill.ipc``).
        out: file to save the set to (atomically), if given.
        data: pre-loaded :class:`~gandistill.data.Splits` (selection reads its training split).

    Returns:
        A set in space ``real``; its history entry holds the selection's wall seconds and the
        chosen indices into the training split (``train_indices``, in the set's order).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown baseline method '{method}' (use {', '.join(METHODS)})")
    ipc = cfg.distill.ipc if ipc is None else ipc
    data = data if data is not None else load_dataset(cfg.data)
    train, info = data.train, data.info
    _check_ipc(ipc, train, info)
    device = resolve_device(cfg.device)
    clf = _classifier_if_needed(cfg, method, data, device)

    start = time.perf_counter()
    indices = select_coreset(method, train, ipc, cfg.seed, clf, device)
    seconds = time.perf_counter() - start

    pixels = train.images[indices].clone()
    teacher = _teacher_logits(clf, pixels, device) if cfg.distill.teacher_logits else None
    ds = DistilledSet(
        labels=train.labels[indices].clone(),
        images_float=info.normalize(pixels.float() / 255.0),
        images_uint8=pixels,
        info=info,
        config=replace(cfg, distill=replace(cfg.distill, ipc=ipc)),
        space=SPACE_REAL,
        teacher_logits=teacher,
        stop_reason=f"baseline:{method}",
        history=[
            {
                "iteration": 0,
                "seconds": seconds,
                "method": method,
                "train_indices": indices.tolist(),
            }
        ],
        versions=library_versions(),
    )
    if out is not None:
        ds.save(out)
    return ds
