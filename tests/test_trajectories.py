"""Trajectory matching (objective mtt): its loss, the expert trajectories' cache, and runs."""

import pytest
import torch
from conftest import SMOKE, make_tiny_data
from torch.nn import functional as F

from gandistill.config import load_config, resolve
from gandistill.distillation import trajectories
from gandistill.distillation.loop import Distiller
from gandistill.distillation.trajectories import (
    StudentNetwork,
    expert_trajectories,
    trajectory_key,
    trajectory_loss,
    trajectory_path,
    unrolled_student,
)
from gandistill.errors import ConfigError
from gandistill.files import DistilledSet

MTT = [
    "distill.objective=mtt",
    "distill.mtt_experts=2",
    "distill.mtt_train_epochs=3",
    "distill.mtt_expert_epochs=1",
    "distill.mtt_max_start_epoch=2",
    "distill.mtt_syn_steps=3",
]


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_data(per_class=6)


def _cfg(tmp_path, *overrides):
    return load_config(SMOKE, [f"cache_dir={tmp_path}", *MTT, *overrides])


def test_loss_is_zero_on_the_target_and_one_at_the_start():
    gen = torch.Generator().manual_seed(0)
    start, target = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    assert trajectory_loss(target.clone(), start, target) == 0
    assert trajectory_loss(start.clone(), start, target) == pytest.approx(1.0)
    halfway = trajectory_loss((start + target) / 2, start, target)
    assert halfway == pytest.approx(0.25)


def test_a_student_that_lands_on_the_experts_checkpoint_has_zero_loss(tmp_path, tiny):
    """The target made by the very SGD step the student takes: the loss vanishes; another
    set, or another learning rate, leaves the student elsewhere."""
    cfg = _cfg(tmp_path)
    student = StudentNetwork(cfg, tiny.info, torch.device("cpu"))
    start = torch.cat([p.detach().reshape(-1) for p in student.net.parameters()])
    gen = torch.Generator().manual_seed(1)
    images, labels = torch.randn(6, 1, 28, 28, generator=gen), torch.tensor([0, 0, 1, 1, 2, 2])
    lr = torch.tensor(0.05)
    params = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(student(params, images), labels), params)
    target = start - lr * grad  # the expert's later checkpoint: one full-batch step on the set

    def loss(x, rate):
        end = unrolled_student(student, start, x, labels, rate, 1, 0, torch.Generator())
        return trajectory_loss(end, start, target)

    assert loss(images, lr) < 1e-10
    assert loss(images + 1.0, lr) > 1e-3
    assert loss(images, torch.tensor(0.02)).item() == pytest.approx(0.36, rel=1e-3)  # (1 - 0.4)²
    # the graph reaches the set and the learning rate
    x, rate = (images + 1.0).requires_grad_(True), lr.clone().requires_grad_(True)
    loss(x, rate).backward()
    assert x.grad.abs().sum() > 0 and rate.grad != 0


def test_expert_trajectories_are_saved_reused_and_grown(tmp_path, tiny, monkeypatch):
    cfg = resolve(_cfg(tmp_path), "cpu")
    calls = []
    real_train = trajectories.train_expert

    def counting(cfg, info, train, index, device, progress=""):
        calls.append(index)
        return real_train(cfg, info, train, index, device, progress)

    monkeypatch.setattr(trajectories, "train_expert", counting)
    device = torch.device("cpu")
    first = expert_trajectories(cfg, tiny.info, tiny.train, device, say=lambda _: None)
    assert calls == [0, 1] and len(first) == 2
    n_params = sum(p.numel() for p in StudentNetwork(cfg, tiny.info, device).net.parameters())
    assert first[0].shape == (4, n_params)  # the start and three epochs
    assert not torch.equal(first[0][0], first[0][-1])  # the expert moved
    assert not torch.equal(first[0][0], first[1][0])  # experts start apart

    again = expert_trajectories(cfg, tiny.info, tiny.train, device, say=lambda _: None)
    assert calls == [0, 1]  # read from the file, nothing trained
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))

    more = load_config(SMOKE, [f"cache_dir={tmp_path}", *MTT, "distill.mtt_experts=3"])
    grown = expert_trajectories(more, tiny.info, tiny.train, device, say=lambda _: None)
    assert calls == [0, 1, 2] and len(grown) == 3  # only the missing expert trained
    assert torch.equal(grown[1], first[1])


def test_trajectories_of_another_dataset_or_setting_are_refused(tmp_path, tiny):
    cfg = _cfg(tmp_path)
    device = torch.device("cpu")
    expert_trajectories(cfg, tiny.info, tiny.train, device, say=lambda _: None)
    path = trajectory_path(cfg, trajectory_key(cfg, tiny.info))
    assert path.is_file() and path.parent.name == "trajectories"
    for override, named in (
        ("distill.net_width=16", "net.width"),
        ("data.name=fashion_mnist", "data.name"),
        ("distill.mtt_teacher_lr=0.1", "lr"),
    ):
        other = _cfg(tmp_path, override, f"distill.mtt_buffer={path}")
        with pytest.raises(ConfigError, match=f"another dataset or setting: {named}") as info:
            expert_trajectories(other, tiny.info, tiny.train, device, say=lambda _: None)
        assert "\n" not in str(info.value)
    # without an explicit file, another setting gets a file of its own
    other = _cfg(tmp_path, "distill.net_width=16")
    assert trajectory_path(other, trajectory_key(other, tiny.info)) != path


@pytest.mark.parametrize("space", ["pixel", "latent"])
def test_mtt_distils_in_either_space(tmp_path, tiny, space, request):
    extra = ["distill.init=truncated"] if space == "latent" else ["distill.init=real"]
    cfg = _cfg(tmp_path, f"distill.space={space}", "distill.max_iterations=3", *extra)
    generator = request.getfixturevalue("generator_file") if space == "latent" else None
    d = Distiller(cfg, generator=generator, out=tmp_path / "set.pt", data=tiny)
    start = d.syn().detach().clone()
    ds = d.run()
    assert not torch.allclose(ds.images_float, start)
    assert all(0 < h["match_loss"] < 10 for h in ds.history)
    saved = DistilledSet.load(tmp_path / "set.pt")
    assert saved.config.distill.objective == "mtt" and saved.config.distill.mtt_syn_steps == 3
    assert saved.space == space and saved.residuals is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["distill.mtt_max_start_epoch=4"], "targets reach expert epoch 4"),
        (["distill.dm_weight=1"], "set distill.dm_weight to 0"),
        (["distill.pool_size=2"], "set distill.pool_size to 0"),
    ],
)
def test_mtt_settings_that_cannot_work_are_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(_cfg(tmp_path, *overrides), "cpu")
