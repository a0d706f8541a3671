"""The registries behind the extension points: names refused twice, and every name the config
accepts has an implementation."""

import dataclasses

import pytest

from gandistill.config import DistillConfig
from gandistill.config.derived import LATENT_INIT_CHOICES, PIXEL_INIT_CHOICES
from gandistill.distillation.init import LATENT_INITS, PIXEL_INITS, REAL_INITS
from gandistill.distillation.objectives import OBJECTIVES, register_objective
from gandistill.registry import Registry


def test_a_taken_name_is_refused_and_the_known_names_are_listed():
    reg = Registry("widget", {"b": 2})
    assert reg.register("a")(1) == 1 and reg == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a")(3)
    assert reg["a"] == 1 and reg.known() == "a, b"
    with pytest.raises(ValueError, match="objective 'gm'"):
        register_objective("gm")(lambda *args: None)


def _choices(name: str) -> tuple:
    field = next(f for f in dataclasses.fields(DistillConfig) if f.name == name)
    return field.metadata["choices"]


def test_every_name_the_config_accepts_has_an_implementation():
    assert set(OBJECTIVES) == set(_choices("objective"))
    coresets = set(REAL_INITS) - {"real"}  # they start as "real" once their images are chosen
    assert set(PIXEL_INITS) | coresets == set(PIXEL_INIT_CHOICES)
    assert set(LATENT_INITS) | coresets == set(LATENT_INIT_CHOICES)
    assert set(PIXEL_INIT_CHOICES) | set(LATENT_INIT_CHOICES) | {"auto"} == set(_choices("init"))
