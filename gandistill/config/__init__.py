"""Typed configuration: one dataclass per stage, loaded from YAML and ``--set`` overrides.

The dataclasses and their checks live in :mod:`~gandistill.config.schema`, reading, writing and
comparing configs in :mod:`~gandistill.config.loading`, the values that ``auto`` stands for in
:mod:`~gandistill.config.derived`; the names every stage uses are importable from here.
"""

from gandistill.config.derived import default_loops, resolve, uses_generator
from gandistill.config.loading import (
    apply_overrides,
    check_unchanged,
    config_from_dict,
    dump_yaml,
    from_dict,
    load_config,
    lookup,
    read_yaml,
    to_dict,
)
from gandistill.config.schema import (
    GENERATOR_SPACES,
    SPACES,
    ClassifierConfig,
    Config,
    DataConfig,
    DistillConfig,
    EvalConfig,
    MatchConfig,
    ModelConfig,
    TrainConfig,
)

__all__ = [
    "GENERATOR_SPACES",
    "SPACES",
    "ClassifierConfig",
    "Config",
    "DataConfig",
    "DistillConfig",
    "EvalConfig",
    "MatchConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "check_unchanged",
    "config_from_dict",
    "default_loops",
    "dump_yaml",
    "from_dict",
    "load_config",
    "lookup",
    "read_yaml",
    "resolve",
    "to_dict",
    "uses_generator",
]
