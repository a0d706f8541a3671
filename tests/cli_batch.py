"""Run many ``gandistill`` command lines in few interpreters.

Each command line of a batch runs through ``gandistill.cli.main``, exactly what ``python -m
gandistill`` runs, with its stdout and stderr captured, warnings always shown and the working
directory set per command; an exception that escapes ``main`` is printed as the interpreter
would print it (a traceback, exit status 1). What this saves is the interpreter start and the
import of torch and its libraries for every command line (about 3 s each on 2 cores), which
dominated the tests that run tables of bad input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

DRIVER = r"""
import contextlib, io, json, os, sys, traceback, warnings
from gandistill.cli import main

with open(sys.argv[1]) as fh:
    cases = json.load(fh)
results = []
for case in cases:
    os.chdir(case["cwd"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            try:
                code = main(case["args"])
            except SystemExit as exc:  # argparse, or sys.exit inside a command
                code = exc.code
                if isinstance(code, str):
                    print(code, file=sys.stderr)
                    code = 1
            except BaseException:
                traceback.print_exc()
                code = 1
    results.append({"returncode": code or 0, "stdout": out.getvalue(), "stderr": err.getvalue()})
with open(sys.argv[2], "w") as fh:
    json.dump(results, fh)
"""


def run_cli_many(
    jobs: Sequence[tuple[Sequence[object], Path]],
    workers: int = 1,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> list[subprocess.CompletedProcess]:
    """Run each ``(args, cwd)`` of ``jobs`` as ``gandistill *args`` in ``cwd``; ``workers``
    interpreters share the jobs (in order within each). Returns one ``CompletedProcess`` per
    job, in the order of ``jobs``."""
    if not jobs:
        return []
    cases = [{"args": [str(a) for a in args], "cwd": str(cwd)} for args, cwd in jobs]
    shares = [list(range(i, len(cases), workers)) for i in range(min(workers, len(cases)))]
    results: list[subprocess.CompletedProcess | None] = [None] * len(cases)
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for i, share in enumerate(shares):
            spec, answer = Path(tmp) / f"cases{i}.json", Path(tmp) / f"results{i}.json"
            spec.write_text(json.dumps([cases[j] for j in share]))
            proc = subprocess.Popen(
                [sys.executable, "-c", DRIVER, str(spec), str(answer)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **(env or {})},
            )
            procs.append((proc, share, answer))
        for proc, share, answer in procs:
            stdout, stderr = proc.communicate(timeout=timeout)
            assert proc.returncode == 0 and answer.is_file(), (proc.returncode, stdout, stderr)
            for j, res in zip(share, json.loads(answer.read_text()), strict=True):
                results[j] = subprocess.CompletedProcess(
                    ["gandistill", *cases[j]["args"]],
                    res["returncode"],
                    res["stdout"],
                    res["stderr"],
                )
    return results  # type: ignore[return-value]
