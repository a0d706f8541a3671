"""The dataset registry: :data:`DATASETS`, :func:`register_dataset` and :func:`load_dataset`.

A loader in :data:`DATASETS` turns a :class:`~gandistill.config.DataConfig` into a
:class:`~gandistill.data.splits.Loaded` (or a plain ``(train, test, info)`` triple);
:func:`load_dataset` then carves the validation split out of the training split (unless the
dataset ships one) and applies the config's channel and size overrides. Images stay
``uint8 (N, C, H, W)`` and become float in ``[0, 1]`` only when a sample or batch is taken, so
a whole set never exists as float at once. The built-in loaders are in
:mod:`gandistill.data.loaders`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gandistill.config import DataConfig
from gandistill.data.splits import Loaded, Splits, carve_validation
from gandistill.data.tensors import DatasetInfo, ImageTensors
from gandistill.errors import ConfigError, DataError
from gandistill.registry import Registry

Loader = Callable[[DataConfig], "Loaded | tuple[ImageTensors, ImageTensors, DatasetInfo]"]

DATASETS: Registry[Loader] = Registry("dataset")

_CHUNK = 4096  # images converted to float at a time (bounds peak memory on large sets)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights, the same PIL uses for RGB -> L


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator adding a loader to :data:`DATASETS` under ``name`` (a taken name is refused)."""
    return DATASETS.register(name)


def load_dataset(cfg: DataConfig) -> Splits:
    """Load ``cfg.name``, carve its validation split, apply ``cfg.channels`` / ``cfg.image_size``.

    The validation split is the dataset's own when it ships one; otherwise a class-stratified
    ``cfg.val_fraction`` of the training split drawn with ``cfg.split_seed`` (none at 0: the test
    split then serves for choices too).
    """
    if not 0 <= cfg.val_fraction < 0.5:
        raise ConfigError(
            f"config key 'data.val_fraction' must be in [0, 0.5), got {cfg.val_fraction}"
        )
    loader = DATASETS.get(cfg.name)
    if loader is None:
        raise DataError(f"unknown dataset '{cfg.name}' (known: {DATASETS.known()})")
    loaded = loader(cfg)
    if not isinstance(loaded, Loaded):
        train, test, info = loaded
        loaded = Loaded(train, test, info, origin={"train": cfg.name, "test": cfg.name})
    train, test, info, origin = loaded.train, loaded.test, loaded.info, dict(loaded.origin)
    if loaded.val is not None:
        val = loaded.val
    else:
        train, val, origin["val"] = carve_validation(train, test, cfg.val_fraction, cfg.split_seed)
        if cfg.val_fraction and len(val) == 0:
            raise DataError(
                f"{cfg.name} has one training image per class, none to spare for a validation "
                "split: set data.val_fraction=0"
            )
    splits = {"train": train, "val": val, "test": test}
    changes: dict[str, Any] = {}
    if cfg.channels and cfg.channels != info.channels:
        splits = _convert_splits(splits, _set_channels, cfg.channels)
        if cfg.channels == 3:  # replicated gray: each channel has the gray statistics
            changes.update(mean=info.mean * 3, std=info.std * 3)
        else:
            mean, std = channel_stats(splits["train"].images)
            changes.update(mean=mean, std=std)
        changes["channels"] = cfg.channels
    if cfg.image_size and cfg.image_size != info.image_size:
        splits = _convert_splits(splits, resize_images, cfg.image_size)
        changes["image_size"] = cfg.image_size
    if changes:
        info = DatasetInfo.from_dict({**info.to_dict(), **changes})
    return Splits(splits["train"], splits["val"], splits["test"], info, origin)


# --- conversions of whole splits (the loaders use resize_images, channel_stats) -------------


def _convert_splits(
    splits: dict[str, ImageTensors], fn: Callable[[Tensor, int], Tensor], arg: int
) -> dict[str, ImageTensors]:
    """``fn`` applied to each split's images; a split that is another's (val is test) stays so."""
    done: dict[int, ImageTensors] = {}
    for split in splits.values():
        if id(split) not in done:
            done[id(split)] = ImageTensors(fn(split.images, arg), split.labels, split.num_classes)
    return {name: done[id(split)] for name, split in splits.items()}


def _chunked(images: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """``fn`` over slices of ``_CHUNK`` images, concatenated (bounds the float copies made)."""
    return torch.cat([fn(part) for part in images.split(_CHUNK)])


def _set_channels(images: Tensor, channels: int) -> Tensor:
    """uint8 (N, C, H, W) to ``channels``: gray repeated to RGB, RGB reduced to luminance."""
    if channels == 3:
        return images.repeat(1, 3, 1, 1)
    luma = torch.tensor(_LUMA).view(1, 3, 1, 1)
    return _chunked(images, lambda x: (x * luma).sum(1, keepdim=True).round_().to(torch.uint8))


def resize_images(images: Tensor, size: int) -> Tensor:
    """Antialiased resize of uint8 (N, C, H, W) images to (N, C, size, size)."""
    from torchvision.transforms.v2.functional import resize

    return _chunked(images, lambda x: resize(x, [size, size], antialias=True))


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 (N, C, H, W) images scaled to [0, 1].

    The std is floored at one grey level (1/255) so constant channels cannot divide by zero.
    """

    def moments(x: Tensor) -> Tensor:  # (1, 2, C): sums of x and x^2 per channel
        x = x.double().div_(255.0).flatten(2)
        return torch.stack([x.sum((0, 2)), x.square().sum((0, 2))])[None]

    total, total_sq = _chunked(images, moments).sum(0)
    count = max(images.numel() // images.shape[1], 1)
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(1 / 255)
    return tuple(mean.tolist()), tuple(std.tolist())
