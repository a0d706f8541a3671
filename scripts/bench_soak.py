"""Soak test of interrupted runs: train and distil for a long while, Ctrl-C'd and resumed again
and again, watching resident memory and the files each restart leaves behind.

Every cycle builds the run anew with ``resume`` (as a restarted process would), lets it go
``--cycle`` more iterations and then sends this process SIGINT: the path a user's Ctrl-C takes
(save a checkpoint, stop, :class:`~gandistill.errors.Interrupted`). Each row of the table gives
the resident set size at the start and end of the cycle, the TensorBoard event files and the
checkpoints kept; retention must hold ``train.n_saved`` checkpoints across restarts (and one
distillation state), else the exit status is 1. Half of ``--minutes`` goes to training, half to
distillation (pixel space: no generator needed), at least two cycles each. ``--run-dir`` is
cleared first. Example (2-core CPU)::

    python scripts/bench_soak.py --config configs/smoke.yaml --minutes 20 --cycle 200 --out soak.md
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ignite.engine import Events

from gandistill.config import load_config
from gandistill.data import load_dataset
from gandistill.distillation.loop import Distiller
from gandistill.errors import GandistillError, Interrupted
from gandistill.gan.checkpoints import STATE_DIR, TB_DIR
from gandistill.gan.trainer import GANTrainer

ENDLESS = 10**9  # iterations of each run: the soak ends by the clock, not by a run finishing
COLUMNS = (
    "phase",
    "cycle",
    "iterations",
    "seconds",
    "RSS start (MB)",
    "RSS end (MB)",
    "TB event files",
    "checkpoints",
)


def rss_mb() -> float:
    """Resident set size now (Linux ``/proc``); elsewhere the peak so far from ``getrusage``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _cell(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def one_cycle(build: Callable, i: int, n: int, files: Callable[[], tuple[int, int]]) -> dict:
    """Build run ``i`` (resumed after the first), Ctrl-C it ``n`` iterations on, and measure."""
    rss_start, start = rss_mb(), time.perf_counter()
    run = build(i)
    stop_at = run.engine.state.iteration + n
    run.engine.add_event_handler(
        Events.ITERATION_COMPLETED(once=stop_at), lambda _: os.kill(os.getpid(), signal.SIGINT)
    )
    try:
        run.run()
        reached = run.engine.state.iteration
    except Interrupted as exc:  # stops after the iteration in which the signal arrived
        reached = exc.iteration
    del run
    gc.collect()
    tb_files, checkpoints = files()
    return {
        "iterations": reached,
        "seconds": time.perf_counter() - start,
        "RSS start (MB)": rss_start,
        "RSS end (MB)": rss_mb(),
        "TB event files": tb_files,
        "checkpoints": checkpoints,
    }


def soak(phase: str, build: Callable[[int], object], args, files) -> list[dict]:
    rows, start, budget = [], time.perf_counter(), 30.0 * args.minutes  # half each
    while len(rows) < 2 or time.perf_counter() - start < budget:
        i = len(rows)
        row = {"phase": phase, "cycle": i} | one_cycle(build, i, args.cycle, files)
        print(", ".join(f"{k} {_cell(v)}" for k, v in row.items()), flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict], n_saved: int) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [_cell(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for phase in ("train", "distill"):
        mine = [r for r in rows if r["phase"] == phase]
        growth = mine[-1]["RSS end (MB)"] - mine[0]["RSS end (MB)"]
        lines.append(
            f"- {phase}: {len(mine)} cycles; RSS after the last {growth:+.1f} MB against the "
            f"first ({growth / (len(mine) - 1):+.2f} MB per restart)"
        )
    lines.append(f"- retention: train.n_saved = {n_saved}; a distillation keeps one state file")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/smoke.yaml")
    parser.add_argument("--minutes", type=float, default=10.0, help="total, half per phase")
    parser.add_argument("--cycle", type=int, default=100, help="iterations between Ctrl-Cs")
    parser.add_argument("--run-dir", default="checkpoints/soak", help="cleared first")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides")
    parser.add_argument("--out", help="write the table as markdown here")
    args = parser.parse_args(argv)

    root = Path(args.run_dir)
    shutil.rmtree(root, ignore_errors=True)
    try:
        train_cfg = load_config(
            args.config,
            [
                *args.set,
                f"run_dir={root / 'train'}",
                f"train.iterations={ENDLESS}",
                "train.progress=false",
            ],
        )
        distill_cfg = load_config(
            args.config,
            [
                *args.set,
                "distill.space=pixel",
                f"distill.max_iterations={ENDLESS}",
                "distill.progress=false",
            ],
        )
        data = load_dataset(train_cfg.data)
        run_dir, out = root / "train", root / "distill" / "set.pt"

        def train_files() -> tuple[int, int]:
            return (
                len(list((run_dir / TB_DIR).glob("events.out.tfevents.*"))),
                len(list((run_dir / STATE_DIR).iterdir())),  # stray temporary files count too
            )

        def distill_files() -> tuple[int, int]:
            return (
                len(list((out.parent / "tb" / out.stem).glob("events.out.tfevents.*"))),
                len([p for p in out.parent.iterdir() if p.name.endswith((".state.pt", ".tmp"))]),
            )

        rows = soak(
            "train",
            lambda i: GANTrainer(train_cfg, resume=i > 0, overwrite=i == 0, data=data),
            args,
            train_files,
        )
        rows += soak(
            "distill",
            lambda i: Distiller(distill_cfg, out=out, data=data, resume=i > 0),
            args,
            distill_files,
        )
    except GandistillError as exc:
        print(f"bench_soak: error: {exc}", file=sys.stderr)
        return 2

    table = markdown(rows, train_cfg.train.n_saved)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    most = {p: max(r["checkpoints"] for r in rows if r["phase"] == p) for p in ("train", "distill")}
    if most["train"] > train_cfg.train.n_saved or most["distill"] > 1:
        print("bench_soak: retention broken (see the checkpoints column)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
