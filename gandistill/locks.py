"""One run per folder: an exclusive lock on a run folder or an output file, taken before anything
is written or deleted there and released on every exit path.

The lock is the kernel's ``flock`` on a small file next to what it guards (``<folder>/.lock``,
or ``.<name>.lock`` beside an output file); the file's text names the holder (pid, host, start
time, command) for the message a second process gets. The kernel drops the ``flock`` when its
process dies however it dies (``kill -9`` included), so a lock file whose ``flock`` can be taken
is stale: it is taken over with a notice.

Within one process a path already held is held again (re-entrant), so a pipeline can lock its
folder and call stages that lock the same one; the worker processes a run spawns inherit their
parent's locks (through the environment), and of the processes of a multi-process run only rank 0
takes a lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from gandistill.errors import ArtifactError, GandistillError
from gandistill.parallel import is_main

LOCK_NAME = ".lock"  # inside a locked folder
INHERITED = "GANDISTILL_HELD_LOCKS"  # lock files held by a parent process, os.pathsep-separated


class RunInUse(GandistillError):
    """Another live process holds the lock of a run folder or output."""


def lock_path(target: str | Path, folder: bool) -> Path:
    """The lock file guarding ``target``: ``<folder>/.lock`` for a folder, ``.<name>.lock`` next
    to a file."""
    target = Path(target)
    return target / LOCK_NAME if folder else target.with_name(f".{target.name}.lock")


def _inherited() -> list[str]:
    return [p for p in os.environ.get(INHERITED, "").split(os.pathsep) if p]


def _set_inherited(paths: list[str]) -> None:
    if paths:
        os.environ[INHERITED] = os.pathsep.join(paths)
    else:
        os.environ.pop(INHERITED, None)


def _holder(path: Path) -> dict:
    """What the lock file at ``path`` says of its holder ({} when unreadable or empty)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    since = holder.get("since")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(since)) if since else "an unknown time"
    here = "" if host == socket.gethostname() else f" on {host}"
    return f"pid {pid}{here} since {when}"


_HELD: dict[Path, list] = {}  # lock file → [fd, depth], the locks this process holds


class RunLock:
    """An exclusive lock on ``target`` (a run folder or an output file), as a context manager.

    Args:
        target: the folder or file to guard; the folder (or the file's folder) is made if
            missing.
        folder: whether ``target`` is a folder (a run folder) or a file (an output).
        what: how the message names the target (default: the path).

    Raises:
        RunInUse: another live process holds it (one line naming that process).
        ArtifactError: the lock file cannot be made (e.g. a read-only folder).
    """

    def __init__(self, target: str | Path, folder: bool, what: str | None = None) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target, folder)
        self.what = what or str(self.target)

    def acquire(self) -> RunLock:
        key = self.path.absolute()
        if key in _HELD:
            _HELD[key][1] += 1
            return self
        if not is_main() or str(key) in _inherited():  # rank 0 or the parent holds it
            _HELD[key] = [None, 1]
            return self
        # a folder made only for the lock goes again if nothing was written into it (a start
        # refused by a later check leaves nothing behind)
        self.made = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot write to {self.path.parent}: {exc.strerror}") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise ArtifactError(f"cannot lock {self.what}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _describe(_holder(self.path))
                raise RunInUse(
                    f"{self.what} is in use by {holder}; wait for it or stop it"
                ) from None
            except OSError as exc:  # a file system without locks (ENOLCK, EOPNOTSUPP)
                print(
                    f"gandistill: note: cannot lock {self.what} ({exc.strerror}); running "
                    "unguarded: start no second run there",
                    file=sys.stderr,
                )
                break
            # the holder before us may have removed the file between our open and our flock:
            # then we hold a lock on a name nobody sees, so start again on the current file
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = _holder(self.path)
        if stale.get("pid") not in (None, os.getpid()):
            gone = _describe(stale)
            print(
                f"gandistill: note: {self.what} was locked by {gone}, which is gone; "
                "taking it over",
                file=sys.stderr,
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        _HELD[key] = [fd, 1]
        _set_inherited([*_inherited(), str(key)])  # for the workers this process spawns
        return self

    def release(self) -> None:
        key = self.path.absolute()
        held = _HELD.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1]:
            return
        del _HELD[key]
        fd = held[0]
        if fd is None:  # held by rank 0 or the parent process
            return
        _set_inherited([p for p in _inherited() if p != str(key)])
        # unlinked while the flock is held: a process that opened the old file finds, once it
        # gets the flock, that the name is no longer its file, and starts again
        self.path.unlink(missing_ok=True)
        os.close(fd)
        for folder in self.made:  # innermost first
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote its files there
                break

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
