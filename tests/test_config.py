from pathlib import Path

import pytest

from gandistill.config import (
    Config,
    config_from_dict,
    dump_yaml,
    load_config,
    to_dict,
)
from gandistill.config.derived import resolve
from gandistill.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_equal_the_mnist5k_preset():
    assert to_dict(load_config(CONFIGS / "mnist5k.yaml")) == to_dict(Config())


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_preset_loads(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.train.iterations >= 1


def test_a_float_in_exponent_notation_without_a_dot_is_a_float():
    cfg = load_config(None, ["distill.mtt_lr_lr=1e-5", "distill.lr=2E-3"])
    assert cfg.distill.mtt_lr_lr == 1e-5 and cfg.distill.lr == 2e-3
    with pytest.raises(ConfigError, match="expects float"):
        load_config(None, ["distill.lr=1e-5x"])


def test_overrides_are_typed_and_nested():
    cfg = load_config(None, ["train.iterations=7", "train.lr_g=1", "seed=3", "train.amp=false"])
    assert cfg.train.iterations == 7
    assert isinstance(cfg.train.lr_g, float) and cfg.train.lr_g == 1.0
    assert cfg.seed == 3 and cfg.train.amp is False


def test_round_trip_through_dict_and_yaml(tmp_path):
    cfg = load_config(None, ["model.latent_dim=12", "data.name=cifar10"])
    assert config_from_dict(to_dict(cfg)) == cfg
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.iteratons=5"], "unknown config key 'train.iteratons'"),
        (["bogus=1"], "unknown config key 'bogus'"),
        (["train.iterations=abc"], "'train.iterations' expects int"),
        (["train.iterations=1.5"], "'train.iterations' expects int"),
        (["train.iterations=true"], "'train.iterations' expects int"),
        (["train.iterations=0"], "'train.iterations' must be >= 1"),
        (["train.batch_size=-4"], "'train.batch_size' must be >= 1"),
        (["train.loss=wgan"], "'train.loss' must be one of"),
        (["train.amp=3"], "'train.amp' expects bool"),
        (["train=5"], "section 'train' must be a mapping"),
        (["noequals"], "not of the form"),
        (["distill.residual=true"], "'distill.residual' was replaced by distill.space: hybrid"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        load_config(None, overrides)
    assert "\n" not in str(info.value)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listy)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model:\n  widht: 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'model.widht'"):
        load_config(unknown)


def test_resolve_makes_every_derived_distill_setting_concrete():
    derived = ("init", "outer_loop", "inner_loop", "optimizer", "lr", "real_batch", "grad_mode")
    latent = resolve(load_config(None, ["distill.ipc=10"]), "cpu").distill
    assert [getattr(latent, k) for k in derived] == ["real", 10, 50, "adam", 0.01, 64, "loop"]
    pixel = resolve(load_config(None, ["distill.space=pixel", "distill.objective=dm",
                                       "distill.ipc=1"]), "cuda").distill  # fmt: skip
    assert [getattr(pixel, k) for k in derived] == ["noise", 1, 1, "sgd", 1.0, 256, "vmap"]
    given = ["distill.init=normal", "distill.outer_loop=3", "distill.inner_loop=4",
             "distill.optimizer=sgd", "distill.lr=0.5", "distill.real_batch=7",
             "distill.grad_mode=vmap"]  # fmt: skip
    kept = resolve(load_config(None, given), "cpu")
    assert [getattr(kept.distill, k) for k in derived] == ["normal", 3, 4, "sgd", 0.5, 7, "vmap"]
    assert resolve(kept, "cuda") == kept  # resolving twice changes nothing


def test_resolve_refuses_settings_that_contradict_each_other():
    for overrides, message in (
        (["distill.space=pixel", "distill.init=truncated"], "is for latent space"),
        (["distill.space=latent", "distill.init=noise"], "is for pixel space"),
        (["distill.objective=dm", "distill.dm_weight=1"], "dm_weight"),
        (["distill.dm_layers=true"], "dm_layers"),
        (["distill.pool_size=2", "distill.ipc=10"], "pool_size"),
    ):
        with pytest.raises(ConfigError, match=message):
            resolve(load_config(None, overrides), "cpu")


@pytest.mark.parametrize(
    ("saved", "space"),
    [
        ({"space": "latent", "residual": True}, "hybrid"),
        ({"space": "latent", "residual": False}, "latent"),
        ({"space": "pixel", "residual": True}, "pixel"),
    ],
)
def test_a_saved_config_with_the_replaced_residual_key_loads_as_its_space(saved, space):
    data = to_dict(Config())
    data["distill"] = {**data["distill"], **saved}
    assert config_from_dict(data).distill.space == space
