"""How evaluation reports are shown and written: markdown, plots, files and TensorBoard scalars.

:mod:`gandistill.evaluation.report` and :mod:`gandistill.evaluation.generator` compute the
reports (plain dicts); this module turns them into a report folder (:func:`write_files`):
``report.json``, ``report.md`` with the headline table (:func:`headline`), the image grid and
plots as PNGs, and TensorBoard scalars under ``eval/*``. Nothing here trains or samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch
from ignite.handlers.tensorboard_logger import TensorboardLogger
from torchvision.utils import save_image

from gandistill.data import DatasetInfo
from gandistill.evaluation.sections import CHANCE_MARGIN
from gandistill.files import atomic_write
from gandistill.runtime import format_bytes

REPORT_JSON, REPORT_MD = "report.json", "report.md"

ROW_LABELS = {
    "distilled": "distilled (IPC {ipc})",
    "distilled_soft": "distilled, soft labels",
    "random_real": "random real subset",
    "random_real_soft": "random real subset, soft labels",
    "full_data": "full training data ({full_epochs})",
}
# the fidelity entry shown beside each accuracy row (the random real subset is the floor)
FIDELITY_OF_ROW = {
    "distilled": "distilled",
    "random_real": "random_real",
}
FIDELITY_NOTE = (
    "FID against the whole test split; KID ×10³ against test subsets with the set's class "
    "counts (centred on 0 for real images); [95% bootstrap intervals]. The random real subset, "
    "of the set's size and classes, is the floor. Scores compare only within one extractor."
)


def _stat_rows(rows: dict) -> list[tuple[str, dict]]:
    """The accuracy rows of one architecture (skipping derived numbers such as the gain)."""
    return [(name, stats) for name, stats in rows.items() if isinstance(stats, dict)]


def _pct(stats: dict) -> str:
    """``93.6 ± 0.4% (n=3, test s.e. 0.8)``: the spread over networks only when there are
    several, and the test split's binomial standard error (in reports that record it)."""
    n = len(stats.get("accuracies", ())) or 1
    spread = f" ± {100 * stats['std']:.1f}" if n > 1 else ""
    se = stats.get("binomial_se")
    resolution = f", test s.e. {100 * se:.1f}" if se is not None else ""
    return f"{100 * stats['mean']:.1f}{spread}% (n={n}{resolution})"


def _source(path: str | None) -> str:
    return f"`{path}`" if path else "a set passed in memory (no file)"


def _splits_line(splits: dict | None) -> str:
    """Which split each number comes from, with sizes and origins."""
    if not splits:
        return "Splits: not recorded (a report from before splits were recorded)."

    def part(name: str) -> str:
        return f"{splits[name]['images']} images, {splits[name]['origin']}"

    line = f"Splits: accuracies on the test split ({part('test')}); networks trained on "
    line += f"training images ({part('train')})"
    if splits["choices_read"] == "test":
        return line + "; no validation split (data.val_fraction 0): choices read the test split."
    return line + f"; quick checks and choices on the validation split ({part('val')})."


def _compression_line(comp: dict) -> str:
    """Counts and bytes of the set, with what it needs to be used (labels, soft labels; a
    latent set's codes and residuals; its generator left out and counted in)."""
    line = (
        f"Compression: {comp['image_ratio']:.0f}× fewer images; as uint8 images with labels "
        f"{format_bytes(comp['image_bytes'])} ({comp['image_bytes_ratio']:.0f}× fewer bytes)"
    )
    if comp.get("code_bytes") is not None:
        line += (
            f"; as codes (latents, offsets, residuals, labels) {format_bytes(comp['code_bytes'])} "
            f"({comp['latent_bytes_ratio']:.0f}× fewer)"
        )
        if comp.get("generator_bytes") is not None:
            line += (
                f", {comp['latent_gen_bytes_ratio']:.1f}× with the generator's "
                f"{format_bytes(comp['generator_bytes'])} counted in"
            )
    return line + "."


def _pts(value: float, se: float | None) -> str:
    """A difference of accuracies in points, with its standard error when known."""
    return f"{100 * value:+.1f}" + (f" ± {100 * se:.1f}" if se else "") + " pts"


def full_data_epochs(stats: dict, protocol: dict) -> str:
    """How long the full-data reference trained, as its row label says it: stopped where its
    validation accuracy stalled, or cut at the cap (then it is not a converged reference).
    Reports from before early stopping give the fixed epochs."""
    if "best_epochs" not in stats:
        return f"{protocol.get('full_data_epochs', '?')} epochs"
    best = "/".join(str(e) for e in stats["best_epochs"])
    if stats.get("converged"):
        return f"converged, best validation epoch {best}"
    if stats.get("out_of_time"):
        return f"{max(stats['epochs'])} epochs, stopped by the time budget, not converged"
    return f"{max(stats['epochs'])} epochs, not converged"


def _fairness_lines(fairness: dict | None, protocol: dict) -> list[str]:
    """DD-Ranking's IOR / HLR / LRS per architecture, one line each."""
    if not fairness:
        return []
    lines = []
    for arch, m in fairness.items():
        if not isinstance(m, dict) or "ior_hard" not in m:
            continue
        parts = [f"IOR {_pts(m['ior_hard'], m.get('ior_hard_se'))} (hard labels)"]
        if "ior_soft" in m:
            parts.append(f"IOR {_pts(m['ior_soft'], m.get('ior_soft_se'))} (soft labels)")
        if "hlr" in m:
            parts.append(f"HLR {_pts(m['hlr'], m.get('hlr_se'))} against the full data")
            parts.append(f"LRS {m['lrs']:.1f}")
        elif "hlr_omitted" in m:
            parts.append(f"no HLR: {m['hlr_omitted']}")
        lines.append(f"- {arch}: " + ", ".join(parts) + ".")
    if not lines:
        return []
    head = (
        f"Fairness ({fairness['definitions']}): IOR = set minus a random real subset of the "
        "same IPC under the same protocol and labels; HLR = full data minus the set, both with "
        "hard labels (lower is better); ± one standard error."
    )
    return [head, *lines, ""]


def _privacy_lines(privacy: dict | None, n_images: int) -> list[str]:
    """The near-copy count, which belongs beside accuracy."""
    if not privacy or "near_copies" not in privacy:
        return []
    return [
        f"Privacy: {privacy['near_copies']} of {n_images} distilled images are near-copies of "
        "training images (closer to a training image than 99% of test images are; "
        f"median distance ratio to the test split's {privacy['dcr_ratio']:.2f}).",
        "",
    ]


def _with_ci(value: float, ci: list | None) -> str:
    return f"{value:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")


def _fidelity_cells(f: dict) -> list[str]:
    """FID, KID (×10³) and IS cells of one set's scores; – where there are none. Reports from
    before stratified KID hold ``kid_mean`` (raw), shown ×10³ here too."""
    if not f:
        return ["–"] * 3
    kid = f["kid"] if "kid" in f else 1000 * f["kid_mean"]
    return [
        _with_ci(f["fid"], f.get("fid_ci")),
        _with_ci(kid, f.get("kid_ci")),
        f"{f['is_mean']:.3g}" if "is_mean" in f else "–",
    ]


def _protocol_cell(p: dict) -> str:
    aug = "no augmentation" if p["augment"] == "none" else f"{p['augment']} augmentation"
    return f"{p['n_models']} × {p['epochs']} epochs, {aug}"


CHANCE_MARK = "†"  # appended to a mean that includes networks at chance


def chance_note(counts: dict[str, dict[str, int]], sizes: dict[str, dict[str, int]]) -> str:
    """The footnote for :data:`CHANCE_MARK`: which rows of which networks held networks at
    chance, ``counts[arch][row]`` of ``sizes[arch][row]``."""
    parts = [
        f"{arch} {row.replace('_', ' ')} {n} of {sizes[arch][row]}"
        for arch, rows in counts.items()
        for row, n in rows.items()
    ]
    return (
        f"{CHANCE_MARK} networks at chance (test accuracy within "
        f"{100 * CHANCE_MARGIN:.0f} points of 1/K; their training collapsed), counted in the "
        f"means: {', '.join(parts)}."
    )


def cross_architecture_lines(cross: dict, accuracy: dict) -> list[str]:
    """The cross-architecture table: each architecture with its protocol, the set's and the
    random real subset's accuracy, and the mean over the architectures distillation never saw
    (its uncertainty: network spread, and the test split's binomial error); none without an
    unseen architecture."""
    if not cross:
        return []
    lines = [
        "",
        "Cross-architecture (test split):",
        "",
        "| architecture | protocol | set | random real | set − random (pts) |",
        "|---|---|---|---|---:|",
    ]
    failed = cross.get("at_chance", {})  # reports before the count have none

    def mark(archs: list[str], row: str) -> str:
        return f" {CHANCE_MARK}" if any(row in failed.get(a, {}) for a in archs) else ""

    for arch, rows in accuracy.items():
        role = "matched" if arch == cross["matched"] else "unseen"
        d, r = rows["distilled"], rows["random_real"]
        lines.append(
            f"| {arch} ({role}) | {_protocol_cell(cross['protocols'][arch])} | "
            f"{_pct(d)}{mark([arch], 'distilled')} | {_pct(r)}{mark([arch], 'random_real')} | "
            f"{100 * (d['mean'] - r['mean']):+.1f} |"
        )
    means = cross["unseen_mean"]
    if "distilled" in means and "random_real" in means:

        def cell(m: dict) -> str:
            spread = "" if m["network_se"] is None else f" ± {100 * m['network_se']:.1f}"
            return f"{100 * m['mean']:.1f}{spread} (test s.e. {100 * m['binomial_se']:.1f})"

        d, r = means["distilled"], means["random_real"]
        unseen = cross["unseen"]
        lines.append(
            f"| **mean of {len(unseen)} unseen** | – | {cell(d)}{mark(unseen, 'distilled')} | "
            f"{cell(r)}{mark(unseen, 'random_real')} | {100 * (d['mean'] - r['mean']):+.1f} |"
        )
    if failed:
        sizes = {a: {row: len(accuracy[a][row]["accuracies"]) for row in failed[a]} for a in failed}
        lines += ["", chance_note(failed, sizes)]
    return lines


def headline(report: dict) -> str:
    """The headline table as markdown: accuracy, fidelity, compression, time."""
    fid = report["fidelity"]
    lines = [
        "| set | accuracy (test split) | FID | KID ×10³ | IS |",
        "|---|---|---|---|---|",
    ]
    for arch, rows in report["accuracy"].items():
        for name, stats in _stat_rows(rows):
            label = ROW_LABELS[name].format(
                ipc=report["source"]["ipc"],
                full_epochs=full_data_epochs(stats, report["protocol"]),
            )
            cells = _fidelity_cells(fid.get(FIDELITY_OF_ROW.get(name, ""), {}))
            lines.append(f"| {label} ({arch}) | {_pct(stats)} | " + " | ".join(cells) + " |")
    comp, tt = report["compression"], report["training_time"]
    lines += [
        *cross_architecture_lines(report.get("cross_architecture") or {}, report["accuracy"]),
        "",
        *_fairness_lines(report.get("fairness"), report["protocol"]),
        *_privacy_lines(report.get("privacy"), len(report["structure"]["per_image"])),
        f"Fidelity extractor: `{fid['extractor']}`. {FIDELITY_NOTE}",
        _compression_line(comp),
        f"Training time: {tt['distilled_seconds']:.1f} s on the distilled set against "
        f"{tt['full_data_seconds_at_protocol_epochs']:.0f} s on the full data at the same epochs "
        f"({tt['reduction']:.0f}× less; measured over {tt['full_data_epochs']:.3g} full-data "
        "epochs).",
    ]
    return "\n".join(lines)


def _diversity_lines(diversity: dict | None) -> list[str]:
    """Intra-class diversity of a generator report (absent from older reports)."""
    if not diversity:
        return []
    per_class = " ".join(f"{r:.2f}" for r in diversity["per_class"])
    return [
        f"Intra-class diversity (mean pairwise distance of a class's samples over that of its "
        f"real images; 1 = as diverse as the data, near 0 = collapsed): mean "
        f"{diversity['mean']:.2f}, least diverse class {diversity['min']:.2f}; per class "
        f"{per_class}.",
        "",
    ]


def _cas_lines(cas: dict | None) -> list[str]:
    """The classification accuracy score table of a generator report (absent from older ones)."""
    if not cas:
        return []
    p = cas["protocol"]
    lines = [
        "| samples per class | CAS: trained on generated samples | trained on real images |",
        "|---:|---|---|",
    ]
    for k, row in cas["rows"].items():
        label = f"all ({row['samples_per_class']} on average)" if k == "full" else k
        lines.append(f"| {label} | {_pct(row['generated'])} | {_pct(row['real'])} |")
    full = ""
    if "full" in cas["rows"]:
        full = (
            " Row *all*: as many samples per class as the training split holds, beside the whole "
            "training split, each trained until validation accuracy stalls (at most "
            f"{p['full_max_epochs']} epochs)."
        )
    return [
        *lines,
        "",
        f"CAS (Ravuri & Vinyals 2019): fresh networks trained only on k samples per class, "
        f"tested on the real test split, beside k random real training images per class "
        f"({p['n_models']} network(s), {p['epochs']} epochs, augmentation {p['augment']}).{full}",
        "",
        "![CAS](cas.png)",
        "",
    ]


def _plot_cas(report: dict, fh: BinaryIO) -> None:
    """CAS against samples per class: generated and real, with error bars."""
    cas = report["cas"]
    rows = list(cas["rows"].values())
    ks = [
        row["samples_per_class"] if "samples_per_class" in row else int(k)
        for k, row in cas["rows"].items()
    ]
    plt, fig, ax = figure()
    for name, label in (("generated", "generated samples"), ("real", "real images")):
        stats = [row[name] for row in rows]
        means = [100 * s["mean"] for s in stats]
        errs = [100 * math.hypot(s["std"], s.get("binomial_se", 0.0)) for s in stats]
        ax.errorbar(ks, means, yerr=errs, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training images per class")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    save(plt, fig, fh)


def generator_markdown(report: dict) -> list[str]:
    """``report.md`` of a generator report, as lines."""
    fid = report["fidelity"]
    rows = [
        f"| {label} | " + " | ".join(_fidelity_cells(fid[key]))
        for key, label in (("generated", "generated samples"), ("real_train", "real (floor)"))
    ]
    src = report["source"]
    parent = src.get("derived_from")
    distilled = (
        f" Distilled into (gandistill distill-generator) from `{parent['path']}` (iteration "
        f"{parent['iteration']}, sha256 {parent['sha256'][:12]})."
        if parent
        else ""
    )
    return [
        f"# Generator report ({report['profile']} profile)",
        "",
        f"Source: `{src['path']}` (iteration {src['iteration']}, dataset {src['dataset']}); "
        f"{report['samples_per_class']} samples per class.{distilled}",
        "",
        "| set (against the test split) | FID | KID | IS |",
        "|---|---|---|---|",
        *[r + " |" for r in rows],
        "",
        f"Fidelity extractor: `{fid['extractor']}`. FID against the whole test split; KID ×10³ "
        "against test subsets with the samples' class counts; [95% bootstrap intervals]; the "
        "floor is as many real training images per class.",
        *_diversity_lines(report.get("diversity")),
        *_cas_lines(report.get("cas")),
        f"Class consistency: {100 * report['class_consistency']:.1f}%. A fresh network tells "
        f"held-out real images from new samples with "
        f"{100 * report['real_vs_generated']['accuracy']:.1f}% accuracy (50% = indistinguishable).",
        "",
        "![samples](grid.png)",
        "",
    ]


# --- plots -----------------------------------------------------------------------------------


def figure(width: float = 5.0, height: float = 3.2, ncols: int = 1):
    """``(pyplot, figure, axes)`` of a row of ``ncols`` plots (see :func:`save`)."""
    # imported here, with the file-only backend, so that importing the package needs no display
    # and does not pay for matplotlib
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height))
    return plt, fig, axes


def save(plt, fig, fh: BinaryIO) -> None:
    """Write ``fig`` as PNG to ``fh`` and close it."""
    fig.tight_layout()
    fig.savefig(fh, dpi=110, format="png")
    plt.close(fig)


def _plot(report: dict, fh: BinaryIO) -> None:
    """Accuracy of every row, one bar group per architecture, on an axis that starts near the
    lowest bar (from 0 the differences that matter would not show); error bars combine the
    spread over networks with the test split's standard error."""
    plt, fig, ax = figure()
    lows, highs = [], []
    for arch, rows in report["accuracy"].items():
        stat_rows = _stat_rows(rows)
        means = [100 * st["mean"] for _, st in stat_rows]
        errs = [100 * math.hypot(st["std"], st.get("binomial_se", 0.0)) for _, st in stat_rows]
        ax.bar([f"{n}\n({arch})" for n, _ in stat_rows], means, yerr=errs, capsize=4)
        lows += [m - e for m, e in zip(means, errs, strict=True)]
        highs += [m + e for m, e in zip(means, errs, strict=True)]
    span = max(max(highs) - min(lows), 1.0)
    ax.set_ylim(max(0.0, min(lows) - 0.5 * span), min(100.0, max(highs) + 0.2 * span))
    ax.set_ylabel("test accuracy (%)")
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"IPC {report['source']['ipc']}, profile {report['profile']}", fontsize=9)
    save(plt, fig, fh)


def _plot_fidelity(report: dict, fh: BinaryIO) -> None:
    """FID and KID of the distilled set, the random real subset and the real-vs-real floor."""
    fid = report["fidelity"]
    names = [n for n in ("distilled", "random_real") if n in fid]
    plt, fig, axes = figure(7.0, 3.0, 2)
    for ax, key, label in zip(axes, ("fid", "kid"), ("FID", "KID ×10³"), strict=True):
        values = [fid[n].get(key, float("nan")) for n in names]
        cis = [fid[n].get(f"{key}_ci") for n in names]
        err = None
        if all(cis):  # asymmetric error bars from the bootstrap intervals
            pairs = list(zip(values, cis, strict=True))
            # the intervals hold their estimate; max() guards rounding at a degenerate one
            err = [[max(0.0, v - c[0]) for v, c in pairs], [max(0.0, c[1] - v) for v, c in pairs]]
        ax.bar(names, values, yerr=err, capsize=4, color="tab:orange")
        ax.set_ylabel(f"{label} against the test split")
    fig.suptitle(f"fidelity, extractor {fid['extractor'][:40]}", fontsize=9)
    save(plt, fig, fh)


def _plot_distillation(report: dict, fh: BinaryIO) -> None:
    """Matching loss against iteration, and beside it the quick checks' accuracy against
    distillation time when the run made any."""
    hist = report["distillation"]
    checks = hist["quick_checks"]
    plt, fig, axes = figure(8.0 if checks else 4.5, 3.0, 2 if checks else 1)
    loss_ax = axes[0] if checks else axes
    its, loss = zip(*hist["match_loss"], strict=True)
    loss_ax.plot(its, loss, lw=0.8)
    loss_ax.set_xlabel("iteration")
    loss_ax.set_ylabel("matching loss per class")
    if checks:
        _, secs, acc = zip(*checks, strict=True)
        axes[1].plot([s / 60 for s in secs], [100 * a for a in acc], marker="o")
        axes[1].set_xlabel("distillation time (min)")
        split = hist.get("quick_checks_read", "test")
        axes[1].set_ylabel(f"quick-check accuracy (%), {split} split", fontsize=8)
    save(plt, fig, fh)


# --- files -----------------------------------------------------------------------------------


def write_files(
    out: Path,
    report: dict,
    markdown: list[str],
    images01: torch.Tensor,
    nrow: int,
    scalars: dict[str, float],
    step: int,
    extra_png: dict[str, Callable[[BinaryIO], object]] | None = None,
) -> None:
    """Write a report folder: ``grid.png`` (+ ``extra_png``), ``report.md``, ``report.json``
    (each atomically) and TensorBoard scalars and the image grid under ``tb``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "grid.png", lambda fh: save_image(images01, fh, nrow=nrow, format="png"))
    for name, draw in (extra_png or {}).items():
        atomic_write(out / name, draw)
    atomic_write(out / REPORT_MD, lambda fh: fh.write("\n".join(markdown).encode()))
    atomic_write(out / REPORT_JSON, lambda fh: fh.write(json.dumps(report, indent=1).encode()))
    tb = TensorboardLogger(log_dir=str(out / "tb"))
    for tag, value in scalars.items():
        tb.writer.add_scalar(f"eval/{tag}", value, step)
    tb.writer.add_images("eval/images", images01, step)
    tb.close()


def fidelity_scalars(fidelity: dict) -> dict[str, float]:
    """``{metric}_{set}`` scalars of a report's fidelity section."""
    return {
        f"{key}_{name}": value
        for name, scores in fidelity.items()
        if isinstance(scores, dict)
        for key, value in scores.items()
        if isinstance(value, (int, float))  # not the intervals, units or notes
    }


# eval.amp set (reports from before the key have none)
AMP_NOTE = ", trained under bfloat16 autocast where the device has it (eval.amp)"


def protocol_line(p: dict) -> str:
    """The report's line on how its networks were trained (its protocol manifest ``p``)."""
    return (
        f"Protocol: {p['arch']}, {p['epochs']} epochs, augmentation {p['augment']}, "
        f"{p['n_models']} network(s) per set{AMP_NOTE * bool(p.get('amp'))}."
    )


def _report_markdown(report: dict) -> list[str]:
    """``report.md`` of a distilled-set report, as lines."""
    ipc = report["source"]["ipc"]
    # the distillation plot exists only for sets with a history (not for coresets)
    has_history = bool(report["distillation"]["match_loss"])
    return [
        f"# Evaluation report ({report['profile']} profile)",
        "",
        f"Source: {_source(report['source']['path'])} ({report['source']['space']} space, "
        f"IPC {ipc}, dataset {report['source']['dataset']}).",
        _splits_line(report.get("splits")),
        protocol_line(report["protocol"]),
        "",
        headline(report),
        "",
        "![distilled images](grid.png) ![accuracy](accuracy.png)",
        "",
        "![fidelity](fidelity.png)",
        *(["", "![distillation](distillation.png)"] if has_history else []),
        "",
        "## Seed metrics",
        "",
        "```json",
        json.dumps(
            {
                k: report[k]
                for k in ("gradient_similarity", "distribution", "privacy", "compression")
            },
            indent=1,
        ),
        "```",
        f"Mean SSIM to the nearest real image of the class: "
        f"{report['structure']['nearest_real_ssim_mean']:.3f}.",
        "",
    ]


def _report_scalars(report: dict) -> dict[str, float]:
    """The TensorBoard scalars of a distilled-set report (tags without the ``eval/`` prefix)."""
    scalars = {
        f"accuracy_{arch}_{name}": stats["mean"]
        for arch, rows in report["accuracy"].items()
        for name, stats in _stat_rows(rows)
    }
    scalars |= fidelity_scalars(report["fidelity"])
    scalars["training_time_reduction"] = report["training_time"]["reduction"]
    return scalars


def write_report(report: dict, out: Path, images01: torch.Tensor, info: DatasetInfo) -> None:
    """``report.json``, ``report.md`` (+ grid and plot PNGs) and TensorBoard ``eval/*``."""
    ipc = report["source"]["ipc"]
    plots = {
        "accuracy.png": lambda fh: _plot(report, fh),
        "fidelity.png": lambda fh: _plot_fidelity(report, fh),
    }
    if report["distillation"]["match_loss"]:
        plots["distillation.png"] = lambda fh: _plot_distillation(report, fh)
    write_files(
        out, report, _report_markdown(report), images01, ipc, _report_scalars(report), ipc, plots
    )


def write_generator_report(report: dict, out: Path, grid01: torch.Tensor, step: int) -> None:
    """A generator report's folder: ``report.json``, ``report.md``, ``grid.png`` (``grid01``,
    8 images a row) and TensorBoard ``eval/*`` at ``step`` (the generator's iteration)."""
    scalars = fidelity_scalars(report["fidelity"]) | {
        "class_consistency": report["class_consistency"],
        **(
            {"diversity": report["diversity"]["mean"], "diversity_min": report["diversity"]["min"]}
            if "diversity" in report
            else {}
        ),
        "real_vs_generated_accuracy": report["real_vs_generated"]["accuracy"],
    }
    for k, row in report.get("cas", {}).get("rows", {}).items():
        scalars[f"cas_{k}"] = row["generated"]["mean"]
        scalars[f"cas_real_{k}"] = row["real"]["mean"]
    plots = {"cas.png": lambda fh: _plot_cas(report, fh)} if "cas" in report else {}
    write_files(out, report, generator_markdown(report), grid01, 8, scalars, step, plots)
