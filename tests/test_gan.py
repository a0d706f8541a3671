import dataclasses
import math
from pathlib import Path

import pytest
import torch
from ignite.engine import Events

from gandistill.config import load_config, to_dict
from gandistill.errors import ArtifactError, ConfigError
from gandistill.files import load_generator_checkpoint
from gandistill.gan.checkpoints import STATE_DIR, TB_DIR
from gandistill.gan.trainer import GANTrainer, TrainingDiverged, train


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_one_iteration_gives_finite_losses_and_changes_both_networks(smoke_cfg, tiny_data):
    cfg = dataclasses.replace(smoke_cfg, train=dataclasses.replace(smoke_cfg.train, iterations=1))
    trainer = GANTrainer(cfg, data=tiny_data)
    g0, d0 = _params(trainer.generator), _params(trainer.discriminator)
    trainer.run()
    out = trainer.engine.state.output
    assert set(out) == {"loss_d", "loss_g", "dist_loss", "d_acc_real", "d_acc_fake"}
    assert all(math.isfinite(v) for v in out.values())
    assert out["dist_loss"] > 0
    g1, d1 = _params(trainer.generator), _params(trainer.discriminator)
    assert any(not torch.equal(a, b) for a, b in zip(g0, g1, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d0, d1, strict=True))


@pytest.mark.parametrize("amp", [True, False])
def test_train_amp_autocasts_where_bfloat16_is_native(smoke_cfg, tiny_data, amp, monkeypatch):
    """``train.amp`` runs G and D under bfloat16 autocast on a CPU with native bf16 (as on CUDA),
    in float32 on one without it, and never when off."""
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda n=native: n)
        cfg = dataclasses.replace(smoke_cfg, train=dataclasses.replace(smoke_cfg.train, amp=amp))
        trainer = GANTrainer(cfg, data=tiny_data)
        with trainer.gan_step.autocast():
            y = trainer.generator(
                torch.randn(2, trainer.generator.latent_dim), torch.zeros(2, dtype=torch.long)
            )
        expected = torch.bfloat16 if amp and native else torch.float32
        assert y.dtype == expected, (amp, native)
        trainer.lock.release()


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.dist_kind=fm"],
        ["train.dist_features=random", "train.mode_seeking_weight=0.5"],
        ["train.dist_kind=none", "train.loss=ns", "train.augment="],
    ],
)
def test_variants_run(smoke_cfg, tiny_data, overrides, tmp_path):
    cfg = load_config(None, [f"{k}={v}" for k, v in _flat(to_dict(smoke_cfg))] + overrides)
    result = train(cfg, data=tiny_data)
    assert result.generator_path.is_file()


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield prefix + k, v


def test_checkpoint_round_trip(smoke_cfg, tiny_data):
    trainer = GANTrainer(smoke_cfg, data=tiny_data)
    result = trainer.run()
    ckpt = load_generator_checkpoint(result.generator_path)
    assert ckpt.iteration == smoke_cfg.train.iterations
    assert ckpt.config == smoke_cfg
    assert ckpt.info == tiny_data.info
    ema = trainer.ema.module.state_dict()
    for k, v in ckpt.generator.state_dict().items():
        assert torch.equal(v, ema[k]), k
    raw = load_generator_checkpoint(result.generator_path, ema=False).generator.state_dict()
    for k, v in trainer.generator.state_dict().items():
        assert torch.equal(v, raw[k]), k
    # resolved config next to the run and in every resumable checkpoint
    assert (Path(smoke_cfg.run_dir) / "config.yaml").is_file()
    newest = sorted((Path(smoke_cfg.run_dir) / STATE_DIR).glob("*.pt"))[-1]
    state = torch.load(newest, weights_only=True)
    assert state["config"] == to_dict(smoke_cfg)


def test_resume_equals_uninterrupted_run(smoke_cfg, tiny_data, tmp_path):
    full = dataclasses.replace(smoke_cfg, run_dir=str(tmp_path / "full"))
    reference = GANTrainer(full, data=tiny_data)
    reference.run()

    part = dataclasses.replace(smoke_cfg, run_dir=str(tmp_path / "part"))
    first = GANTrainer(part, data=tiny_data)
    first.engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.terminate())
    first.run()
    assert first.engine.state.iteration == 2
    resumed = GANTrainer(part, resume=True, data=tiny_data)
    assert resumed.engine.state.iteration == 2
    resumed.run()
    assert resumed.engine.state.iteration == smoke_cfg.train.iterations
    for name in ("generator", "discriminator"):
        ref = getattr(reference, name).state_dict()
        for k, v in getattr(resumed, name).state_dict().items():
            assert torch.equal(v, ref[k]), f"{name}.{k}"
    ref_ema = reference.ema.module.state_dict()
    for k, v in resumed.ema.module.state_dict().items():
        assert torch.equal(v, ref_ema[k]), f"ema.{k}"


def test_existing_run_needs_resume_or_overwrite(smoke_cfg, tiny_data):
    train(smoke_cfg, data=tiny_data)
    with pytest.raises(ArtifactError, match="already holds a run"):
        GANTrainer(smoke_cfg, data=tiny_data)
    GANTrainer(smoke_cfg, overwrite=True, data=tiny_data)
    assert not (Path(smoke_cfg.run_dir) / "generator.pt").exists()


def test_resume_refuses_a_changed_architecture(smoke_cfg, tiny_data):
    train(smoke_cfg, data=tiny_data)
    changed = dataclasses.replace(smoke_cfg, model=dataclasses.replace(smoke_cfg.model, g_width=16))
    with pytest.raises(ConfigError, match="'model' differs"):
        GANTrainer(changed, resume=True, data=tiny_data)


def test_nothing_to_resume(smoke_cfg, tiny_data):
    with pytest.raises(ArtifactError, match="nothing to resume"):
        GANTrainer(smoke_cfg, resume=True, data=tiny_data)


def test_nan_stops_and_names_the_last_good_checkpoint(smoke_cfg, tiny_data):
    trainer = GANTrainer(smoke_cfg, data=tiny_data)
    loss_d = trainer.loss_d_fn

    def poisoned(real, fake):  # a loss that blows up at iteration 3
        nan = float("nan") if trainer.engine.state.iteration == 3 else 1.0
        return loss_d(real, fake) * nan

    trainer.loss_d_fn = poisoned
    with pytest.raises(TrainingDiverged, match="iteration 3.*checkpoint_2.pt"):
        trainer.run()
    assert trainer.engine.state.iteration == 3
    assert not (Path(smoke_cfg.run_dir) / "generator.pt").exists()


def test_tensorboard_scalars_and_images(smoke_cfg, tiny_data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(smoke_cfg, data=tiny_data)
    acc = EventAccumulator(str(Path(smoke_cfg.run_dir) / TB_DIR))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    expected = {
        "train/loss_d",
        "train/loss_g",
        "train/dist_loss",
        "train/d_acc_real",
        "train/d_acc_fake",
        "diversity/ema",
        "diversity/ema_min",
        "diversity/raw",
        "diversity/raw_min",
    }
    assert expected <= scalars
    for tag in ("diversity/ema", "diversity/raw_min"):
        assert all(e.value > 0 for e in acc.Scalars(tag))
    assert any(tag.startswith("train/lr_g") for tag in scalars)
    assert "images/samples" in acc.Tags()["images"]


def test_ema_warms_up_then_keeps_its_decay():
    """decay min(0.999, (1 + n) / (10 + n)): the random initial generator is forgotten fast."""
    from torch.optim.swa_utils import AveragedModel

    from gandistill.gan.step import ema_decay_at, ema_with_warmup

    decays = [float(ema_decay_at(0.999, torch.tensor(float(n)))) for n in (0, 90, 10**6)]
    assert decays == pytest.approx([0.1, 0.91, 0.999])
    net = torch.nn.Linear(1, 1, bias=False)
    ema = AveragedModel(net, multi_avg_fn=ema_with_warmup(0.999), use_buffers=True)
    with torch.no_grad():
        net.weight.fill_(1.0)
        ema.update_parameters(net)  # the first update copies
        net.weight.fill_(3.0)
        ema.update_parameters(net)  # n = 1: decay 2/11
    assert ema.module.weight.item() == pytest.approx(2 / 11 * 1.0 + 9 / 11 * 3.0)
