"""The benchmark's results: the rows of ``results.jsonl`` (their keys, reading, appending without
ever leaving half a line) and the markdown table of ``benchmark.md`` rendered from them, with the
machine and the command line its caption names.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from gandistill.coreset.baselines import METHODS as CORESET_METHODS
from gandistill.errors import ArtifactError
from gandistill.files import atomic_write
from gandistill.pipelines.benchmark_settings import METHODS
from gandistill.runtime import format_seconds

RESULT_KEYS = (
    "ipc", "method", "seed", "profile", "minutes", "protocol", "accuracies", "mean", "std",
    "fid", "fid_extractor", "distill_seconds", "iterations", "stop_reason", "quick_checks",
    "target_accuracy", "time_to_accuracy", "compression", "set_file", "eval_seconds",
    "machine", "date",
)  # fmt: skip
SETTING_KEYS = ("profile", "minutes", "protocol")  # must agree across the rows of one out folder
TABLE_HEADER = (
    "IPC", "method", "accuracy (%)", "FID", "distillation time", "time to random-real accuracy",
    "compression",
)  # fmt: skip


def machine() -> str:
    """Processor, cores and torch threads, for the table caption."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")  # Linux's platform.processor() is only the architecture
    if cpuinfo.is_file():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0].partition(":")[2].strip() if names else cpu
    return f"{cpu}, {os.cpu_count()} cores, torch threads: {torch.get_num_threads()}"


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed (``python -m gandistill`` for ``__main__.py``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name == "__main__.py":
        argv[0] = "python -m gandistill"
    elif argv and Path(argv[0]).name == "gandistill":  # the console script's full path
        argv[0] = "gandistill"
    return " ".join([argv[0], *map(shlex.quote, argv[1:])]) if argv else ""


def load_results(path: Path) -> list[dict]:
    """The rows of a ``results.jsonl`` (none if it does not exist)."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise ArtifactError(f"{path}:{n} is not a JSON line") from None
    return rows


def append_result(path: Path, row: dict) -> None:
    """Append one row by rewriting the file atomically: a kill never leaves half a line."""
    old = path.read_bytes() if path.is_file() else b""
    atomic_write(path, lambda fh: fh.write(old + (json.dumps(row) + "\n").encode()))


def _fmt_time(values: list[float | None], n: int) -> str:
    reached = [v for v in values if v is not None]
    if not reached:
        return "–"
    text = format_seconds(statistics.fmean(reached))
    return text if len(reached) == n else f"{text} ({len(reached)}/{n} seeds)"


def render_table(rows: list[dict], caption: Sequence[str]) -> str:
    """The markdown table, one line per (IPC, method), rows aggregated over seeds."""
    groups: dict[tuple[int, str], list[dict]] = {}
    order = {m: i for i, m in enumerate(METHODS)}
    for row in sorted(rows, key=lambda r: (r["ipc"], order.get(r["method"], 99), r["seed"])):
        groups.setdefault((row["ipc"], row["method"]), []).append(row)
    lines = ["# Benchmark", "", *caption, ""]
    lines += ["| " + " | ".join(TABLE_HEADER) + " |", "|---:|---|---|---:|---:|---:|---:|"]
    for (ipc, method), group in groups.items():
        accs = [a for r in group for a in r["accuracies"]]
        std = statistics.pstdev(accs) if len(accs) > 1 else 0.0
        acc = f"{100 * statistics.fmean(accs):.2f} ± {100 * std:.2f} (n={len(accs)})"
        fid = f"{statistics.fmean(r['fid'] for r in group):.2f}"
        seconds = format_seconds(statistics.fmean(r["distill_seconds"] for r in group))
        tta = "n/a"
        if method not in CORESET_METHODS and any(r["quick_checks"] for r in group):
            tta = _fmt_time([r["time_to_accuracy"] for r in group], len(group))
        comp = f"{group[0]['compression']:.0f}×"
        lines.append(f"| {ipc} | {method} | {acc} | {fid} | {seconds} | {tta} | {comp} |")
    return "\n".join(lines) + "\n"
