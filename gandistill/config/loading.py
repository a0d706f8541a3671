"""Configs in and out: YAML files and ``--set`` overrides to a checked :class:`Config`, configs
to plain dicts and YAML, and the comparison that refuses to resume a run under other settings.

Unknown keys and wrong types are rejected with a :class:`~gandistill.errors.ConfigError` naming
the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any

import yaml

from gandistill.config.schema import Config
from gandistill.errors import ConfigError

INT64 = 2**63  # ints reach torch as int64 (seeds, sizes); beyond that it fails with an overflow


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _check_value(name: str, value: Any, tp: Any, meta: typing.Mapping) -> Any:
    """Type-check (and widen int to float) one value; apply ``choices``/``min``/``max`` rules.
    A float must be finite (NaN passes every comparison) and an int must fit in 64 bits."""
    if tp is float and isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-5 (no dot) as a string
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:  # an int of hundreds of digits
            raise ConfigError(f"config key '{name}' must be a finite number, got {value}") from None
    ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(
            f"config key '{name}' expects {tp.__name__}, got {type(value).__name__} {value!r}"
        )
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"config key '{name}' must be a finite number, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"config key '{name}' must be one of {list(choices)}, got {value!r}")
    low = meta.get("min")
    if low is not None and value < low:
        raise ConfigError(f"config key '{name}' must be >= {low}, got {value!r}")
    high = meta.get("max")
    if high is not None and value > high:
        raise ConfigError(f"config key '{name}' must be <= {high}, got {value!r}")
    below = meta.get("below")
    if below is not None and value >= below:
        raise ConfigError(f"config key '{name}' must be < {below}, got {value!r}")
    if tp is int and not -INT64 <= value < INT64:
        raise ConfigError(f"config key '{name}' must fit in 64 bits, got {value!r}")
    return value


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) mapping, rejecting unknown keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = f"section '{prefix.rstrip('.')}'" if prefix else "the config"
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if f"{prefix}{key}" in REPLACED_KEYS:
            raise ConfigError(f"config key '{prefix}{key}' {REPLACED_KEYS[prefix + key]}")
        if key not in fields:
            raise ConfigError(f"unknown config key '{prefix}{key}' (known: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(prefix + name, value, tp, fields[name].metadata)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config (YAML- and ``weights_only``-safe)."""
    return dataclasses.asdict(cfg)


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Apply ``section.key=value`` strings to a raw config mapping (values parsed as YAML)."""
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form section.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, ValueError):  # ValueError: an int beyond Python's digit limit
            value = raw
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {} if child is None else child
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
            node[part] = child
            node = child
        node[leaf] = value
    return data


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, turning every failure into a one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a YAML text file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"malformed YAML in {path}{where}") from None
    except ValueError:  # e.g. an int beyond Python's digit limit
        raise ConfigError(f"malformed YAML in {path} (a value it cannot hold)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Load a :class:`Config` from an optional YAML file plus ``--set`` overrides."""
    data = read_yaml(path) if path is not None else {}
    return from_dict(Config, apply_overrides(data, overrides))


def config_from_dict(data: dict) -> Config:
    """Rebuild a :class:`Config` saved with a checkpoint (one saved before a key was replaced
    is read as that key's replacement: see :func:`migrate`)."""
    return from_dict(Config, migrate(data))


# keys that a user's config may no longer hold, and what took their place
REPLACED_KEYS = {
    "distill.residual": "was replaced by distill.space: hybrid (latents plus a per-image pixel "
    "residual); space latent optimises latents alone",
}


def migrate(data: dict) -> dict:
    """A saved config with its replaced keys turned into what replaced them: ``distill.residual:
    true`` in latent space is ``space: hybrid``, ``false`` is plain ``latent``."""
    distill = data.get("distill") if isinstance(data, dict) else None
    if not isinstance(distill, dict) or "residual" not in distill:
        return data
    distill = dict(distill)
    if distill.pop("residual") and distill.get("space", "latent") == "latent":
        distill["space"] = "hybrid"
    else:
        distill.setdefault("space", "latent")
    return {**data, "distill": distill}


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def lookup(data: typing.Mapping, dotted: str) -> Any:
    """The value of a dotted key (``distill.ipc``) in a nested config dict."""
    for part in dotted.split("."):
        data = data[part]
    return data


def check_unchanged(
    saved: dict, cfg: Config, keys: typing.Iterable[str], where: str, action: str = "resume"
) -> None:
    """Refuse to ``action`` (resume, continue) a run whose saved config (dict) differs from
    ``cfg`` in ``keys``.

    Raises:
        ConfigError: naming the first differing key, both values and ``where`` the run lies
            (e.g. ``saved in set.state.pt``).
        KeyError, TypeError: ``saved`` lacks a key (a damaged file; the caller says which).
    """
    keys = tuple(keys)
    theirs, mine = [lookup(saved, key) for key in keys], to_dict(cfg)
    for key, there in zip(keys, theirs, strict=True):
        now = lookup(mine, key)
        if there != now:
            raise ConfigError(
                f"cannot {action}: '{key}' differs from the run {where} ({there!r} there, "
                f"{now!r} now)"
            )
