"""The registries behind the extension points: names refused twice, and every name the config
accepts has an implementation."""

import dataclasses

import pytest
import torch

from gandistill.config import DistillConfig
from gandistill.config.derived import LATENT_INIT_CHOICES, PIXEL_INIT_CHOICES
from gandistill.distillation.init import LATENT_INITS, PIXEL_INITS, REAL_INITS, Start
from gandistill.distillation.objectives import OBJECTIVES, register_objective
from gandistill.distillation.step import TrajectoryStep
from gandistill.models import Generator
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
    # trajectory matching runs a student, not a matching network: a step of its own
    assert set(OBJECTIVES) | {"mtt"} == set(_choices("objective"))
    assert "mtt" not in OBJECTIVES and callable(TrajectoryStep)
    coresets = set(REAL_INITS) - {"real"}  # they start as "real" once their images are chosen
    assert set(PIXEL_INITS) | coresets == set(PIXEL_INIT_CHOICES)
    assert set(LATENT_INITS) | coresets == set(LATENT_INIT_CHOICES)
    assert set(PIXEL_INIT_CHOICES) | set(LATENT_INIT_CHOICES) | {"auto"} == set(_choices("init"))


def test_the_latent_scale_shrinks_the_prior_draws_of_the_latent_inits():
    """``distill.latent_scale`` (ψ) multiplies the ``normal`` init's draws; ψ = 1 leaves them."""
    g = Generator(num_classes=3, latent_dim=8, width=4)
    labels = torch.arange(3).repeat_interleave(2)

    def draw(psi: float) -> torch.Tensor:
        dc = dataclasses.replace(DistillConfig(), ipc=2, latent_scale=psi)
        gen = torch.Generator().manual_seed(0)
        start = Start(dc, None, labels, None, gen, torch.device("cpu"), g, lambda: None)
        return LATENT_INITS["normal"](start)

    plain = draw(1.0)
    assert plain.shape == (6, 8)
    assert torch.equal(plain, torch.randn(6, 8, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(draw(0.3), 0.3 * plain)
