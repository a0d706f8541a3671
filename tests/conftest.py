"""Shared fixtures: tiny seeded data and a smoke config pointed at a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gandistill.config import Config, load_config
from gandistill.data import DatasetInfo, ImageTensors, Splits

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"


def set_args(overrides) -> list[str]:
    """``--set`` command-line arguments for config overrides ``section.key=value``."""
    return [arg for o in overrides for arg in ("--set", str(o))]


def make_tiny_data(
    per_class: int = 4, num_classes: int = 3, channels: int = 1, size: int = 28, seed: int = 0
) -> Splits:
    """Class-separable toy images: class c is bright in horizontal band c, plus noise; the
    validation and test splits are copies of the training images (val is not test)."""
    train, test, info = tiny_parts(per_class, num_classes, channels, size, seed)
    val = ImageTensors(test.images.clone(), test.labels.clone(), test.num_classes)
    return Splits(
        train, val, test, info, {"train": "tiny", "val": "tiny copy", "test": "tiny copy"}
    )


def tiny_parts(
    per_class: int = 4, num_classes: int = 3, channels: int = 1, size: int = 28, seed: int = 0
) -> tuple[ImageTensors, ImageTensors, DatasetInfo]:
    """The train split, a test copy of it and the info of :func:`make_tiny_data`."""
    gen = torch.Generator().manual_seed(seed)
    n = per_class * num_classes
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = torch.randint(0, 40, (n, channels, size, size), generator=gen, dtype=torch.uint8)
    band = size // num_classes
    for i, c in enumerate(labels.tolist()):
        images[i, :, c * band : (c + 1) * band] = 220
    info = DatasetInfo(
        name="tiny",
        num_classes=num_classes,
        channels=channels,
        image_size=size,
        mean=(0.3,) * channels,
        std=(0.4,) * channels,
        class_names=tuple(str(c) for c in range(num_classes)),
    )
    split = ImageTensors(images, labels, num_classes)
    return split, ImageTensors(images.clone(), labels.clone(), num_classes), info


@pytest.fixture
def tiny_data() -> Splits:
    return make_tiny_data()


@pytest.fixture
def smoke_cfg(tmp_path: Path) -> Config:
    """The smoke preset, writing under ``tmp_path``, without the end-of-run classifier."""
    return load_config(
        SMOKE,
        [
            f"run_dir={tmp_path / 'run'}",
            f"cache_dir={tmp_path}",
            "train.eval_samples_per_class=0",
        ],
    )


def tiny_pixel_set(folder: Path, overrides: list[str]) -> tuple[Config, Path, Splits]:
    """A tiny tensors dataset written under ``folder``, the smoke config reading it (plus
    ``overrides``), and a 2-per-class pixel-space set of its training images saved there."""
    from gandistill.data import load_dataset
    from gandistill.files import DistilledSet

    train, test, _ = tiny_parts(per_class=12)
    data_file = folder / "tiny.pt"
    torch.save(
        {
            "images": train.images,
            "labels": train.labels,
            "test_images": test.images,
            "test_labels": test.labels,
        },
        data_file,
    )
    cfg = load_config(
        SMOKE,
        [f"cache_dir={folder}", "data.name=tensors", f"data.root={data_file}", *overrides],
    )
    data = load_dataset(cfg.data)
    train, info = data.train, data.info
    pick = torch.cat([train.class_indices[c][:2] for c in range(info.num_classes)])
    ds = DistilledSet(
        labels=train.labels[pick],
        images_float=info.normalize(train.images[pick].float() / 255),
        images_uint8=train.images[pick],
        info=info,
        config=cfg,
        space="pixel",
        stop_reason="max_iterations",
    )
    return cfg, ds.save(folder / "set.pt"), data


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, tiny):
    """A smoke generator trained on the module's ``tiny`` data (the module defines ``tiny``)."""
    from gandistill.gan.trainer import train

    root = tmp_path_factory.mktemp("gen")
    cfg = load_config(
        SMOKE, [f"run_dir={root / 'run'}", f"cache_dir={root}", "train.eval_samples_per_class=0"]
    )
    return train(cfg, data=tiny).generator_path
