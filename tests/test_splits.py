"""The test split is for final scores only: every code path that chooses or stops reads the
validation split, and a run with ``data.val_fraction: 0`` says that it read the test split."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import SMOKE, make_tiny_data

from gandistill.config import load_config
from gandistill.coreset.baselines import build_baseline
from gandistill.data import ImageTensors, Splits
from gandistill.distillation.loop import Distiller
from gandistill.gan.trainer import GANTrainer
from gandistill.pipelines import benchmark
from gandistill.selection import METHODS


class SealedSplitRead(AssertionError):
    pass


class _Sealed:
    """A split whose every use fails the test: stands in for the test split."""

    def __getattr__(self, name: str):
        raise SealedSplitRead(f"the test split was read ({name})")

    def __len__(self) -> int:
        raise SealedSplitRead("the test split was read (len)")

    def __getitem__(self, i: int):
        raise SealedSplitRead("the test split was read (item)")


@pytest.fixture(scope="module")
def sealed() -> Splits:
    """Tiny splits whose test split cannot be read."""
    data = make_tiny_data(per_class=6)
    return dataclasses.replace(data, test=_Sealed())


def _cfg(tmp_path, *overrides):
    return load_config(
        SMOKE, [f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", *overrides]
    )


def test_gan_training_and_its_classifier_check_do_not_read_the_test_split(tmp_path, sealed):
    result = GANTrainer(_cfg(tmp_path), data=sealed).run()  # eval_samples_per_class: 5
    assert result.class_consistency is not None


@pytest.mark.parametrize(
    "overrides",
    [
        ["distill.space=pixel", "distill.init=real"],
        ["distill.space=pixel", "distill.init=herding", "distill.teacher_logits=true"],
        ["distill.space=pixel", "distill.init=kmeans", "distill.max_minutes=0.0001"],
    ],
    ids=["quick-checks", "herding-teacher", "budget-stop"],
)
def test_distillation_checks_and_stops_on_the_validation_split(tmp_path, sealed, overrides):
    cfg = _cfg(tmp_path, "distill.eval_every=1", *overrides)
    ds = Distiller(cfg, data=sealed).run()
    assert all(0.0 <= h["accuracy"] <= 1.0 for h in ds.history if "accuracy" in h)
    assert any("accuracy" in h for h in ds.history)
    assert {h["accuracy_split"] for h in ds.history if "accuracy" in h} == {"validation"}


@pytest.mark.parametrize("method", METHODS)
def test_coreset_selection_does_not_read_the_test_split(tmp_path, sealed, method):
    cfg = _cfg(tmp_path, "distill.teacher_logits=true")
    ds = build_baseline(cfg, method, ipc=2, data=sealed)
    assert len(ds.labels) == 2 * sealed.info.num_classes


def test_benchmark_target_reads_the_validation_split(tmp_path, sealed):
    cfg = _cfg(tmp_path)
    bench = benchmark._Bench(cfg, tmp_path / "bench", 0.1, "quick", None, sealed)
    assert 0.0 <= bench.target(cfg, 2) <= 1.0


def test_the_sealed_split_does_fail_when_read(tmp_path, sealed):
    """The checks above can fail: a final score does read the test split."""
    from gandistill.fit import test_accuracy

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3))
    with pytest.raises(SealedSplitRead):
        test_accuracy(net, sealed.test, sealed.info, torch.device("cpu"))


def test_quick_checks_score_on_the_validation_split(tmp_path):
    """The validation split decides the quick check: a set scored on a validation split of
    wrong labels scores 0 there, whatever the test split says."""
    data = make_tiny_data(per_class=6)
    wrong = (data.val.labels + 1) % data.info.num_classes
    val = ImageTensors(data.val.images, wrong, data.info.num_classes)
    cfg = _cfg(tmp_path, "distill.space=pixel", "distill.init=real", "distill.eval_every=1")
    ds = Distiller(cfg, data=dataclasses.replace(data, val=val)).run()
    right = Distiller(cfg, data=data).run()
    assert max(h["accuracy"] for h in ds.history if "accuracy" in h) < 0.5
    assert min(h["accuracy"] for h in right.history if "accuracy" in h) > 0.5
