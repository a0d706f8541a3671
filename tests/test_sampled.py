"""Sets on demand: ``sample --generator G --ipc K`` draws a static set from a generator."""

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_batch import run_cli_many
from test_cli import assert_user_error

from gandistill.distillation.sampled import STOP_REASON, sample_set
from gandistill.files import DistilledSet
from gandistill.gan.trainer import train


@pytest.fixture
def generator(smoke_cfg, tiny_data):
    return train(smoke_cfg, data=tiny_data).generator_path


def test_a_sampled_set_is_static_seeded_and_an_ordinary_set(generator, tmp_path):
    ds = sample_set(generator, ipc=3, seed=0)
    assert torch.bincount(ds.labels).tolist() == [3, 3, 3]
    assert torch.equal(ds.labels, ds.labels.sort().values)
    assert ds.space == "latent" and ds.stop_reason == STOP_REASON and ds.ipc == 3
    assert ds.config.seed == 0 and ds.config.distill.ipc == 3
    again, other = sample_set(generator, ipc=3, seed=0), sample_set(generator, ipc=3, seed=1)
    assert torch.equal(again.images_uint8, ds.images_uint8)
    assert not torch.equal(other.latents, ds.latents)
    # saved and loaded like any distilled set; its latents decode to its images again
    loaded = DistilledSet.load(ds.save(tmp_path / "set.pt"))
    assert torch.allclose(loaded.decode(), loaded.images_float, atol=1e-5)
    assert loaded.generator_sha256 == ds.generator_sha256


def test_cli_samples_a_set_of_any_size_and_refuses_bad_input(generator, tmp_path):
    here = Path.cwd()
    out, npz = tmp_path / "s.pt", tmp_path / "s.npz"
    ok, exported, *refused = run_cli_many(
        [
            (["sample", "--generator", generator, "--ipc", 4, "--out", out], here),
            (["sample", "--generator", generator, "--ipc", 2, "--out", npz], here),
            (["sample", "--generator", generator, "--ipc", 0, "--out", tmp_path / "a.pt"], here),
            (
                ["sample", "--generator", generator, "--ipc", 10**9, "--out", tmp_path / "b.pt"],
                here,
            ),
            (["sample", "--distilled", out, "--ipc", 2, "--out", tmp_path / "c.pt"], here),
            (["sample", "--generator", generator, "--ipc", 2, "--no-ema", "--out", out], here),
        ]
    )
    assert ok.returncode == 0, ok.stderr
    assert "not distilled into" in ok.stdout and "12 images, 4 per class" in ok.stdout
    ds = DistilledSet.load(out)
    assert torch.bincount(ds.labels).tolist() == [4, 4, 4]
    assert exported.returncode == 0, exported.stderr
    assert np.load(npz)["images"].shape == (6, 1, 28, 28)
    for proc, fragment in zip(
        refused,
        ["argument --ipc", "GiB", "--ipc draws a set from a generator", "--no-ema"],
        strict=True,
    ):
        assert_user_error(proc, fragment)
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b").exists()
