"""The in-memory form of a dataset split: uint8 images with a per-class index, balanced
samplers, and the dataset's description (classes, shape, normalisation statistics).

Images stay ``uint8 (N, C, H, W)`` and become float in ``[0, 1]`` only when a sample or batch is
taken, so a whole set never exists as float at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from gandistill.errors import DataError
from gandistill.runtime import step_generator

BATCH_STREAM = 7  # step_generator key of the real-batch draws (apart from a step's other draws)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model or artifact needs to know about a dataset.

    Attributes:
        name: registry name.
        num_classes: number of classes K (labels are 0..K-1).
        channels: image channels (1 or 3).
        image_size: height and width of the (square) images.
        mean: per-channel mean of the [0, 1] pixels, used to normalise.
        std: per-channel standard deviation of the [0, 1] pixels.
        class_names: one name per class.
    """

    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:  # coerce to plain python types (lists from to_dict too)
        for key in ("num_classes", "channels", "image_size"):
            object.__setattr__(self, key, int(getattr(self, key)))
        for key, kind in (("mean", float), ("std", float), ("class_names", str)):
            object.__setattr__(self, key, tuple(kind(v) for v in getattr(self, key)))
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean/std need {self.channels} values, got {self.mean}, {self.std}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.num_classes} classes but {len(self.class_names)} names")

    def to_dict(self) -> dict:
        """Plain-python dict (lists, str, int, float), safe for ``weights_only`` loading."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetInfo:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(-1, 1, 1)
        return mean, std

    def normalize(self, x01: Tensor) -> Tensor:
        """``(x - mean) / std`` for images in [0, 1], shaped (C, H, W) or (B, C, H, W)."""
        mean, std = self._stats(x01)
        return (x01 - mean) / std

    def denormalize(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`normalize` (no clamping)."""
        mean, std = self._stats(x)
        return x * std + mean


def _to_float(images: Tensor) -> Tensor:
    return images.float().div_(255.0)


class ImageTensors(torch.utils.data.Dataset):
    """One split: images uint8 (N, C, H, W), labels int64 (N,).

    Attributes:
        images: uint8 tensor (N, C, H, W).
        labels: int64 tensor (N,), values in 0..num_classes-1.
        num_classes: number of classes K.
        class_indices: per class, the int64 indices of its images in ascending order.
    """

    def __init__(self, images: Tensor, labels: Tensor, num_classes: int) -> None:
        assert images.dtype == torch.uint8 and images.ndim == 4, (images.dtype, images.shape)
        assert labels.dtype == torch.int64 and labels.shape == (images.shape[0],), labels.shape
        assert labels.numel() == 0 or 0 <= int(labels.min()) <= int(labels.max()) < num_classes
        self.images = images
        self.labels = labels
        self.num_classes = num_classes
        self.class_indices = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return _to_float(self.images[i]), int(self.labels[i])

    def class_counts(self) -> list[int]:
        """Number of images of each class."""
        return [len(idx) for idx in self.class_indices]

    def get_class(self, c: int) -> Tensor:
        """All images of class ``c`` as float32 in [0, 1], (n_c, C, H, W)."""
        return _to_float(self.images[self.class_indices[c]])

    def sample_class(self, c: int, n: int, generator: torch.Generator) -> Tensor:
        """``n`` images of class ``c`` as float32 in [0, 1], (n, C, H, W).

        Drawn without replacement when ``n`` does not exceed the class size, with replacement
        otherwise.
        """
        return self.take(self.draw_class(c, n, generator))

    def draw_class(self, c: int, n: int, generator: torch.Generator) -> Tensor:
        """The indices :meth:`sample_class` would take (the same draw from ``generator``)."""
        idx = self.class_indices[c]
        if len(idx) == 0 and n > 0:
            raise ValueError(f"class {c} has no images to sample from")
        if n <= len(idx):
            pick = torch.randperm(len(idx), generator=generator)[:n]
        else:
            pick = torch.randint(len(idx), (n,), generator=generator)
        return idx[pick]

    def take(self, indices: Tensor) -> Tensor:
        """The images at ``indices`` as float32 in [0, 1]."""
        return _to_float(self.images[indices])

    def sample_per_class(
        self, counts: Sequence[int], generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """``counts[c]`` images of each class ``c``, class by class, each drawn as
        :meth:`sample_class` draws it: float32 in [0, 1] (N, C, H, W) and int64 labels (N,)."""
        images = torch.cat([self.sample_class(c, int(n), generator) for c, n in enumerate(counts)])
        labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        return images, labels

    def sample_balanced(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` shuffled images with labels spread evenly over the classes.

        Each class gets ``n // K`` images; the remainder goes to randomly chosen distinct classes.

        Returns:
            Images float32 in [0, 1] (n, C, H, W) and int64 labels (n,).
        """
        k = self.num_classes
        counts = torch.full((k,), n // k, dtype=torch.int64)
        counts[torch.randperm(k, generator=generator)[: n % k]] += 1
        images, labels = self.sample_per_class(counts.tolist(), generator)
        order = torch.randperm(n, generator=generator)
        return images[order], labels[order]


class BalancedBatches(Dataset):
    """The real batches of a training run as a Dataset of whole batches, for
    ``idist.auto_dataloader`` (``shuffle=False``, no batching of its own).

    Item ``j`` is rank ``j % world_size``'s class-balanced batch of iteration
    ``start + j // world_size + 1``, drawn from its own ``step_generator``: a DistributedSampler
    without shuffling hands rank ``r`` the items ``r, r + W, r + 2W, ...``, i.e. its batches in
    iteration order, and a run resumed after iteration ``start`` draws exactly what an
    uninterrupted one would have.
    """

    def __init__(
        self,
        split: ImageTensors,
        batch_size: int,
        seed: int,
        start: int,
        iterations: int,
        world_size: int = 1,
    ) -> None:
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self.start, self.iterations, self.world_size = start, iterations, world_size

    def __len__(self) -> int:
        return (self.iterations - self.start) * self.world_size

    def __getitem__(self, j: int) -> tuple[Tensor, Tensor]:
        iteration, rank = self.start + j // self.world_size + 1, j % self.world_size
        gen = step_generator(self.seed, iteration, BATCH_STREAM, rank)
        return self.split.sample_balanced(self.batch_size, gen)


def require_compatible(source: DatasetInfo, info: DatasetInfo, what: str) -> None:
    """One-line :class:`DataError` unless ``what`` (described by ``source``) has the classes and
    image shape of dataset ``info``: the number of classes, channels and size, then the class
    names (a generator of Fashion-MNIST has the shape of MNIST's, not its classes)."""
    src = (source.num_classes, source.channels, source.image_size)
    if src != (info.num_classes, info.channels, info.image_size):
        raise DataError(
            f"{what} has {src[0]} classes of {src[1]}×{src[2]}² images; dataset '{info.name}' "
            f"has {info.num_classes} classes of {info.channels}×{info.image_size}²"
        )
    if tuple(source.class_names) != tuple(info.class_names):
        theirs, ours = ", ".join(source.class_names[:3]), ", ".join(info.class_names[:3])
        raise DataError(
            f"{what} comes from dataset '{source.name}' (classes {theirs}, ...), not from "
            f"'{info.name}' (classes {ours}, ...)"
        )
