"""Run-level helpers: device choice, seeds derived per step, library versions."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata

import torch

from gandistill.errors import ConfigError


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when present; an explicit CUDA device must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"unknown device '{spec}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{spec}' requested but CUDA is not available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device '{spec}' does not exist ({torch.cuda.device_count()} GPUs)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device '{spec}' (use auto, cpu, cuda or cuda:N)")
    return device


def step_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator seeded from ``seed`` and step keys (e.g. the iteration).

    Every random draw of an iteration comes from its own generator, so a run resumed at any
    iteration draws exactly what an uninterrupted run would have drawn.
    """
    digest = hashlib.blake2b(repr((seed, *keys)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in (
        "gandistill",
        "torch",
        "torchvision",
        "pytorch-ignite",
        "torch-fidelity",
        "numpy",
        "scikit-learn",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def format_seconds(seconds: float) -> str:
    """``7m05s`` (or ``42s`` under a minute) for progress lines and summaries."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
