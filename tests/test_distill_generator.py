"""Distilling into the generator: a run that continues a trained generator's run with the
pool-matching term, its records, its resume, the pool itself, and the command's refusals."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cli_batch import run_cli_many
from test_cli import assert_user_error

from gandistill.config import MatchConfig
from gandistill.errors import ArtifactError, ConfigError, DataError
from gandistill.evaluation.generator import _source as generator_source
from gandistill.evaluation.generator import evaluate_generator
from gandistill.files import GENERATOR_FILE, load_generator_checkpoint, sha256_file
from gandistill.gan.checkpoints import STATE_DIR, checkpoint_files
from gandistill.gan.pool import MatchingPool
from gandistill.gan.trainer import train
from gandistill.models import to_gan_range

EXTRA = 4  # iterations the continued runs add


@pytest.fixture
def source(smoke_cfg, tiny_data):
    return train(smoke_cfg, data=tiny_data).generator_path


def continued(smoke_cfg, source, folder: Path, **match) -> object:
    """The smoke config continuing ``source``'s run in ``folder`` with the matching term on."""
    tc = replace(
        smoke_cfg.train, iterations=smoke_cfg.train.iterations + EXTRA, init_from=str(source)
    )
    mc = replace(smoke_cfg.match, **({"weight": 1.0, "net_width": 8} | match))
    return replace(smoke_cfg, run_dir=str(folder), train=tc, match=mc)


def ema_weights(path) -> dict:
    return load_generator_checkpoint(path).generator.state_dict()


def raw_parameters(path) -> dict:
    """The raw generator's parameters (its buffers, batch norm's statistics, move without
    learning)."""
    return dict(load_generator_checkpoint(path, ema=False).generator.named_parameters())


def test_a_distilled_generator_starts_from_its_source_changes_it_and_records_how(
    smoke_cfg, tiny_data, source, tmp_path
):
    # with both learning rates 0 the continued run keeps the source's weights: it loaded them
    frozen_cfg = continued(smoke_cfg, source, tmp_path / "frozen")
    frozen_cfg = replace(frozen_cfg, train=replace(frozen_cfg.train, lr_g=0.0, lr_d=0.0))
    frozen = raw_parameters(train(frozen_cfg, data=tiny_data).generator_path)
    for name, value in raw_parameters(source).items():
        assert torch.equal(value, frozen[name]), name
    result = train(continued(smoke_cfg, source, tmp_path / "d"), data=tiny_data)
    assert result.iterations == smoke_cfg.train.iterations + EXTRA
    ckpt = load_generator_checkpoint(result.generator_path)
    assert ckpt.distilled and not load_generator_checkpoint(source).distilled
    assert ckpt.derived_from == {
        "path": str(source),
        "sha256": sha256_file(source),
        "iteration": smoke_cfg.train.iterations,
    }
    assert ckpt.config.train.init_from == str(source) and ckpt.config.match.weight == 1.0
    before, after = ema_weights(source), ema_weights(result.generator_path)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # a generator report names the source
    assert generator_source(ckpt, tiny_data.info)["derived_from"] == ckpt.derived_from
    # the pool's networks are part of the run's training state
    state = torch.load(checkpoint_files(tmp_path / "d")[-1], weights_only=True)
    assert len(state["match_pool"]["nets"]) == smoke_cfg.match.pool_size
    assert state["source"]["sha256"] == sha256_file(source)


@pytest.mark.parametrize("tune", ["embed", "blocks"])
def test_distilling_into_a_part_of_the_generator_leaves_the_rest_as_it_was(
    smoke_cfg, tiny_data, source, tmp_path, tune
):
    result = train(continued(smoke_cfg, source, tmp_path / "d", tune=tune), data=tiny_data)
    before, after = raw_parameters(source), raw_parameters(result.generator_path)
    changed = {name for name, value in before.items() if not torch.equal(value, after[name])}
    assert changed and all(name.startswith(f"{tune}.") for name in changed), changed
    assert load_generator_checkpoint(result.generator_path).config.match.tune == tune


def test_a_resumed_distillation_ends_where_an_uninterrupted_one_does(
    smoke_cfg, tiny_data, source, tmp_path
):
    cfg = continued(smoke_cfg, source, tmp_path / "d")
    whole = ema_weights(train(cfg, data=tiny_data).generator_path)
    # as if killed after the first checkpoint of the continued run: the last one and the
    # generator file are gone
    newest = checkpoint_files(tmp_path / "d")
    assert len(newest) == 2
    newest[-1].unlink()
    (tmp_path / "d" / GENERATOR_FILE).unlink()
    resumed = ema_weights(train(cfg, resume=True, data=tiny_data).generator_path)
    for name, value in whole.items():
        assert torch.equal(value, resumed[name]), name


def test_continuing_needs_the_source_run_folder_and_more_iterations(
    smoke_cfg, tiny_data, source, tmp_path
):
    alone = tmp_path / "alone" / GENERATOR_FILE
    alone.parent.mkdir()
    shutil.copy(source, alone)
    with pytest.raises(ArtifactError, match="holds no checkpoint"):
        train(continued(smoke_cfg, alone, tmp_path / "a"), data=tiny_data)
    cfg = continued(smoke_cfg, source, tmp_path / "b")
    cfg = replace(cfg, train=replace(cfg.train, iterations=smoke_cfg.train.iterations))
    with pytest.raises(ConfigError, match="must go beyond the source's"):
        train(cfg, data=tiny_data)
    # the networks' shapes are the source's: another latent size cannot continue its weights
    cfg = continued(smoke_cfg, source, tmp_path / "d")
    cfg = replace(cfg, model=replace(cfg.model, latent_dim=cfg.model.latent_dim + 1))
    with pytest.raises(ConfigError, match=r"cannot distil into it: 'model' differs from the run"):
        train(cfg, data=tiny_data)
    # the run folder's newest checkpoint must be the one the file was written from
    checkpoint_files(Path(source).parent)[-1].unlink()
    with pytest.raises(ArtifactError, match="newest checkpoint .* is of iteration"):
        train(continued(smoke_cfg, source, tmp_path / "c"), data=tiny_data)


@pytest.mark.parametrize("objective", ["logits", "embed"])
def test_the_matching_term_pulls_only_the_generated_batch(tiny_data, objective):
    info = tiny_data.info
    mc = MatchConfig(weight=1.0, objective=objective, net_width=8, pool_size=2, max_age=2)
    pool = MatchingPool(mc, info, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert pool.ages == [0, 1]  # staggered
    real = to_gan_range(tiny_data.train.images.float() / 255).requires_grad_(True)
    labels = tiny_data.train.labels
    fake = torch.rand_like(real).mul(2).sub(1).requires_grad_(True)
    gen = torch.Generator().manual_seed(1)
    pool.train_step(real.detach(), labels, gen)
    term = pool.term(real, fake, labels, gen)
    term.backward()
    assert term.item() > 0 and fake.grad.abs().sum() > 0 and real.grad is None
    # the same images in both places match exactly
    assert pool.term(real.detach(), real.detach(), labels, gen).item() == pytest.approx(0, abs=1e-6)
    # a network that reached max_age starts again from fresh weights
    pool.turn = 1
    old = [p.clone() for p in pool.nets[1].parameters()]
    pool.train_step(real.detach(), labels, gen)
    pool.turn = 1
    pool.train_step(real.detach(), labels, gen)
    assert pool.ages[1] == 1
    assert any(not torch.equal(a, b) for a, b in zip(old, pool.nets[1].parameters(), strict=True))
    # its state round-trips
    copy = MatchingPool(mc, info, torch.device("cpu"), torch.Generator().manual_seed(5))
    copy.load_state_dict(pool.state_dict())
    assert copy.ages == pool.ages and copy.turn == pool.turn
    x = info.normalize(tiny_data.train.images.float() / 255)
    for a, b in zip(pool.nets, copy.nets, strict=True):
        assert torch.equal(a.eval()(x), b.eval()(x))


def test_the_command_refuses_a_generator_without_its_run_and_a_zero_weight(source, tmp_path):
    alone = tmp_path / "alone.pt"
    shutil.copy(source, alone)
    here = Path.cwd()
    no_state, no_weight = run_cli_many(
        [
            (["distill-generator", "--generator", alone, "--run-dir", tmp_path / "x"], here),
            (
                [
                    "distill-generator",
                    "--generator",
                    source,
                    "--set",
                    "match.weight=0",
                    "--run-dir",
                    tmp_path / "y",
                ],
                here,
            ),
        ]
    )
    assert_user_error(no_state, "holds no checkpoint")
    assert_user_error(no_weight, "match.weight 0")
    assert not (tmp_path / "y" / STATE_DIR).exists()


def test_a_generator_of_another_dataset_is_refused_at_evaluation(source, tiny_data):
    # same number of classes and image shape, other classes: refused by the dataset facts
    info = replace(tiny_data.info, name="letters", class_names=("a", "b", "c"))
    letters = replace(tiny_data, info=info)
    with pytest.raises(DataError, match="comes from dataset 'tiny'.*not from 'letters'"):
        evaluate_generator(source, data=letters, profile="quick", progress=False)


def test_the_command_records_its_source_by_absolute_path(smoke_cfg, tmp_path):
    """Run from the source's folder with a relative path: the result names the source so that
    a resume from any other folder compares the same file."""
    source = Path(train(smoke_cfg).generator_path)  # the smoke run on the embedded data
    (proc,) = run_cli_many(
        [
            (
                [
                    *["distill-generator", "--generator", source.name, "--run-dir", "d"],
                    *["--set", "match.iterations=2", "--set", "match.net_width=8"],
                ],
                source.parent,
            )
        ]
    )
    assert proc.returncode == 0, proc.stderr
    made = load_generator_checkpoint(source.parent / "d" / GENERATOR_FILE)
    assert made.config.train.init_from == str(source.resolve())
    assert made.derived_from["path"] == str(source.resolve()) and made.distilled
    assert made.iteration == smoke_cfg.train.iterations + 2
