"""What a benchmark runs: the methods and base overrides of the preset
``gandistill/presets/benchmark.yaml``, the base config, the evaluation protocol of every row, and
the checks of the ``--ipc`` and ``--methods`` lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

from gandistill.config import (
    Config,
    EvalConfig,
    apply_overrides,
    from_dict,
    load_config,
    read_yaml,
    to_dict,
    uses_generator,
)
from gandistill.coreset.baselines import METHODS as CORESET_METHODS
from gandistill.errors import ConfigError
from gandistill.evaluation.options import PROFILES as REPORT_PROFILES
from gandistill.evaluation.options import apply_profile
from gandistill.files import GeneratorCheckpoint

# package data, so that a non-editable install finds it too (pyproject.toml: package-data)
PRESET = "benchmark.yaml"


def _read_preset() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The base overrides and the method table of the preset file, checked for their shape."""
    with resources.as_file(resources.files("gandistill") / "presets" / PRESET) as path:
        data = read_yaml(path)

    def overrides(value: object, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
            raise ConfigError(f"{path}: '{where}' must be a list of section.key=value overrides")
        return tuple(value)

    methods = data.get("methods")
    if set(data) != {"base", "methods"} or not isinstance(methods, dict):
        raise ConfigError(f"{path} must map 'base' to a list and 'methods' to a mapping")
    clash = set(methods) & set(CORESET_METHODS)
    if clash:
        raise ConfigError(f"{path}: {', '.join(sorted(clash))} is already a coreset method")
    table = {str(name): overrides(value, f"methods.{name}") for name, value in methods.items()}
    return overrides(data["base"], "base"), table


# DEFAULT_OVERRIDES: before the user's --set; OPTIMISED_METHODS: the overrides of each optimised
# method, after the user's --set
DEFAULT_OVERRIDES, OPTIMISED_METHODS = _read_preset()
# sets drawn from a generator (gandistill sample --ipc): the trained one (--generator), and one
# distilled into (--distilled-generator, made by gandistill distill-generator)
GENERATOR_SAMPLE, DISTILLED_GENERATOR = "generator-sample", "distilled-generator"
SAMPLED_METHODS = (GENERATOR_SAMPLE, DISTILLED_GENERATOR)
METHODS = (*CORESET_METHODS, *OPTIMISED_METHODS, *SAMPLED_METHODS)
PROFILES = ("quick", "cpu", "full")
SPLITS = ("test", "validation")  # what a benchmark scores on (--split)


def parse_ipcs(text: str) -> list[int]:
    """``"1,10,50"`` → ``[1, 10, 50]``; anything else is a :class:`ConfigError`."""
    try:
        ipcs = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--ipc takes comma-separated integers >= 1, got '{text}'") from None
    if not ipcs or min(ipcs) < 1 or len(set(ipcs)) != len(ipcs):
        raise ConfigError(f"--ipc takes distinct integers >= 1, got '{text}'")
    return ipcs


def needs_generator(method: str) -> bool:
    """Whether ``method`` needs the trained generator (``--generator``): the latent and hybrid
    methods decode through it, a pixel method with a ``best_of_k`` start draws its start from it,
    ``generator-sample`` is drawn from it."""
    if method == GENERATOR_SAMPLE:
        return True
    if method not in OPTIMISED_METHODS:
        return False
    made = from_dict(Config, apply_overrides(to_dict(Config()), OPTIMISED_METHODS[method]))
    return uses_generator(made.distill)


def parse_methods(text: str) -> list[str]:
    """``"random,latent-dm"`` → the list, checked against :data:`METHODS`."""
    methods = [m.strip() for m in text.split(",")]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or len(set(methods)) != len(methods):
        what = f"unknown method(s) {', '.join(unknown)}" if unknown else "repeated method"
        raise ConfigError(f"{what} in --methods (known: {', '.join(METHODS)})")
    return methods


def benchmark_config(
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    generator: GeneratorCheckpoint | None = None,
) -> Config:
    """The base config: ``config`` (else the generator's run config, else the defaults) with
    :data:`DEFAULT_OVERRIDES` and then ``overrides`` applied."""
    overrides = [*DEFAULT_OVERRIDES, *overrides]
    if config is None and generator is not None:  # as `gandistill distill`: same data, classifier
        return from_dict(Config, apply_overrides(to_dict(generator.config), overrides))
    return load_config(config, overrides)


def protocol(ec: EvalConfig, profile: str, arch: str | None = None) -> EvalConfig:
    """The evaluation protocol of a row scored by ``arch`` (default: ``ec.arch``): ``full`` is
    ``ec``; ``quick`` caps it; ``cpu`` caps it for the networks of
    :data:`~gandistill.evaluation.options.HEAVY_ARCHS` alone."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}' (known: {', '.join(PROFILES)})")
    # the report's profile, except that every row keeps the config's number of networks
    prof = REPORT_PROFILES[profile]
    heavy = None if prof.heavy is None else replace(prof.heavy, n_models=None)
    return apply_profile(ec, replace(prof, n_models=None, heavy=heavy), arch or ec.arch)
