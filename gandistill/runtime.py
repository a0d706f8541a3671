"""Run-level helpers: device choice, seeds derived per step, library versions, Ctrl-C."""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import signal
import threading
from contextlib import nullcontext
from importlib import metadata

import ignite.distributed as idist
import torch

from gandistill.errors import ConfigError


def local_gpu(local_rank: int) -> int:
    """The GPU index of a process in a run on several: one GPU per local rank, wrapping round
    when there are more processes than GPUs."""
    return local_rank % torch.cuda.device_count()


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when present; an explicit CUDA device must exist. In a run on several
    processes each takes the GPU of its local rank."""
    if spec == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise ConfigError(f"unknown device '{spec}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device '{spec}' (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{spec}' requested but CUDA is not available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device '{spec}' does not exist ({torch.cuda.device_count()} GPUs)")
    if device.type == "cuda" and idist.get_world_size() > 1:  # one GPU per process
        device = torch.device("cuda", local_gpu(idist.get_local_rank()))
    if device.type == "cpu":
        reuse_freed_memory()
    return device


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# set by a user who tunes the allocator: then it is left alone
_ALLOCATOR_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD")
_allocator_tuned = False


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the process's next allocations instead of
    handing it back to the system (no trimming, no per-allocation ``mmap``); returns whether it
    was set (once per process; a no-op off glibc or when the environment tunes the allocator).

    A CPU run allocates and frees feature maps of hundreds of MB every step; by default each
    comes from a fresh ``mmap`` whose pages fault in one by one, which took about 40% of a
    distribution-matching forward pass here (docs/benchmarks.md). The price: the
    process keeps its peak memory until it exits. :func:`resolve_device` calls it for the CPU.
    """
    global _allocator_tuned
    if _allocator_tuned or any(key in os.environ for key in _ALLOCATOR_ENV):
        return _allocator_tuned
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1 and libc.mallopt(_M_MMAP_THRESHOLD, -1) == 1
    except (OSError, AttributeError):
        return False
    _allocator_tuned = done
    return done


def available_memory() -> int:
    """Bytes of memory a new allocation can take now: Linux's ``MemAvailable``, else the
    physical memory (the yardstick of the checks that refuse absurd sizes up front)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return 2**63  # unknown: refuse nothing


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


def format_bytes(n: float) -> str:
    """``512 B``, ``12.3 KiB``, ``3.6 MiB``, ``1.2 GiB``: binary units, as every report and table
    states sizes."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def format_seconds(seconds: float) -> str:
    """``7m05s`` (or ``42s`` under a minute) for progress lines and summaries."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


GRACEFUL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptFlag:
    """While entered, Ctrl-C (SIGINT) and SIGTERM (what ``kill`` and job schedulers send) set
    :attr:`requested` (and :attr:`signum`) instead of stopping the process.

    A training loop checks the flag between iterations, so it stops where its state is
    consistent and can save it. A second signal acts at once (Ctrl-C raises
    ``KeyboardInterrupt``, SIGTERM ends the process). Outside the main thread (where Python
    cannot install signal handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum = int(signal.SIGINT)
        self._previous: dict[int, object] = {}

    def __enter__(self) -> InterruptFlag:
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            for sig in GRACEFUL_SIGNALS:
                previous = signal.signal(sig, self._handle)
                self._previous[sig] = signal.SIG_DFL if previous is None else previous
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested, self.signum = True, signum
        for sig, previous in self._previous.items():  # the next signal is not deferred
            signal.signal(sig, previous)

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}


def amp_context(device: torch.device, enabled: bool):
    """bfloat16 autocast where it pays: CUDA, and CPUs with native bf16 (AVX512-BF16/AMX); a
    no-op context elsewhere or when not ``enabled``."""
    fast_cpu = device.type == "cpu" and torch.cpu._is_avx512_bf16_supported()
    if enabled and (device.type == "cuda" or fast_cpu):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
