"""Several processes (issue 6): 2-process gloo runs on CPU, through the CLI as a user runs them.

A 2-process training run and a 2-process distillation finish and write files that a 1-process
run loads; only rank 0 writes (one event file); resumes cross world sizes; a worker's user error
is one line and a dead worker stops the run instead of hanging it.
"""

import contextlib
import gc
import os
import platform
import signal
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
from conftest import SMOKE, set_args
from ignite.engine import Events

from gandistill.config import load_config
from gandistill.distillation import Distiller, state_path
from gandistill.errors import ConfigError, GandistillError, Interrupted
from gandistill.files import DistilledSet, load_generator_checkpoint
from gandistill.gan.checkpoints import STATE_DIR
from gandistill.gan.trainer import train
from gandistill.parallel import WorkerDied, _worker, class_share, free_port, launch

DISTILL_ITERATIONS = 4


def _cli(cwd: Path, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gandistill", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def _overrides(tmp: Path) -> list[str]:
    return [f"cache_dir={tmp}", "train.eval_samples_per_class=0"]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    """A smoke training run on 2 processes; its run folder."""
    tmp = tmp_path_factory.mktemp("ddp")
    run = tmp / "run"
    proc = _cli(
        tmp,
        "train",
        "--config",
        SMOKE,
        "--run-dir",
        run,
        *set_args(_overrides(tmp)),
        "--nproc-per-node",
        2,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 processes" in proc.stdout
    return run


def test_two_process_training_loads_in_one(two_process_run):
    ckpt = load_generator_checkpoint(two_process_run / "generator.pt")
    assert ckpt.iteration == 4
    payload = torch.load(two_process_run / "generator.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in payload["state_dict"])  # no DDP prefixes
    # rank 0 alone writes: one event file, the configured checkpoints
    assert len(list((two_process_run / "tb").glob("events.out.tfevents.*"))) == 1
    steps = sorted(p.name for p in (two_process_run / STATE_DIR).glob("*.pt"))
    assert steps == ["checkpoint_2.pt", "checkpoint_4.pt"]


def test_training_resumes_on_another_world_size(two_process_run, tmp_path):
    """A 2-process run cut after iteration 2 finishes on 1 process, and the reverse."""
    cfg = load_config(SMOKE, [f"run_dir={tmp_path / 'run'}", *_overrides(tmp_path)])
    src = two_process_run / STATE_DIR / "checkpoint_2.pt"
    (tmp_path / "run" / STATE_DIR).mkdir(parents=True)
    (tmp_path / "run" / STATE_DIR / src.name).write_bytes(src.read_bytes())
    result = train(cfg, resume=True)  # 2 → 1
    assert result.iterations == 4
    load_generator_checkpoint(result.generator_path)
    # 1 → 2: cut the 1-process run back to iteration 2, resume on 2 processes
    (tmp_path / "run" / STATE_DIR / "checkpoint_4.pt").unlink()
    (tmp_path / "run" / "generator.pt").unlink()
    proc = _cli(
        tmp_path,
        "train",
        "--config",
        SMOKE,
        "--run-dir",
        tmp_path / "run",
        *set_args(_overrides(tmp_path)),
        "--resume",
        "--nproc-per-node",
        2,
    )
    assert proc.returncode == 0, proc.stderr
    assert load_generator_checkpoint(tmp_path / "run" / "generator.pt").iteration == 4


def test_distilling_into_a_generator_runs_on_two_processes(two_process_run, tmp_path):
    """distill-generator continues the 2-process run on 2 processes: its pool trains on each
    process's real batch, and the result (rank 0's) records its source."""
    out = tmp_path / "distilled"
    proc = _cli(
        tmp_path,
        "distill-generator",
        "--generator",
        two_process_run / "generator.pt",
        "--run-dir",
        out,
        *set_args(["match.iterations=2", "match.net_width=8"]),
        "--nproc-per-node",
        2,
    )
    assert proc.returncode == 0, proc.stderr
    made = load_generator_checkpoint(out / "generator.pt")
    assert made.iteration == 6 and made.distilled
    assert made.derived_from["iteration"] == 4
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1


def test_torchrun_runs_the_same_training(tmp_path):
    """``torchrun -m gandistill train`` joins the group torchrun made instead of spawning."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port"]
    cmd += [str(free_port()), "-m", "gandistill", "train", "--config", str(SMOKE)]
    cmd += ["--run-dir", str(run), *set_args(_overrides(tmp_path))]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 processes" in proc.stdout
    assert load_generator_checkpoint(run / "generator.pt").iteration == 4
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1


def _distill_overrides(tmp: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        *_overrides(tmp),
        f"distill.max_iterations={DISTILL_ITERATIONS}",
        "distill.grad_clip=1.0",  # clipping's norm spans the ranks
        "distill.latent_penalty=0.1",  # so does the penalty's mean
        "distill.dsa=true",  # per-class draws from the shared generator
        "distill.init=normal",  # no classifier to train
        "distill.eval_every=0",
        "distill.teacher_logits=false",
        # SGD, not the latent default Adam: Adam's first steps are about lr * sign(g), which turns
        # the ranks' different summation order in near-zero gradient entries into lr-sized steps
        "distill.optimizer=sgd",
        *extra,
    ]


def _distill_cfg(tmp: Path, extra: tuple[str, ...] = ()):
    return load_config(SMOKE, _distill_overrides(tmp, extra))


@contextlib.contextmanager
def _worker_threads():
    """Run in-process work on as many threads as each of 2 workers gets: a convolution summed
    over another number of threads rounds differently, and 4 iterations grow that past the
    tolerance of the comparisons below."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_process_set(two_process_run) -> DistilledSet:
    """The reference: the test distillation on one process."""
    gen = two_process_run / "generator.pt"
    with _worker_threads():
        return Distiller(_distill_cfg(two_process_run), generator=gen).run()


def test_two_process_distillation_matches_one(two_process_run, one_process_set, tmp_path):
    """Classes split over 2 ranks give the set of a 1-process run (up to float rounding)."""
    gen, one = two_process_run / "generator.pt", one_process_set
    out = tmp_path / "two.pt"
    args = set_args(_distill_overrides(tmp_path))
    proc = _cli(tmp_path, "distill", "--generator", gen, "--out", out, *args, "--nproc-per-node", 2)
    assert proc.returncode == 0, proc.stderr
    two = DistilledSet.load(out)
    ipc = one.config.distill.ipc
    assert torch.equal(two.labels, torch.arange(10).repeat_interleave(ipc))  # every class, ipc each
    assert two.latents.shape == one.latents.shape
    torch.testing.assert_close(two.latents, one.latents, atol=1e-5, rtol=1e-5)
    assert len(list((tmp_path / "tb" / "two").glob("events.out.tfevents.*"))) == 1


def test_distillation_resumes_on_two_processes(two_process_run, one_process_set, tmp_path):
    """A 1-process distillation stopped by Ctrl-C finishes on 2 processes, where an
    uninterrupted run ends (the optimiser state crosses the change of world size)."""
    gen = two_process_run / "generator.pt"
    out = tmp_path / "set.pt"
    cut = Distiller(_distill_cfg(tmp_path), generator=gen, out=out)

    def ctrl_c(engine):
        cut.interrupt.requested = True

    cut.engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), ctrl_c)
    with pytest.raises(Interrupted), _worker_threads():
        cut.run()
    assert state_path(out).is_file() and not out.exists()
    args = set_args(_distill_overrides(tmp_path))
    proc = _cli(
        tmp_path, "distill", "--generator", gen, "--out", out, *args, "--resume",
        "--nproc-per-node", 2,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not state_path(out).exists()
    whole, resumed = one_process_set, DistilledSet.load(out)
    assert resumed.history[-1]["iteration"] == DISTILL_ITERATIONS
    torch.testing.assert_close(resumed.latents, whole.latents, atol=1e-5, rtol=1e-5)


def test_class_share_partitions_the_classes(monkeypatch):
    import gandistill.parallel as par

    for world in (1, 2, 3, 4, 10):
        monkeypatch.setattr(par.idist, "get_world_size", lambda w=world: w)
        shares = []
        for r in range(world):
            monkeypatch.setattr(par.idist, "get_rank", lambda r=r: r)
            shares.append(list(class_share(10)))
        assert sorted(c for s in shares for c in s) == list(range(10))  # disjoint and complete
        assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced


def test_bad_process_settings_are_one_line(tmp_path):
    proc = _cli(
        tmp_path, "train", "--config", SMOKE, "--run-dir", tmp_path / "r",
        *set_args([*_overrides(tmp_path), "train.batch_size=21"]), "--nproc-per-node", 2,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("gandistill: error: ")
    assert "divide evenly over 2 processes" in proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(ConfigError, match="at least 1"):
        launch(print, nproc_per_node=0)
    with pytest.raises(ConfigError, match="nccl"):
        launch(print, nproc_per_node=2, backend="nccl", device="cpu")


# --- worker failures (module-level functions: spawned workers import them) --------------------


def _user_error_on_rank_1(local_rank: int) -> None:
    if local_rank == 1:
        raise ConfigError("rank 1 found a bad key")
    torch.distributed.barrier()  # rank 0 waits for a peer that has given up


def _killed_on_rank_1(local_rank: int) -> None:
    if local_rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    torch.distributed.barrier()


def test_worker_user_error_reaches_the_launcher():
    with pytest.raises(GandistillError, match="rank 1 found a bad key"):
        launch(_user_error_on_rank_1, nproc_per_node=2, device="cpu", timeout_minutes=1)


def test_dead_worker_stops_the_run():
    # either the kill is seen first or rank 0's collective losing its peer is
    with pytest.raises(WorkerDied, match=r"worker (1 was killed by SIGKILL|0 lost contact)"):
        launch(_killed_on_rank_1, nproc_per_node=2, device="cpu", timeout_minutes=1)


class _Cycle:
    """Stands in for a trainer: its engine's handlers point back at it (a reference cycle)."""

    def __init__(self, made: list) -> None:
        self.me = self
        made.append(weakref.ref(self))


def _leaves_a_cycle(local_rank: int, made: list, error: Exception | None) -> None:
    _Cycle(made)
    if error is not None:
        raise error


@pytest.mark.parametrize("error", [None, ConfigError("bad key")], ids=["finished", "user-error"])
def test_worker_frees_the_run_before_it_exits(error, tmp_path):
    """What the run left in reference cycles (DDP wrappers, which hold the gloo group) is freed
    inside the worker, not at interpreter teardown, where gloo can abort a finished worker."""
    made: list = []
    gc.disable()  # no automatic collection between the run and the check
    try:
        if error is None:
            _worker(0, _leaves_a_cycle, (made, error), "cpu", str(tmp_path))
        else:
            with pytest.raises(SystemExit) as stop:
                _worker(0, _leaves_a_cycle, (made, error), "cpu", str(tmp_path))
            assert stop.value.code == 2
            assert (tmp_path / "rank0.err").read_text() == "bad key"
        assert made and made[0]() is None
    finally:
        gc.enable()


def test_each_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    """Without GPUs here: fake two of them and a four-process run."""
    from gandistill import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [runtime.local_gpu(r) for r in range(4)] == [0, 1, 0, 1]
    monkeypatch.setattr(runtime.idist, "get_world_size", lambda: 4)
    monkeypatch.setattr(runtime.idist, "get_local_rank", lambda: 3)
    assert runtime.resolve_device("cuda") == torch.device("cuda", 1)
    assert runtime.resolve_device("auto") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="does not exist"):
        runtime.resolve_device("cuda:2")
    monkeypatch.setattr(runtime.idist, "get_world_size", lambda: 1)
    assert runtime.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert runtime.resolve_device("cpu") == torch.device("cpu")


_FREED = """
import os, torch
from gandistill.runtime import resolve_device
resolve_device("cpu")
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
x = torch.ones(64 * 2**20)  # 256 MiB
before = rss()
del x
print(before - rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
@pytest.mark.parametrize("tuned_by_user", [False, True])
def test_a_cpu_run_keeps_freed_memory_for_reuse(tuned_by_user):
    """A CPU device makes malloc keep a freed 256 MiB tensor's memory (no fresh pages next step);
    an allocator set in the environment is left as it is, and the memory goes back."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if tuned_by_user:
        env["MALLOC_TRIM_THRESHOLD_"] = "131072"
    out = subprocess.run(
        [sys.executable, "-c", _FREED], env=env, capture_output=True, text=True, check=True
    )
    returned = int(out.stdout)
    if tuned_by_user:
        assert returned > 200 * 2**20
    else:
        assert returned < 16 * 2**20
