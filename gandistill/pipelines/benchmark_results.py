"""The benchmark's results: the rows of ``results.jsonl`` (their keys, reading, appending without
ever leaving half a line) and the markdown table of ``benchmark.md`` rendered from them, with the
machine and the command line its caption names.

Within each IPC the table marks the best mean accuracy and the methods tied with it: a difference
below :data:`Z95` times its resolution ``sqrt(se_a**2 + se_b**2)`` is a tie, where a row's
``se**2`` is the spread of its accuracies over networks and seeds (sample variance / n) plus the
binomial variance ``p * (1 - p) / N`` of an accuracy ``p`` measured on ``N`` images of the scored
split (``test_images``: the test split's, or the validation split's for rows whose protocol says
``split: validation``; left out for rows that do not record it). The IOR column is DD-Ranking's
improvement over random (Li et al. 2025, arXiv:2505.13300): the mean accuracy minus that of the
``random`` coreset at the same IPC.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from gandistill.coreset.baselines import METHODS as CORESET_METHODS
from gandistill.errors import ArtifactError
from gandistill.evaluation.render import CHANCE_MARK, chance_note, figure, save
from gandistill.evaluation.sections import (
    MATCHED_ARCH,
    TIE_MARK,
    Z95,
    at_chance,
    mean_over_networks,
)
from gandistill.files import atomic_write
from gandistill.pipelines.benchmark_settings import METHODS
from gandistill.runtime import format_bytes, format_seconds

RESULT_KEYS = (
    "ipc", "method", "seed", "arch", "profile", "minutes", "protocol", "accuracies", "mean", "std",
    "test_images", "num_classes", "fid", "fid_extractor", "distill_seconds", "iterations",
    "stop_reason", "quick_checks", "target_accuracy", "time_to_accuracy", "compression", "bytes",
    "generator_bytes", "images_per_class_equivalent", "set_file",
    "eval_seconds", "machine", "date",
)  # fmt: skip
TABLE_HEADER = (
    "IPC", "method", "accuracy (%)", "vs best (pts)", "IOR (pts)", "FID", "distillation time",
    "time to random-real accuracy", "stored (compression)",
)  # fmt: skip
TABLE_ALIGN = ("---:", "---", "---", "---:", "---:", "---:", "---:", "---:", "---:")
BYTES_HEADER = ("stored", "uint8 images per class it buys", "IPC", "method", "accuracy (%)")
BASELINE = "random"  # the coreset that IOR subtracts: a random real subset


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


def row_arch(row: dict) -> str:
    """The network that scored a row (rows made before ``arch`` was a key: their protocol's)."""
    return row.get("arch") or row.get("protocol", {}).get("arch", "")


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


@dataclass(frozen=True)
class _Score:
    """The accuracies of one (IPC, method), pooled over its seeds as the table shows them."""

    by_seed: dict[int, list[float]]  # seed → the accuracies of its networks
    test_images: int | None  # None: a row that does not record it

    @property
    def accuracies(self) -> list[float]:
        return [a for accs in self.by_seed.values() for a in accs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def squared_error(self) -> float:
        """Variance of :attr:`mean`: spread over networks × seeds plus test-split sampling."""
        accs, p = self.accuracies, self.mean
        spread = statistics.variance(accs) / len(accs) if len(accs) > 1 else 0.0
        return spread + (p * (1 - p) / self.test_images if self.test_images else 0.0)

    @property
    def with_binomial_se(self) -> tuple[list[float], float]:
        """The accuracies and the test split's binomial error of their mean (0 when unknown)."""
        p, n = self.mean, self.test_images
        return self.accuracies, math.sqrt(p * (1 - p) / n) if n else 0.0

    @classmethod
    def of(cls, group: list[dict]) -> _Score:
        sizes = {r.get("test_images") for r in group}  # older rows lack the key
        size = None if None in sizes else min(sizes)
        by_seed: dict[int, list[float]] = {}
        for r in group:
            by_seed.setdefault(r["seed"], []).extend(r["accuracies"])
        return cls(by_seed, size)


def _versus_best(scores: dict[str, _Score]) -> dict[str, tuple[str, str]]:
    """``method → (standing, vs-best cell)`` for the methods of one IPC, the standing ``best``,
    ``tied`` (short of the best by less than :data:`Z95` resolutions) or ``""``; nothing is
    marked at an IPC of one method."""
    if len(scores) < 2:
        return {method: ("", "–") for method in scores}
    best = max(scores, key=lambda m: scores[m].mean)  # the first of equal means
    cells = {best: ("best", "best")}
    for method, score in scores.items():
        if method == best:
            continue
        gap = scores[best].mean - score.mean
        resolution = Z95 * math.sqrt(scores[best].squared_error + score.squared_error)
        tied = gap == 0 or gap < resolution
        cells[method] = (
            "tied" if tied else "",
            f"{0.0 - 100 * gap:.2f} ± {100 * resolution:.2f}",  # 0.0 - x: never "-0.00"
        )
    return cells


def _ior(score: _Score, baseline: _Score | None, is_baseline: bool) -> str:
    """Mean accuracy minus the baseline's, over the seeds both have, in points."""
    if is_baseline:
        return "ref."
    if baseline is None:
        return "–"
    seeds = sorted(score.by_seed.keys() & baseline.by_seed.keys())
    if not seeds:
        return "–"
    mine = statistics.fmean(a for s in seeds for a in score.by_seed[s])
    theirs = statistics.fmean(a for s in seeds for a in baseline.by_seed[s])
    text = f"{100 * (mine - theirs):+.2f}"
    every = len(seeds) == len(score.by_seed) == len(baseline.by_seed)
    return text if every else f"{text} ({len(seeds)} common seeds)"


def _groups(rows: list[dict]) -> dict[tuple[int, str], list[dict]]:
    """Rows by (IPC, method), in the table's order."""
    groups: dict[tuple[int, str], list[dict]] = {}
    order = {m: i for i, m in enumerate(METHODS)}
    for row in sorted(rows, key=lambda r: (r["ipc"], order.get(r["method"], 99), r["seed"])):
        groups.setdefault((row["ipc"], row["method"]), []).append(row)
    return groups


def render_table(rows: list[dict], caption: Sequence[str], main_arch: str | None = None) -> str:
    """The markdown table of the rows scored by ``main_arch`` (default: the first row's
    network), one line per (IPC, method), aggregated over seeds; then the cross-architecture
    table when rows of other networks exist."""
    main_arch = main_arch or (row_arch(rows[0]) if rows else "")
    groups = _groups([r for r in rows if row_arch(r) == main_arch])
    scores: dict[int, dict[str, _Score]] = {}
    for (ipc, method), group in groups.items():
        scores.setdefault(ipc, {})[method] = _Score.of(group)
    versus = {ipc: _versus_best(by_method) for ipc, by_method in scores.items()}
    lines = ["# Benchmark", "", *caption, ""]
    lines += ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "|".join(TABLE_ALIGN) + "|"]
    for (ipc, method), group in groups.items():
        score = scores[ipc][method]
        accs = score.accuracies
        std = statistics.pstdev(accs) if len(accs) > 1 else 0.0
        standing, vs_best = versus[ipc][method]
        acc = f"{100 * score.mean:.2f} ± {100 * std:.2f} (n={len(accs)})"
        acc = f"**{acc}**" if standing == "best" else f"{acc} {TIE_MARK}" if standing else acc
        ior = _ior(score, scores[ipc].get(BASELINE), method == BASELINE)
        fid = f"{statistics.fmean(r['fid'] for r in group):.2f}"
        seconds = format_seconds(statistics.fmean(r["distill_seconds"] for r in group))
        tta = "n/a"
        if method not in CORESET_METHODS and any(r["quick_checks"] for r in group):
            tta = _fmt_time([r["time_to_accuracy"] for r in group], len(group))
        comp = f"{group[0]['compression']:.0f}×"
        if "bytes" in group[0]:  # older rows counted images, not bytes
            gen = group[0].get("generator_bytes")
            decoder = f" + {format_bytes(gen)} generator" if gen else ""
            comp = f"{format_bytes(group[0]['bytes'])}{decoder} ({comp})"
        cells = (str(ipc), method, acc, vs_best, ior, fid, seconds, tta, comp)
        lines.append("| " + " | ".join(cells) + " |")
    lines += _bytes_table(groups, scores)
    lines += _cross_arch_table(rows)
    return "\n".join(lines) + "\n"


def _cross_arch_table(rows: list[dict]) -> list[str]:
    """Mean accuracy of each (IPC, method) on every network its sets were scored with, and the
    mean over the networks distillation never matched on (all but ConvNet) with its standard
    error (each network's se², as the main table's, summed, over the count²); empty when the
    rows hold one network."""
    archs = list(dict.fromkeys(row_arch(r) for r in rows))
    if len(archs) < 2:
        return []
    unseen = [a for a in archs if a != MATCHED_ARCH]
    split = rows[0]["protocol"].get("split", "test")
    lines = [
        "",
        "## Across architectures",
        "",
        f"Mean {split} accuracy (%) on each network ({_protocols_note(rows, archs)}, "
        f"{MATCHED_ARCH} the one every matching objective runs on); the last column averages "
        f"the {len(unseen)} unseen "
        "ones, ± the networks × seeds spread (absent with one network per row) and, in "
        f"brackets, the {split} split's binomial error (both standard errors, as in `evaluate`'s "
        "report).",
        "",
        "| IPC | method | " + " | ".join(archs) + " | mean of unseen |",
        "|---:|---|" + "---:|" * (len(archs) + 1),
    ]
    by_arch = {a: _groups([r for r in rows if row_arch(r) == a]) for a in archs}
    failed: dict[str, dict[str, int]] = {}
    sizes: dict[str, dict[str, int]] = {}
    for ipc, method in _groups(rows):
        scores = {
            a: _Score.of(by_arch[a][ipc, method]) for a in archs if (ipc, method) in by_arch[a]
        }
        for a in scores:
            if n := _at_chance(by_arch[a][ipc, method]):
                failed.setdefault(a, {})[f"IPC {ipc} {method}"] = n
                sizes.setdefault(a, {})[f"IPC {ipc} {method}"] = len(scores[a].accuracies)

        def mark(names: list[str], ipc: int = ipc, method: str = method) -> str:
            key = f"IPC {ipc} {method}"
            return f" {CHANCE_MARK}" if any(key in failed.get(a, {}) for a in names) else ""

        cells = [f"{100 * scores[a].mean:.2f}{mark([a])}" if a in scores else "–" for a in archs]
        if unseen and all(a in scores for a in unseen):
            m = mean_over_networks([scores[a].with_binomial_se for a in unseen])
            spread = "" if m["network_se"] is None else f" ± {100 * m['network_se']:.2f}"
            cells.append(
                f"{100 * m['mean']:.2f}{spread} ({100 * m['binomial_se']:.2f}){mark(unseen)}"
            )
        else:
            cells.append("–")
        lines.append(f"| {ipc} | {method} | " + " | ".join(cells) + " |")
    if failed:
        lines += ["", chance_note(failed, sizes)]
    return lines


def _protocols_note(rows: list[dict], archs: list[str]) -> str:
    """ "same protocol" when every network trained alike, else which trained how (the ``cpu``
    profile trims the costliest networks): networks, epochs and augmentation of each."""
    how: dict[tuple, list[str]] = {}
    for arch in archs:
        p = next(r["protocol"] for r in rows if row_arch(r) == arch)
        aug = p.get("augment", "?")
        aug = "no augmentation" if aug == "none" else f"'{aug}' augmentation"
        how.setdefault((p.get("n_models", "?"), p.get("epochs", "?"), aug), []).append(arch)
    if len(how) == 1:
        return "same protocol"
    each = "; ".join(
        f"{', '.join(names)}: {n} networks, {epochs} epochs, {aug}"
        for (n, epochs, aug), names in how.items()
    )
    return f"each under its protocol: {each}"


def _at_chance(group: list[dict]) -> int:
    """Networks of a group of rows (one IPC, method and network) that ended at chance; rows
    that do not record their number of classes (made before it was) count none."""
    return sum(at_chance(r["accuracies"], r["num_classes"]) for r in group if "num_classes" in r)


def cross_arch_points(rows: list[dict]) -> list[dict]:
    """For each (IPC, method) scored on the matched network and every unseen one: its mean on
    the matched network with that mean's standard error (as the main table's), and the mean over
    the unseen networks (:func:`~gandistill.evaluation.sections.mean_over_networks`); empty when
    the rows hold no unseen network or no matched one."""
    archs = list(dict.fromkeys(row_arch(r) for r in rows))
    unseen = [a for a in archs if a != MATCHED_ARCH]
    if MATCHED_ARCH not in archs or not unseen:
        return []
    by_arch = {a: _groups([r for r in rows if row_arch(r) == a]) for a in archs}
    points = []
    for ipc, method in by_arch[MATCHED_ARCH]:
        if all((ipc, method) in by_arch[a] for a in unseen):
            matched = _Score.of(by_arch[MATCHED_ARCH][ipc, method])
            parts = [_Score.of(by_arch[a][ipc, method]).with_binomial_se for a in unseen]
            points.append(
                {
                    "ipc": ipc,
                    "method": method,
                    "matched": matched.mean,
                    "matched_se": math.sqrt(matched.squared_error),
                    "unseen": mean_over_networks(parts),
                }
            )
    return points


def plot_cross_arch(points: list[dict], fh: BinaryIO) -> None:
    """Accuracy on the matched network against the mean over the unseen ones, a panel per IPC,
    a point per method with its standard errors (the unseen mean's network spread and binomial
    error combined), coloured by family (pixel, latent, hybrid, other); a set that transfers
    lies high, one fitted to the matched network far to the right of the others."""
    ipcs = sorted({p["ipc"] for p in points})
    plt, fig, axes = figure(5.0 * len(ipcs), 3.8, len(ipcs))
    for ax, ipc in zip([axes] if len(ipcs) == 1 else axes, ipcs, strict=True):
        family_count: dict[str, int] = {}
        for p in (p for p in points if p["ipc"] == ipc):
            u, family = p["unseen"], p["method"].split("-")[0]
            n = family_count[family] = family_count.get(family, -1) + 1
            ax.errorbar(
                100 * p["matched"], 100 * u["mean"], xerr=100 * p["matched_se"],
                yerr=100 * math.hypot(u["network_se"] or 0.0, u["binomial_se"]),
                fmt=_MARKERS[n % len(_MARKERS)], color=_FAMILY_COLORS.get(family, "tab:gray"),
                capsize=2, ms=5, label=p["method"],
            )  # fmt: skip
        ax.set_xlabel(f"{MATCHED_ARCH} (matched) accuracy (%)")
        ax.set_ylabel("mean over unseen networks (%)")
        ax.set_title(f"IPC {ipc}", fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    save(plt, fig, fh)


_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_FAMILY_COLORS = {"pixel": "tab:blue", "latent": "tab:orange", "hybrid": "tab:green"}


def _bytes_table(
    groups: dict[tuple[int, str], list[dict]], scores: dict[int, dict[str, _Score]]
) -> list[str]:
    """The rows again, ordered by the bytes each set needs as stored (codes for a latent set,
    uint8 images otherwise; labels and soft labels counted, a generator not): methods that
    store as much sit side by side, and each row says how many uint8 real images per class the
    same bytes would buy. Empty when no row records its bytes."""
    sized = [(g[0]["bytes"], ipc, m, g) for (ipc, m), g in groups.items() if "bytes" in g[0]]
    if not sized:
        return []
    lines = [
        "",
        "## At equal bytes",
        "",
        "A generator's weights are shared by every set decoded through it and are not counted; "
        "its size is in results.jsonl (`generator_bytes`).",
        "",
        "| " + " | ".join(BYTES_HEADER) + " |",
        "|---:|---:|---:|---|---|",
    ]
    for n_bytes, ipc, method, group in sorted(sized, key=lambda t: (t[0], t[1], t[2])):
        per_class = group[0]["images_per_class_equivalent"]
        score = scores[ipc][method]
        cells = (
            format_bytes(n_bytes),
            f"{per_class:.1f}",
            str(ipc),
            method,
            f"{100 * score.mean:.2f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines
