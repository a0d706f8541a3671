"""Run-folder locks and durable writes: no run destroys another's work, no write leaves a partial
file or the wrong mode."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import SMOKE, set_args

from gandistill import files
from gandistill import locks as locks_module
from gandistill.config import load_config
from gandistill.errors import ArtifactError
from gandistill.evaluation.report import evaluate_distilled
from gandistill.files import DistilledSet, atomic_save, atomic_write, load_generator_checkpoint
from gandistill.locks import INHERITED, RunInUse, RunLock, lock_path
from gandistill.pipelines.benchmark import run_benchmark
from gandistill.pipelines.quickstart import quickstart

HOLD = """
import sys, time
from gandistill.locks import RunLock
with RunLock(sys.argv[1], folder=True):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(target: Path) -> subprocess.Popen:
    """Another process that takes the lock of ``target`` and keeps it for a minute."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_with_the_holder_named(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        with pytest.raises(RunInUse, match=rf"{run} is in use by pid {proc.pid} since .*; wait"):
            RunLock(run, folder=True).acquire()
        holder = json.loads(lock_path(run, folder=True).read_text())
        assert holder["pid"] == proc.pid and "since" in holder and "host" in holder
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    proc = _holder(run)
    proc.send_signal(signal.SIGKILL)  # no chance to release: the lock file stays behind
    proc.wait()
    assert lock_path(run, folder=True).is_file()
    with RunLock(run, folder=True):
        assert json.loads(lock_path(run, folder=True).read_text())["pid"] == os.getpid()
    assert f"was locked by pid {proc.pid}" in capsys.readouterr().err
    assert not lock_path(run, folder=True).exists()  # released: the file is gone


def test_locks_are_reentrant_in_a_process_and_inherited_by_its_workers(tmp_path):
    out = tmp_path / "set.pt"
    with RunLock(out, folder=False) as outer:
        with RunLock(out, folder=False):  # a pipeline's stage locking what the pipeline holds
            pass
        assert outer.path.is_file()  # the inner release keeps the outer lock
        assert str(outer.path.absolute()) in os.environ[INHERITED]
        code = (
            f"from gandistill.locks import RunLock; RunLock({str(out)!r}, folder=False).acquire()"
        )
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert child.returncode == 0, child.stderr  # a worker of this process may write
    assert str(outer.path.absolute()) not in os.environ.get(INHERITED, "")
    assert not outer.path.exists()


def test_writes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_save({"x": 1}, tmp_path / "a.pt")
        assert path.stat().st_mode & 0o777 == 0o640
        os.umask(0o002)
        atomic_save({"x": 2}, path)  # a replaced file takes the new mode too
        assert path.stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def test_writes_are_flushed_to_disk_before_the_rename(tmp_path, monkeypatch):
    order: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (order.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append("rename"), real_replace(a, b))[1])
    atomic_write(tmp_path / "f.bin", lambda fh: fh.write(b"data"))
    assert order == ["fsync", "rename", "fsync"]  # the file, the rename, then its folder


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, code):
    path = atomic_save({"step": 1}, tmp_path / "checkpoint.pt")

    def fails_half_way(fh):
        fh.write(b"half a checkpoint")
        raise OSError(code, os.strerror(code))

    with pytest.raises(ArtifactError, match=f"cannot write {path}: {os.strerror(code)}"):
        atomic_write(path, fails_half_way)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_crash_before_the_rename_leaves_the_old_complete_file(tmp_path, monkeypatch):
    path = atomic_save({"step": 1}, tmp_path / "checkpoint.pt")

    def crash(src, dst):
        raise KeyboardInterrupt  # the process dies between the write and the rename

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_read_only_folder_ends_in_one_line(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):  # what mkstemp meets in a read-only folder (even as root)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(ArtifactError, match=f"cannot write to {tmp_path}: Read-only file system"):
        atomic_save({}, tmp_path / "a.pt")


def test_lock_file_holds_no_partial_record_after_takeover(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lock_path(run, folder=True).write_text('{"pid": 999999999, "host": "x", "since": 0, "junk')
    with RunLock(run, folder=True):
        json.loads(lock_path(run, folder=True).read_text())  # a whole record, not a mix


def test_a_full_disk_during_a_checkpoint_save_ends_in_one_line(tmp_path, monkeypatch):
    path = atomic_save({"step": 1}, tmp_path / "checkpoint.pt")
    real_fdopen = os.fdopen

    class FullDisk:  # takes 100 bytes, then the disk is full
        def __init__(self, fd, mode):
            self.fh, self.room = real_fdopen(fd, mode), 100

        def write(self, data):
            if len(data) > self.room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(data)
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(files.os, "fdopen", FullDisk)
    with pytest.raises(ArtifactError, match=f"cannot write {path}: No space left on device"):
        atomic_save({"step": 2, "weights": torch.zeros(10_000)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


# --- two runs on one folder, through the CLI ---------------------------------------------------


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "gandistill", *map(str, args)]


def _start_and_pause(cmd: list[str], held: Path) -> subprocess.Popen:
    """Start ``cmd`` and stop it (SIGSTOP) once it holds the lock ``held``: it keeps the lock
    for as long as the test needs, whatever the machine's speed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while f'"pid": {proc.pid},' not in (held.read_text() if held.is_file() else ""):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGSTOP)
    return proc


def _refused(cmd: list[str], holder: subprocess.Popen) -> None:
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
    assert f"is in use by pid {holder.pid} since " in lines[0], lines[0]


def _finish(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr


def _train(run: Path, cache: Path, *flags: str) -> list[str]:
    sets = [f"cache_dir={cache}", "train.iterations=12", "train.checkpoint_every=4"]
    sets += ["train.eval_samples_per_class=0", "train.progress=false"]
    return _cli("train", "--config", SMOKE, "--run-dir", run, *set_args(sets), *flags)


def test_a_second_train_on_a_busy_folder_is_refused_and_destroys_nothing(tmp_path):
    run = tmp_path / "run"
    first = _start_and_pause(_train(run, tmp_path / "cache"), run / ".lock")
    _refused(_train(run, tmp_path / "cache", "--overwrite"), first)  # would delete first's files
    _refused(_train(run, tmp_path / "cache", "--resume"), first)
    _finish(first)
    load_generator_checkpoint(run / "generator.pt")
    assert not (run / ".lock").exists()


def test_a_lock_left_by_kill_9_is_taken_over_and_a_resume_beside_a_live_run_refused(tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    first = _start_and_pause(_train(run, cache), run / ".lock")
    first.send_signal(signal.SIGKILL)  # the lock file stays behind, its flock goes
    first.wait()
    assert (run / ".lock").is_file()
    resumed = _train(run, cache, "--overwrite")
    second = _start_and_pause(resumed, run / ".lock")
    _refused(_train(run, cache, "--resume"), second)
    second.send_signal(signal.SIGCONT)
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr
    assert f"was locked by pid {first.pid}" in stderr and "taking it over" in stderr
    load_generator_checkpoint(run / "generator.pt")


def test_a_second_distillation_into_one_output_is_refused(tmp_path):
    out = tmp_path / "sets" / "set.pt"
    sets = [f"cache_dir={tmp_path / 'cache'}", "distill.max_iterations=3", "distill.progress=false"]
    cmd = _cli("distill", "--config", SMOKE, "--space", "pixel", "--out", out, *set_args(sets))
    first = _start_and_pause(cmd, lock_path(out, folder=False))
    _refused([*cmd, "--overwrite"], first)
    _finish(first)
    assert DistilledSet.load(out).images_uint8.shape[0] > 0
    assert sorted(p.name for p in out.parent.iterdir() if p.is_file()) == ["set.pt"]


def test_evaluate_benchmark_and_quickstart_refuse_a_busy_folder(tmp_path):
    folder = tmp_path / "busy"
    holder = _holder(folder)
    try:
        cfg = load_config(SMOKE, [f"cache_dir={tmp_path / 'cache'}", f"run_dir={folder}"])
        for call in (
            lambda: quickstart(cfg, say=lambda line: None),
            lambda: run_benchmark(cfg, folder, ipcs=[1], methods=["random"], seeds=1),
            lambda: evaluate_distilled(tmp_path / "missing.pt", out=folder),
        ):
            with pytest.raises(RunInUse, match=f"in use by pid {holder.pid}"):
                call()
    finally:
        holder.kill()
        holder.wait()


def test_an_exported_image_folder_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
        out = tmp_path / "set"
        files.export_images(images, torch.tensor([0, 0, 1, 1]), ["a", "b"], "imagefolder", out)
        assert out.stat().st_mode & 0o777 == 0o750
        assert (out / "a" / "00000.png").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_device_or_folder_is_never_replaced_by_a_write(tmp_path):
    with pytest.raises(ArtifactError, match="it is not a regular file"):
        atomic_save({}, os.devnull)  # as root, a rename would replace the device node
    assert Path(os.devnull).is_char_device()
    with pytest.raises(ArtifactError, match="it is a folder"):
        atomic_save({}, tmp_path)


def test_a_file_system_without_locks_runs_unguarded_with_a_note(tmp_path, monkeypatch, capsys):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(locks_module.fcntl, "flock", no_locks)
    with RunLock(tmp_path / "run", folder=True):
        pass
    assert "cannot lock" in capsys.readouterr().err
    assert not lock_path(tmp_path / "run", folder=True).exists()
