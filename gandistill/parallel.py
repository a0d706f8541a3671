"""Several processes on ``ignite.distributed``: launching, rank helpers and one-line failures.

``launch(fn, *args, nproc_per_node=N)`` spawns ``N`` workers through ``idist.Parallel`` (or, when
started by ``torchrun``, joins the group its environment describes) and calls
``fn(local_rank, *args)`` in each. Inside, :func:`rank`, :func:`world_size` and the collectives
below are plain calls that do nothing in a one-process run, so the trainers have one code path.

Failures: a worker that raises a :class:`~gandistill.errors.GandistillError` writes its one-line
message to a file the launcher reads, and exits with status 2; the launcher re-raises the
lowest rank's message, so the CLI prints one line. A worker that dies (killed, out of memory)
takes the others down through ``torch.multiprocessing`` and the launcher raises
:class:`WorkerDied`; collectives time out after ``timeout_minutes`` instead of hanging forever.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from torch import distributed as dist

from gandistill.defaults import BACKEND, NNODES, NODE_RANK, NPROC_PER_NODE
from gandistill.errors import EXIT_USER_ERROR, ConfigError, GandistillError, Interrupted
from gandistill.runtime import local_gpu

BACKENDS = ("auto", "gloo", "nccl")
DEFAULT_TIMEOUT_MINUTES = 30.0  # a collective waits this long for a dead or stuck peer
_ERROR_FILE = "rank{rank}.err"
_INTERRUPT_FILE = "interrupted"
# what a collective raises when a peer is gone (gloo, nccl) or stuck past the timeout
_LOST_PEER = ("closed by peer", "reset by peer", "Broken pipe", "timed out", "Timeout")


class WorkerDied(GandistillError):
    """A worker process exited without finishing (killed, crashed): the run stopped."""


def rank() -> int:
    return idist.get_rank()


def world_size() -> int:
    return idist.get_world_size()


def is_main() -> bool:
    """Rank 0: the process that logs, shows progress and writes files."""
    return idist.get_rank() == 0


def barrier() -> None:
    if idist.get_world_size() > 1:
        idist.barrier()


def all_sum_(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (no-op in one process)."""
    if idist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_mean(values: dict[str, float]) -> dict[str, float]:
    """The mean over ranks of each value (one collective for the whole dict)."""
    if idist.get_world_size() == 1 or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=idist.device())
    all_sum_(t)
    t /= idist.get_world_size()
    return dict(zip(values, t.tolist(), strict=True))


def any_rank(flag: bool) -> bool:
    """True when ``flag`` is true on any rank, so all ranks take the same branch."""
    if idist.get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=idist.device())
    return bool(all_sum_(t).item() > 0)


def from_main(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every rank (decisions that depend on rank 0's clock)."""
    if idist.get_world_size() == 1:
        return flag
    return bool(idist.broadcast(torch.tensor([int(flag)], device=idist.device()), src=0).item())


def main_only(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on rank 0 only (writes); the others wait for it. A user error on
    rank 0 is raised on every rank, so no rank waits for a peer that has stopped."""
    error, result = None, None
    if is_main():
        try:
            result = fn(*args, **kwargs)
        except GandistillError as exc:
            error = exc
    if from_main(error is not None) and error is None:
        raise GandistillError("rank 0 stopped with an error")
    if error is not None:
        raise error
    return result


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. training and caching a classifier), then the others,
    which then find its files instead of writing the same ones at the same time."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def class_share(num_classes: int) -> range:
    """The contiguous block of classes this rank distils (the Distiller refuses more ranks than
    classes)."""
    n, r = idist.get_world_size(), idist.get_rank()
    lo, extra = divmod(num_classes, n)
    start = r * lo + min(r, extra)
    return range(start, start + lo + (1 if r < extra else 0))


def resolve_backend(backend: str, device: str) -> str:
    """``auto``: nccl for CUDA runs (when built with it), gloo otherwise."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
    cuda = device != "cpu" and torch.cuda.is_available()
    if backend == "auto":
        return "nccl" if cuda and dist.is_nccl_available() else "gloo"
    if backend == "nccl" and not cuda:
        raise ConfigError("backend 'nccl' needs CUDA devices; use gloo on CPU")
    return backend


def _under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or (
        int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ
    )


def free_port() -> int:
    """A TCP port on this machine that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, fn: Callable, args: tuple, device: str, error_dir: str | None) -> None:
    """Runs ``fn`` in a worker; user errors become a message file and exit status 2."""
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores, as torchrun does, not oversubscribe
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // idist.get_nproc_per_node()))
    if device != "cpu" and torch.cuda.is_available():  # one GPU per process, by local rank
        torch.cuda.set_device(local_gpu(local_rank))
    status = 0
    try:
        fn(local_rank, *args)
    except GandistillError as exc:
        if error_dir is not None:
            Path(error_dir, _ERROR_FILE.format(rank=idist.get_rank())).write_text(str(exc))
        elif is_main():  # under torchrun: the ranks agree on user errors; rank 0 says it
            print(f"gandistill: error: {exc}", file=sys.stderr)
        status = EXIT_USER_ERROR
    except Interrupted as exc:  # torch.multiprocessing would swallow a KeyboardInterrupt
        if is_main():
            if error_dir is not None:
                text = f"{exc.signum}\n{exc.iteration}\n{exc.checkpoint}"
                Path(error_dir, _INTERRUPT_FILE).write_text(text)
            else:
                print(f"gandistill: {exc}", file=sys.stderr)
        status = 128 + exc.signum
    # The trainers' DDP wrappers hold the process group and sit in reference cycles (engine and
    # handlers), so they outlive ``fn``. Left to interpreter teardown, their gloo group is
    # destroyed after Python is half gone, which can abort a worker whose run succeeded
    # ("terminate called without an active exception", SIGABRT). Free them here.
    gc.collect()
    if status:
        idist.finalize()  # ignite's spawn wrapper only finalizes when ``fn`` returns
        sys.exit(status)


def _check_group(nproc_per_node: int, nnodes: int, node_rank: int, master_addr: str | None) -> None:
    """Reject process counts and node settings that cannot form a group."""
    if nproc_per_node < 1 or nnodes < 1:
        raise ConfigError("--nproc-per-node and --nnodes must be at least 1")
    if not 0 <= node_rank < nnodes:
        raise ConfigError(f"--node-rank must lie in 0..{nnodes - 1}")
    if nnodes > 1 and not master_addr:
        raise ConfigError("a run on several nodes needs --master-addr (and --master-port)")


def _join_torchrun(
    fn: Callable, args: tuple, backend: str, device: str, timeout: timedelta
) -> None:
    """Run ``fn`` as this process's worker in the group torchrun's environment describes."""
    idist.initialize(backend, timeout=timeout)
    try:
        _worker(idist.get_local_rank(), fn, args, device, None)
    finally:
        idist.finalize()


@contextmanager
def _signals_for_workers() -> Iterator[None]:
    """While workers run: ignore SIGINT here and pass SIGTERM on to them; then restore."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Ctrl-C reaches every worker of the terminal's process group; each saves and exits 130.
    # Here it must not interrupt the join, or the workers would be killed mid-save. A
    # SIGTERM sent to this process alone is passed on to the workers, which do the same.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, _forward_to_workers)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _spawn(fn: Callable, args: tuple, device: str, **parallel: Any) -> None:
    """Spawn the workers with ``idist.Parallel(**parallel)`` and wait for them; a failure
    becomes one exception (see :func:`launch`)."""
    with tempfile.TemporaryDirectory(prefix="gandistill-ranks-") as error_dir:
        with _signals_for_workers():
            try:
                with idist.Parallel(**parallel) as group:
                    group.run(_worker, fn, args, device, error_dir)
            except torch.multiprocessing.ProcessExitedException as exc:
                _raise_worker_failure(exc, Path(error_dir))
            except torch.multiprocessing.ProcessRaisedException as exc:
                _raise_worker_exception(exc, Path(error_dir))


def launch(
    fn: Callable,
    *args: Any,
    nproc_per_node: int = NPROC_PER_NODE,
    nnodes: int = NNODES,
    node_rank: int = NODE_RANK,
    master_addr: str | None = None,
    master_port: int | None = None,
    backend: str = BACKEND,
    device: str = "auto",
    timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES,
) -> None:
    """Run ``fn(local_rank, *args)`` on every process of the group.

    One process (the default, and no torchrun): ``fn(0, *args)`` runs here, no process group.
    Under ``torchrun``: this process joins the group from its environment. Otherwise
    ``nproc_per_node × nnodes`` workers are spawned (``idist.Parallel``); a single-node run
    picks a free local port unless ``master_port`` is given.

    Raises:
        ConfigError: bad process counts or backend.
        GandistillError: the first (lowest-rank) user error a worker raised.
        WorkerDied: a worker exited without finishing.
        Interrupted: Ctrl-C stopped the workers after they saved their state.
    """
    _check_group(nproc_per_node, nnodes, node_rank, master_addr)
    chosen = resolve_backend(backend, device)
    timeout = timedelta(minutes=timeout_minutes)
    if _under_torchrun():  # the group is in the environment; join it with our timeout
        _join_torchrun(fn, args, chosen, device, timeout)
        return
    if nproc_per_node * nnodes == 1:
        fn(0, *args)
        return
    if nnodes == 1 and master_port is None:
        master_port = free_port()
    _spawn(
        fn,
        args,
        device,
        backend=chosen,
        nproc_per_node=nproc_per_node,
        nnodes=nnodes,
        node_rank=node_rank,
        master_addr=master_addr or "127.0.0.1",
        master_port=master_port,
        timeout=timeout,
    )


def _forward_to_workers(signum: int, frame: object) -> None:
    for child in multiprocessing.active_children():
        os.kill(child.pid, signum)


def _raise_reported(error_dir: Path) -> None:
    """Raise what the workers reported: the lowest rank's user error, or the interruption."""
    messages = sorted(error_dir.glob("rank*.err"), key=lambda p: int(p.stem[4:]))
    if messages:
        raise GandistillError(messages[0].read_text())
    stopped = error_dir / _INTERRUPT_FILE
    if stopped.is_file():
        signum, iteration, checkpoint = stopped.read_text().split("\n", 2)
        raise Interrupted(int(iteration), checkpoint, int(signum))


def _raise_worker_failure(exc: Exception, error_dir: Path) -> None:
    _raise_reported(error_dir)
    code = getattr(exc, "exit_code", None)
    index = getattr(exc, "error_index", "?")
    how = f"was killed by {signal.Signals(-code).name}" if code and code < 0 else f"exited {code}"
    raise WorkerDied(
        f"worker {index} {how}; the run stopped (continue from its checkpoint with --resume)"
    )


def _raise_worker_exception(
    exc: torch.multiprocessing.ProcessRaisedException, error_dir: Path
) -> None:
    """A worker raised something other than a user error: often only the lost contact that a
    peer's failure caused, so the reported error (if any) comes first."""
    _raise_reported(error_dir)  # a peer's user error, not the lost contact it caused
    last = str(exc).strip().splitlines()[-1]
    if any(s in last for s in _LOST_PEER):  # it saw another worker die first
        raise WorkerDied(
            f"worker {exc.error_index} lost contact with the other workers ({last[:200]})"
            "; the run stopped (continue from its checkpoint with --resume)"
        ) from None
    raise WorkerDied(f"worker {exc.error_index} failed: {last}") from None
