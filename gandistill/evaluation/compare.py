"""Several distilled sets' reports side by side: ``gandistill compare`` and
:func:`compare_reports`.

Each report is a ``report.json`` written by ``gandistill evaluate --distilled`` (or the folder
holding one). The table has one row per report: the set, its accuracy on the first evaluation
network every report trained, with both uncertainties, DD-Ranking's IOR, FID and KID of the set,
the bytes it is stored in and its near-copies of training images. Reports compare only when made
under one protocol (the manifest saved with each, the evaluation networks aside) and, for the
fidelity scores, in the features of one extractor; anything else is refused with the keys that
differ.

Ties are read as the benchmark reads them: the best mean accuracy is bold, and a row short of it
by less than :data:`Z95` times the resolution of the difference (``sqrt`` of each row's
``std**2 / n + binomial_se**2``) is marked :data:`TIE_MARK`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gandistill.errors import ArtifactError, ConfigError
from gandistill.evaluation.render import REPORT_JSON
from gandistill.evaluation.report import REPORT_VERSION
from gandistill.evaluation.sections import TIE_MARK, Z95, difference_se
from gandistill.runtime import format_bytes

# manifest keys that may differ: the evaluation networks (``arch`` is the first of ``archs``);
# the table reads the first network every report evaluated
NETWORK_KEYS = ("arch", "archs")
ABSENT = "absent"  # a manifest key an older report does not record


@dataclass(frozen=True)
class _Loaded:
    name: str  # the short name of the table's row
    path: Path  # the report.json read
    report: dict


def report_file(path: str | Path) -> Path:
    """The ``report.json`` a path names: the one in a report folder, else the path itself."""
    path = Path(path)
    return path / REPORT_JSON if path.is_dir() else path


def load_report(path: str | Path) -> dict:
    """Read a distilled set's report.

    Args:
        path: a report folder (written by ``gandistill evaluate --out``) or its ``report.json``.

    Returns:
        The report as a dict.

    Raises:
        ArtifactError: the file is missing or unreadable, not JSON, a generator's report, a
            report of a newer version, or lacks the sections a comparison reads.
    """
    path = Path(path)
    file = report_file(path)
    if path.is_dir() and not file.is_file():
        raise ArtifactError(f"report folder {path} holds no {REPORT_JSON}")
    if not file.is_file():
        raise ArtifactError(f"report not found: {file}")
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArtifactError(f"cannot read report {file}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError(f"{file} is not a report (not a JSON file)") from None
    if not isinstance(report, dict) or "report_version" not in report:
        raise ArtifactError(f"{file} is not a gandistill report (no report_version)")
    version = report["report_version"]
    if not isinstance(version, int) or version > REPORT_VERSION:
        raise ArtifactError(
            f"{file} is a report of version {version!r}; this gandistill reads up to "
            f"version {REPORT_VERSION}"
        )
    source = report.get("source")
    if isinstance(source, dict) and source.get("kind") == "generator":
        raise ArtifactError(
            f"{file} is a generator's report; compare reads distilled sets' reports"
        )
    _check_sections(report, file)
    return report


def _check_sections(report: dict, file: Path) -> None:
    """Refuse a report without the sections (and the numbers in them) every row needs."""
    for key in ("source", "protocol", "accuracy"):
        if not isinstance(report.get(key), dict):
            raise ArtifactError(f"{file} is not a distilled set's report (no '{key}' section)")
    for arch, rows in report["accuracy"].items():
        stats = rows.get("distilled") if isinstance(rows, dict) else None
        ok = isinstance(stats, dict) and all(_is_number(stats.get(k)) for k in ("mean", "std"))
        ok = ok and isinstance(stats.get("accuracies", []), list)
        ok = ok and _is_number(stats.get("binomial_se", 0.0))
        if not ok:
            raise ArtifactError(f"{file} has no accuracy of the distilled set on {arch}")


def _short_names(files: list[Path]) -> list[str]:
    """The folder of each report (the file's name for a report.json that lies elsewhere under
    another name), with as many parent folders as it takes to tell equal ones apart; a report
    given again gets `` #2``, `` #3``, ..."""
    parts = [
        (f.parent.parts if f.name == REPORT_JSON else (*f.parent.parts, f.stem)) or (f.stem,)
        for f in (p.resolve() for p in files)
    ]
    depth = dict.fromkeys(parts, 1)  # each distinct report once

    def name(p: tuple[str, ...]) -> str:
        return "/".join(p[-depth[p] :])

    grown = True
    while grown:
        by_name: dict[str, list[tuple[str, ...]]] = {}
        for p in depth:
            by_name.setdefault(name(p), []).append(p)
        grown = False
        for group in by_name.values():
            for p in group if len(group) > 1 else ():
                if depth[p] < len(p):
                    depth[p] += 1
                    grown = True
    names, seen = [], {}
    for p in parts:
        seen[p] = seen.get(p, 0) + 1
        names.append(name(p) if seen[p] == 1 else f"{name(p)} #{seen[p]}")
    return names


_MISSING = object()


def _show(value: object) -> str:
    """A manifest value on one line: numbers as they are, text quoted."""
    return ABSENT if value is _MISSING else json.dumps(value, ensure_ascii=False)


def _check_protocols(loaded: list[_Loaded]) -> None:
    """Refuse reports made on another dataset or under another protocol than the first."""
    first = loaded[0]
    dataset = first.report["source"].get("dataset")
    a = first.report["protocol"]
    for other in loaded[1:]:
        if other.report["source"].get("dataset") != dataset:
            theirs = other.report["source"].get("dataset")
            raise ConfigError(
                f"report '{other.name}' evaluated a set of another dataset than '{first.name}' "
                f"({dataset} vs {theirs}); reports compare only on one dataset"
            )
        b = other.report["protocol"]
        keys = [*a, *(k for k in b if k not in a)]
        differing = [
            f"{k} {_show(a.get(k, _MISSING))} vs {_show(b.get(k, _MISSING))}"
            for k in keys
            if k not in NETWORK_KEYS and a.get(k, _MISSING) != b.get(k, _MISSING)
        ]
        if differing:
            raise ConfigError(
                f"report '{other.name}' was made under another protocol than '{first.name}' "
                f"(differs in, {first.name}'s value first: {', '.join(differing)}); reports "
                "compare only under one protocol"
            )


def _check_extractors(loaded: list[_Loaded]) -> str:
    """The fidelity extractor all reports share; refused when they differ."""
    first = loaded[0]
    extractor = _extractor(first)
    for other in loaded[1:]:
        theirs = _extractor(other)
        if theirs != extractor:
            raise ConfigError(
                f"report '{other.name}' scored fidelity with another extractor than "
                f"'{first.name}' ({extractor} vs {theirs}); scores compare only within one "
                "extractor (pass --no-fidelity to leave FID and KID out)"
            )
    return extractor


def _extractor(item: _Loaded) -> str:
    fidelity = item.report.get("fidelity")
    extractor = fidelity.get("extractor") if isinstance(fidelity, dict) else None
    if not extractor:
        raise ArtifactError(
            f"report '{item.name}' ({item.path}) records no fidelity extractor (pass "
            "--no-fidelity to leave FID and KID out)"
        )
    return str(extractor)


def _common_arch(loaded: list[_Loaded]) -> str:
    """The first evaluation network (in the first report's order) every report trained the
    distilled set on; refused when there is none."""

    def archs(item: _Loaded) -> list[str]:
        listed = item.report["protocol"].get("archs")
        if not isinstance(listed, list):
            listed = list(item.report["accuracy"])
        return [a for a in listed if isinstance(a, str) and a in item.report["accuracy"]]

    for arch in archs(loaded[0]):
        if all(arch in archs(item) for item in loaded[1:]):
            return arch
    each = "; ".join(f"{item.name}: {','.join(archs(item))}" for item in loaded)
    raise ConfigError(f"the reports share no evaluation network ({each})")


def _standings(stats: list[dict]) -> list[str]:
    """``best``, ``tied`` (short of the best by less than ``Z95`` resolutions) or ``""`` per
    row; the best is the first of equal means."""
    best = max(range(len(stats)), key=lambda i: stats[i]["mean"])
    out = []
    for i, s in enumerate(stats):
        if i == best:
            out.append("best")
            continue
        gap = stats[best]["mean"] - s["mean"]
        resolution = difference_se(stats[best], s)
        tied = gap == 0 or (resolution is not None and gap < Z95 * resolution)
        out.append("tied" if tied else "")
    return out


def _accuracy_cell(stats: dict, standing: str) -> str:
    n = len(stats.get("accuracies", ())) or 1
    text = f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}% (n={n})"
    if standing == "best":
        return f"**{text}**"
    return f"{text} {TIE_MARK}" if standing == "tied" else text


def _points(value: object, se: object = None) -> str:
    """A difference of accuracies in points, ± its standard error when recorded."""
    if not _is_number(value):
        return "–"
    return f"{100 * value:+.2f}" + (f" ± {100 * se:.2f}" if _is_number(se) else "")


def _part(report: dict, *keys: str) -> dict:
    """``report[keys[0]][keys[1]]...``; empty where a report lacks one (older reports)."""
    for key in keys:
        report = report.get(key) if isinstance(report, dict) else None
    return report if isinstance(report, dict) else {}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fidelity_cells(report: dict) -> list[str]:
    """FID and KID ×10³ of the distilled set (reports from before stratified KID hold the raw
    ``kid_mean``, shown ×10³ too)."""
    f = _part(report, "fidelity", "distilled")
    kid = f.get("kid")
    if kid is None and _is_number(f.get("kid_mean")):
        kid = 1000 * f["kid_mean"]
    return [f"{v:.3g}" if _is_number(v) else "–" for v in (f.get("fid"), kid)]


def _bytes_cell(report: dict) -> str:
    """The bytes the set is used from: a latent set's codes, else its uint8 images (labels and
    soft labels counted, a generator not)."""
    comp = _part(report, "compression")
    if _is_number(comp.get("code_bytes")):
        return f"{format_bytes(comp['code_bytes'])} (codes)"
    if _is_number(comp.get("image_bytes")):
        return format_bytes(comp["image_bytes"])
    return "–"


def _near_copies_cell(report: dict) -> str:
    """Near-copies of training images, of the set's images."""
    near = _part(report, "privacy").get("near_copies")
    if not _is_number(near):
        return "–"
    total = _part(report, "compression").get("distilled_images")
    if not _is_number(total):
        total = len(_part(report, "structure").get("per_image") or ())
    return f"{near}/{total}" if total else str(near)


def _set_name(source: dict) -> str:
    """The set's file name (a set evaluated as loaded has none)."""
    path = source.get("path")
    return f"`{Path(str(path)).name}`" if path else "(in memory)"


def _caption(report: dict, arch: str, extractor: str | None) -> list[str]:
    p = report["protocol"]
    test = p.get("test_images", "?")
    lines = [
        f"Protocol ({report.get('profile', '?')}): {p.get('n_models', '?')} fresh {arch} "
        f"network(s) per set, {p.get('epochs', '?')} epochs, augmentation {p.get('augment', '?')}, "
        f"{test} test images; accuracy: mean ± std over the networks. Test s.e.: the binomial "
        f"standard error of the mean on the {test} test images, in points.",
        f"Ties: the best accuracy is bold; a row short of it by less than {Z95} × the "
        "resolution of the difference (√ of each row's std²/n + test s.e.²) is marked "
        f"{TIE_MARK}.",
        "IOR: the set minus a random real subset of the same IPC, hard labels, ± one standard "
        "error, in points (DD-Ranking, Li et al. 2025, arXiv:2505.13300).",
    ]
    if extractor is not None:
        lines.append(
            f"FID and KID ×10³ of the set against the test split, in the features of `{extractor}`."
        )
    lines.append(
        "Bytes: uint8 images with labels (a latent set: its codes, generator left out); "
        "near-copies: set images closer to a training image than 99% of test images are."
    )
    return lines


def compare_reports(paths: Sequence[str | Path], fidelity: bool = True) -> str:
    """The reports side by side, as a markdown table with a caption.

    Args:
        paths: report folders or ``report.json`` files, at least two.
        fidelity: show FID and KID (the reports must share their extractor); False leaves the
            columns out and the extractors unchecked.

    Returns:
        The markdown, ending in a newline.

    Raises:
        ConfigError: fewer than two reports; reports made on another dataset, under another
            protocol (naming the keys that differ, with both values), with another fidelity
            extractor (unless ``fidelity`` is False), or with no evaluation network in common.
        ArtifactError: a path that is no readable report of a distilled set.
    """
    if len(paths) < 2:
        raise ConfigError("compare needs at least two reports")
    files = [report_file(Path(p)) for p in paths]
    reports = [load_report(p) for p in paths]
    names = _short_names(files)
    loaded = [_Loaded(n, f, r) for n, f, r in zip(names, files, reports, strict=True)]
    _check_protocols(loaded)
    extractor = _check_extractors(loaded) if fidelity else None
    arch = _common_arch(loaded)
    stats = [item.report["accuracy"][arch]["distilled"] for item in loaded]
    standings = _standings(stats)
    header = ["report", "set", "IPC", f"accuracy ({arch})", "test s.e.", "IOR hard (pts)"]
    header += ["FID", "KID ×10³"] if fidelity else []
    header += ["bytes", "near-copies"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|" + "---:|" * (len(header) - 3)]
    for item, s, standing in zip(loaded, stats, standings, strict=True):
        r = item.report
        ior = _part(r, "fairness", arch)
        se = s.get("binomial_se")
        cells = [
            item.name,
            _set_name(r["source"]),
            str(r["source"].get("ipc", "?")),
            _accuracy_cell(s, standing),
            f"{100 * se:.2f}" if _is_number(se) else "–",
            _points(ior.get("ior_hard"), ior.get("ior_hard_se")),
        ]
        cells += _fidelity_cells(r) if fidelity else []
        cells += [_bytes_cell(r), _near_copies_cell(r)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([*lines, "", *_caption(loaded[0].report, arch, extractor)]) + "\n"
