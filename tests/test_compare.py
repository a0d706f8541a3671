"""``gandistill compare``: reports side by side, ties, and the refusals of reports that do not
compare. One real (quick) report is made; the others are copies of its ``report.json`` with
fields edited, which is all compare reads."""

import copy
import json
from pathlib import Path

import pytest
from cli_batch import run_cli_many
from conftest import tiny_pixel_set
from test_cli import assert_user_error, run_cli

from gandistill.errors import ArtifactError, ConfigError
from gandistill.evaluation import report as report_mod
from gandistill.evaluation.compare import TIE_MARK, compare_reports, load_report
from gandistill.runtime import format_bytes

FAST = ["eval.epochs=3", "eval.n_models=2", "classifier.epochs=1", "classifier.width=8"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """One real quick report of a 2-per-class pixel-space set of a tiny tensors dataset (the
    ``setup`` of test_evaluation), as written to its folder's report.json."""
    tmp = tmp_path_factory.mktemp("compare_base")
    cfg, path, data = tiny_pixel_set(tmp, FAST)
    out = tmp / "report"
    report_mod.evaluate_distilled(path, cfg, out=out, profile="quick", data=data, progress=False)
    return json.loads((out / "report.json").read_text())


def _write(folder: Path, report: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def _with_accuracy(report: dict, mean: float, accuracies: list[float], std: float, se: float):
    """A copy of ``report`` whose distilled set scored ``mean`` on its first network."""
    r = copy.deepcopy(report)
    arch = r["protocol"]["archs"][0]
    r["accuracy"][arch]["distilled"].update(
        mean=mean, accuracies=accuracies, std=std, binomial_se=se
    )
    return r


def _row(table: str, name: str) -> str:
    (line,) = [ln for ln in table.splitlines() if ln.startswith(f"| {name} |")]
    return line


def test_table_holds_each_reports_numbers(base, tmp_path):
    a = _write(tmp_path / "a", base)
    b_report = _with_accuracy(base, 0.5, [0.4, 0.6], 0.1, 0.02)
    b_report["source"].update(path="/somewhere/other_set.pt", ipc=7)
    b_report["fairness"]["convnet"].update(ior_hard=0.1, ior_hard_se=0.03)
    b_report["fidelity"]["distilled"].update(fid=12.3, kid=4.56)
    b_report["compression"]["image_bytes"] = 2048
    b_report["privacy"]["near_copies"] = 1
    b = _write(tmp_path / "b", b_report)
    table = compare_reports([a, b / "report.json"])  # a folder, and a report.json
    header = table.splitlines()[0]
    assert "accuracy (convnet)" in header and "FID" in header and "KID ×10³" in header

    stats = base["accuracy"]["convnet"]["distilled"]
    fid = base["fidelity"]["distilled"]
    row_a = _row(table, "a")
    assert f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}% (n=1)" in row_a
    assert "| `set.pt` | 2 |" in row_a
    assert f"| {fid['fid']:.3g} | {fid['kid']:.3g} |" in row_a
    assert f"| {format_bytes(base['compression']['image_bytes'])} |" in row_a
    assert f"| {base['privacy']['near_copies']}/6 |" in row_a

    row_b = _row(table, "b")
    assert "| `other_set.pt` | 7 |" in row_b
    assert "50.00 ± 10.00% (n=2)" in row_b and "| 2.00 |" in row_b
    assert "| +10.00 ± 3.00 |" in row_b
    assert "| 12.3 | 4.56 |" in row_b
    assert "| 2.0 KiB | 1/6 |" in row_b
    # the tiny data are separable: the real report's set is the better one, bold
    if stats["mean"] - 0.5 > 1.96 * (0.1**2 / 2 + 0.02**2 + stats["binomial_se"] ** 2) ** 0.5:
        assert "**" in row_a and "**" not in row_b and TIE_MARK not in row_b


@pytest.mark.parametrize(
    ("gap", "tied"),
    [(0.0, True), (0.027, True), (0.028, False), (0.3, False)],
)
def test_ties_within_the_resolution(base, tmp_path, gap, tied):
    # resolution: sqrt(0.01² + 0.01²) = 0.01414; 1.96 × that = 0.0277
    a = _write(tmp_path / "a", _with_accuracy(base, 0.8, [0.8], 0.0, 0.01))
    b = _write(tmp_path / "b", _with_accuracy(base, 0.8 - gap, [0.8 - gap], 0.0, 0.01))
    table = compare_reports([a, b])
    assert "**80.00 ± 0.00% (n=1)**" in _row(table, "a")
    assert (TIE_MARK in _row(table, "b")) is tied
    assert "**" not in _row(table, "b")


def test_spread_over_networks_counts_in_the_resolution(base, tmp_path):
    a = _write(tmp_path / "a", _with_accuracy(base, 0.8, [0.7, 0.9], 0.1, 0.0))
    b = _write(tmp_path / "b", _with_accuracy(base, 0.7, [0.7, 0.7], 0.0, 0.0))
    # resolution 0.1 / sqrt(2) = 0.0707: a gap of 0.1 < 1.96 × 0.0707
    assert TIE_MARK in _row(compare_reports([a, b]), "b")


def test_another_protocol_is_refused_naming_the_keys(base, tmp_path):
    other = copy.deepcopy(base)
    other["protocol"].update(epochs=1000, n_models=3)
    a, b = _write(tmp_path / "a", base), _write(tmp_path / "b", other)
    with pytest.raises(ConfigError) as err:
        compare_reports([a, b])
    message = str(err.value)
    assert "\n" not in message
    assert "report 'b' was made under another protocol than 'a'" in message
    assert "epochs 3 vs 1000" in message and "n_models 1 vs 3" in message

    older = copy.deepcopy(base)
    del older["protocol"]["full_data_stopping"]  # a report from before the key
    with pytest.raises(ConfigError, match="full_data_stopping .* vs absent"):
        compare_reports([a, _write(tmp_path / "old", older)])

    smaller = copy.deepcopy(base)
    smaller["protocol"]["test_images"] = 10  # another test split
    with pytest.raises(ConfigError, match="test_images 36 vs 10"):
        compare_reports([a, _write(tmp_path / "small", smaller)])


def test_other_networks_compare_on_the_first_one_in_common(base, tmp_path):
    wider = copy.deepcopy(base)
    wider["protocol"].update(arch="mlp", archs=["mlp", "convnet"])
    wider["accuracy"] = {"mlp": base["accuracy"]["convnet"], **base["accuracy"]}
    a, b = _write(tmp_path / "a", wider), _write(tmp_path / "b", base)
    assert "accuracy (convnet)" in compare_reports([a, b]).splitlines()[0]

    disjoint = copy.deepcopy(wider)
    disjoint["protocol"]["archs"] = ["mlp"]
    disjoint["accuracy"] = {"mlp": base["accuracy"]["convnet"]}
    with pytest.raises(ConfigError, match="share no evaluation network"):
        compare_reports([_write(tmp_path / "c", disjoint), b])


def test_another_extractor_is_refused_unless_fidelity_is_left_out(base, tmp_path):
    other = copy.deepcopy(base)
    other["fidelity"]["extractor"] = "inception-v3-compat"
    a, b = _write(tmp_path / "a", base), _write(tmp_path / "b", other)
    with pytest.raises(ConfigError, match="another extractor") as err:
        compare_reports([a, b])
    assert "inception-v3-compat" in str(err.value) and "--no-fidelity" in str(err.value)
    table = compare_reports([a, b], fidelity=False)
    assert "FID" not in table and "KID" not in table
    assert _row(table, "a") and _row(table, "b")


def test_equal_folder_names_are_told_apart(base, tmp_path):
    a = _write(tmp_path / "x" / "report", base)
    b = _write(tmp_path / "y" / "report", base)
    table = compare_reports([a, b, a])
    assert _row(table, "x/report") and _row(table, "y/report") and _row(table, "x/report #2")


def test_what_is_no_report_is_one_line(base, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "empty").mkdir()
    generator = copy.deepcopy(base)
    generator["source"] = {"kind": "generator", "path": "g.pt"}
    newer = dict(base, report_version=base["report_version"] + 1)
    gutted = {k: v for k, v in base.items() if k != "accuracy"}
    cases = {
        tmp_path / "missing": "not found",
        tmp_path / "notes.txt": "not a report",
        tmp_path / "list.json": "not a gandistill report",
        tmp_path / "empty": "holds no report.json",
        _write(tmp_path / "gen", generator): "a generator's report",
        _write(tmp_path / "newer", newer): "version",
        _write(tmp_path / "gutted", gutted): "'accuracy'",
    }
    for path, fragment in cases.items():
        with pytest.raises(ArtifactError) as err:
            load_report(path)
        assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(ConfigError, match="at least two reports"):
        compare_reports([_write(tmp_path / "a", base)])


def test_cli_end_to_end(base, tmp_path):
    a = _write(tmp_path / "a", _with_accuracy(base, 0.9, [0.9], 0.0, 0.01))
    b = _write(tmp_path / "b", _with_accuracy(base, 0.5, [0.5], 0.0, 0.01))
    out = tmp_path / "cmp.md"
    done = run_cli("compare", a, b, "--out", out)
    assert done.returncode == 0, done.stderr
    assert out.read_text() in done.stdout and "**90.00" in out.read_text()
    assert not list(tmp_path.glob(".*.tmp"))

    other = copy.deepcopy(base)
    other["protocol"]["epochs"] = 1000
    c = _write(tmp_path / "c", other)
    assert_user_error(run_cli("compare", a, c), "epochs 3 vs 1000")

    refused = run_cli_many(
        [
            (["compare", a], tmp_path),
            (["compare", a, tmp_path / "missing"], tmp_path),
            (["compare", a, b, "--out", out], tmp_path),  # exists, no --overwrite
            (["compare", a, b, "--out", a / "report.json", "--overwrite"], tmp_path),
            (["compare"], tmp_path),
        ]
    )
    fragments = [
        "at least two reports",
        "not found",
        "already exists",
        "is one of the reports",
        "REPORT",
    ]
    for proc, fragment in zip(refused, fragments, strict=True):
        assert_user_error(proc, fragment)
    again = run_cli_many([(["compare", a, b, "--out", out, "--overwrite"], tmp_path)])
    assert again[0].returncode == 0, again[0].stderr


def test_sections_a_report_lacks_show_as_dashes(base, tmp_path):
    older = copy.deepcopy(base)
    for key in ("fairness", "privacy", "compression"):
        del older[key]
    older["fidelity"] = {"extractor": base["fidelity"]["extractor"], "distilled": "?"}
    del older["accuracy"]["convnet"]["distilled"]["binomial_se"]
    a, b = _write(tmp_path / "a", base), _write(tmp_path / "b", older)
    row = _row(compare_reports([a, b]), "b")
    assert row.endswith("| – | – | – | – | – | – |"), row


def test_sizes_are_stated_in_binary_units():
    assert format_bytes(512) == "512 B"
    assert format_bytes(2048) == "2.0 KiB"
    assert format_bytes(3.6 * 1024**2) == "3.6 MiB"
    assert format_bytes(5 * 1024**4) == "5120.0 GiB"
