"""The three splits of a dataset — train, validation, test — and how the validation split is
carved out of the training split.

Everything that *chooses or stops* (distillation's quick checks and patience, the benchmark's
time-to-accuracy targets, the cached classifier's reported accuracy) reads :attr:`Splits.val`;
only final scores (``gandistill evaluate``, the benchmark's tables) read :attr:`Splits.test`.
The validation split is never part of :attr:`Splits.train`, which is all that GAN training,
distillation's real batches, coreset selection and the classifiers learn from. With
``data.val_fraction: 0`` there is no validation split and :attr:`Splits.val` *is* the test split
(the behaviour of published distillation code); :attr:`Splits.val_is_test` says so and reports
repeat it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from gandistill.data.tensors import DatasetInfo, ImageTensors

SPLIT_NAMES = ("train", "val", "test")


def stratified_split(
    labels: np.ndarray, num_classes: int, fraction: float, seed: int, at_least_one: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class: ``round(n_c * fraction)`` held out (``ceil`` with
    ``at_least_one``, so that every class of two or more images gives one), at least one kept.

    For c = 0..K-1 in order, the held-out images of class c are the first ones of
    ``numpy.random.default_rng(seed).permutation(flatnonzero(labels == c))``.

    Returns:
        Kept indices in ascending (original) order, and held-out indices class by class in
        permutation order.
    """
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for c in range(num_classes):
        perm = rng.permutation(np.flatnonzero(labels == c))
        share = len(perm) * fraction
        n_held = min(math.ceil(share) if at_least_one else round(share), max(len(perm) - 1, 0))
        held.append(perm[:n_held])
        kept.append(perm[n_held:])
    empty = np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate([empty, *kept])), np.concatenate([empty, *held])


def split_tensors(
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    fraction: float,
    seed: int,
    at_least_one: bool = False,
) -> tuple[ImageTensors, ImageTensors]:
    """The kept and held-out :class:`ImageTensors` of :func:`stratified_split`."""
    kept, held = stratified_split(labels.numpy(), num_classes, fraction, seed, at_least_one)
    kept_t, held_t = torch.from_numpy(kept), torch.from_numpy(held)
    return (
        ImageTensors(images[kept_t], labels[kept_t], num_classes),
        ImageTensors(images[held_t], labels[held_t], num_classes),
    )


@dataclass(frozen=True)
class Splits:
    """A dataset's splits and its description.

    Attributes:
        train: what every model and selection learns from (never holds validation images).
        val: what choices and stops are judged on; the test split itself when there is no
            validation split (``data.val_fraction: 0``).
        test: what final scores are measured on.
        info: the dataset's :class:`DatasetInfo`.
        origin: for each of ``train``/``val``/``test``, one line saying where it came from.
    """

    train: ImageTensors
    val: ImageTensors
    test: ImageTensors
    info: DatasetInfo
    origin: Mapping[str, str] = field(default_factory=dict)

    @property
    def val_is_test(self) -> bool:
        """True when choices and stops read the test split (no validation split)."""
        return self.val is self.test

    @property
    def val_name(self) -> str:
        """The name reports give the split :attr:`val` is: ``validation`` or ``test``."""
        return "test" if self.val_is_test else "validation"

    def describe(self) -> dict[str, dict[str, object]]:
        """Per split: its number of images and where it came from (for reports and manifests)."""
        out: dict[str, dict[str, object]] = {}
        for name in SPLIT_NAMES:
            split = getattr(self, name)
            out[name] = {"images": len(split), "origin": self.origin.get(name, "")}
        return out


@dataclass(frozen=True)
class Loaded:
    """What a dataset loader returns: the splits the dataset itself provides.

    Attributes:
        train: the training split (the validation split is carved from it when ``val`` is None).
        test: the test split.
        info: the dataset's :class:`DatasetInfo`.
        val: a validation split the dataset ships, if any.
        origin: for each split it provides, one line saying where it came from.
    """

    train: ImageTensors
    test: ImageTensors
    info: DatasetInfo
    val: ImageTensors | None = None
    origin: Mapping[str, str] = field(default_factory=dict)


def carve_validation(
    train: ImageTensors, test: ImageTensors, fraction: float, seed: int
) -> tuple[ImageTensors, ImageTensors, str]:
    """Hold out a class-stratified ``fraction`` of ``train`` as the validation split:
    ``ceil(n_c * fraction)`` images of each class c of two or more images.

    Returns:
        The remaining training split, the validation split (``test`` itself when ``fraction``
        is 0) and one line saying where the validation split came from.
    """
    if fraction == 0:
        return train, test, "none: data.val_fraction is 0, so choices and stops read the test split"
    kept, held = split_tensors(
        train.images, train.labels, train.num_classes, fraction, seed, at_least_one=True
    )
    return kept, held, f"carved from the training split: {fraction:g} of each class, seed {seed}"
