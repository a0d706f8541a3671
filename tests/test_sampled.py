"""Sets on demand: ``sample --generator G --ipc K`` draws a static set from a generator."""

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_batch import run_cli_many
from test_cli import assert_user_error
from torch.nn import functional as F

from gandistill.classifier import get_classifier
from gandistill.distillation.sampled import SAMPLE_KEY, STOP_REASON, sample_set, selection_of
from gandistill.errors import ConfigError
from gandistill.files import DistilledSet, load_generator_checkpoint
from gandistill.gan.trainer import train
from gandistill.models import from_gan_range
from gandistill.runtime import step_generator


@pytest.fixture
def generator(smoke_cfg, tiny_data):
    return train(smoke_cfg, data=tiny_data).generator_path


def test_a_sampled_set_is_static_seeded_and_an_ordinary_set(generator, tmp_path):
    ds = sample_set(generator, ipc=3, seed=0, select="none")
    assert torch.bincount(ds.labels).tolist() == [3, 3, 3]
    assert torch.equal(ds.labels, ds.labels.sort().values)
    assert ds.space == "latent" and ds.stop_reason == STOP_REASON and ds.ipc == 3
    assert ds.config.seed == 0 and ds.config.distill.ipc == 3
    again = sample_set(generator, ipc=3, seed=0, select="none")
    other = sample_set(generator, ipc=3, seed=1, select="none")
    assert torch.equal(again.images_uint8, ds.images_uint8)
    assert not torch.equal(other.latents, ds.latents)
    # saved and loaded like any distilled set; its latents decode to its images again
    loaded = DistilledSet.load(ds.save(tmp_path / "set.pt"))
    assert torch.allclose(loaded.decode(), loaded.images_float, atol=1e-5)
    assert loaded.generator_sha256 == ds.generator_sha256


def test_cli_samples_a_set_of_any_size_and_refuses_bad_input(generator, tmp_path):
    here = Path.cwd()
    out, npz = tmp_path / "s.pt", tmp_path / "s.npz"
    one = tmp_path / "one.pt"
    ok, exported, single, *refused = run_cli_many(
        [
            # the tiny data's generator: no selection, which would read the embedded dataset
            (
                ["sample", "--generator", generator, "--ipc", 4, "--select", "none", "--out", out],
                here,
            ),
            (
                ["sample", "--generator", generator, "--ipc", 2, "--select", "none", "--out", npz],
                here,
            ),
            (
                ["sample", "--generator", generator, "--ipc", 1, "--select", "none", "--out", one],
                here,
            ),
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
    assert "the first draws" in ok.stdout
    ds = DistilledSet.load(out)
    assert torch.bincount(ds.labels).tolist() == [4, 4, 4]
    assert exported.returncode == 0, exported.stderr
    assert np.load(npz)["images"].shape == (6, 1, 28, 28)
    # one image per class: the latents are scaled by default, and the file says by how much
    assert single.returncode == 0, single.stderr
    assert "latents scaled by 0.3" in single.stdout
    assert DistilledSet.load(one).config.distill.latent_scale == 0.3
    assert ds.config.distill.latent_scale == 1.0
    for proc, fragment in zip(
        refused,
        ["argument --ipc", "GiB", "--ipc draws a set from a generator", "--no-ema"],
        strict=True,
    ):
        assert_user_error(proc, fragment)
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b").exists()


def test_a_selected_set_keeps_the_candidate_the_rule_names_and_records_how(generator, tiny_data):
    """herding at one image per class keeps, of each class's candidates, the one whose
    classifier feature lies nearest their mean; the set says how it was drawn."""
    k, psi = 6, 0.3  # psi: the default latent scale at one image per class
    ds = sample_set(generator, ipc=1, seed=0, select="herding", candidates=k, data=tiny_data)
    assert ds.config.distill.latent_scale == psi
    assert torch.bincount(ds.labels).tolist() == [1, 1, 1]
    assert (ds.config.distill.init, ds.config.distill.select) == ("best_of_k", "herding")
    assert selection_of(ds) == ("herding", k)
    ckpt = load_generator_checkpoint(generator)
    g, cfg = ckpt.generator.eval(), ckpt.config
    clf = get_classifier(cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, tiny_data, "cpu")
    gen = step_generator(0, SAMPLE_KEY)
    with torch.no_grad():
        for c in range(3):
            z = g.sample_latents(k, gen) * psi
            x = from_gan_range(g(z, torch.full((k,), c)))
            feats = F.normalize(clf.features(x), dim=1)
            nearest = int((feats - feats.mean(0)).norm(dim=1).argmin())
            assert torch.allclose(ds.latents[c], z[nearest])
    again = sample_set(generator, ipc=1, seed=0, select="herding", candidates=k, data=tiny_data)
    assert torch.equal(again.latents, ds.latents)
    plain = sample_set(generator, ipc=1, seed=0, select="none")
    assert selection_of(plain) == ("none", 1) and plain.config.distill.init == "normal"
    assert not torch.equal(plain.latents, ds.latents)
    with pytest.raises(ConfigError, match="unknown selection 'bogus'"):
        sample_set(generator, ipc=1, select="bogus")
    with pytest.raises(ConfigError, match="--candidates must lie in"):
        sample_set(generator, ipc=1, select="kmeans", candidates=0)


def test_a_latent_scale_shrinks_every_draw_and_is_recorded(generator, tiny_data):
    """ψ scales the latents of the first draws and of every candidate (the same stream), the set
    records it, and ψ = 0 draws each class's typical sample whatever the seed."""
    plain = sample_set(generator, ipc=2, seed=0, select="none")
    half = sample_set(generator, ipc=2, seed=0, select="none", latent_scale=0.5)
    assert torch.allclose(half.latents, 0.5 * plain.latents)
    assert half.config.distill.latent_scale == 0.5 and plain.config.distill.latent_scale == 1.0
    assert not torch.equal(half.images_uint8, plain.images_uint8)
    zero = [sample_set(generator, ipc=1, seed=s, select="none", latent_scale=0.0) for s in (0, 1)]
    assert torch.equal(zero[0].images_uint8, zero[1].images_uint8)
    assert not zero[0].latents.any()
    picked = sample_set(
        generator, 1, 0, select="herding", candidates=4, data=tiny_data, latent_scale=1.0
    )
    scaled = sample_set(
        generator, 1, 0, select="herding", candidates=4, data=tiny_data, latent_scale=0.25
    )
    # the candidates are the same draws scaled: every kept latent is a quarter of a candidate
    gen = step_generator(0, SAMPLE_KEY)
    g = load_generator_checkpoint(generator).generator
    for c in range(3):
        z = g.sample_latents(4, gen)
        assert any(torch.allclose(scaled.latents[c], 0.25 * zi) for zi in z)
        assert any(torch.allclose(picked.latents[c], zi) for zi in z)
    with pytest.raises(ConfigError, match="--latent-scale must lie in 0..1"):
        sample_set(generator, ipc=1, select="none", latent_scale=1.5)
