"""The benchmark: the table and results file on the smoke config, resuming, bad arguments."""

import json
import shutil

import pytest
from conftest import SMOKE, set_args

from gandistill import cli
from gandistill.config import load_config
from gandistill.data import load_dataset
from gandistill.errors import ConfigError
from gandistill.gan.trainer import train
from gandistill.pipelines import benchmark
from gandistill.pipelines.benchmark import (
    RESULTS_FILE,
    TABLE_FILE,
    run_benchmark,
    time_to_accuracy,
)
from gandistill.pipelines.benchmark_results import RESULT_KEYS, TABLE_HEADER, render_table
from gandistill.pipelines.benchmark_settings import (
    METHODS,
    benchmark_config,
    parse_ipcs,
    parse_methods,
)

# a budget that a loaded machine does not reach in two iterations: max_iterations stops them
BUDGET = 1.0
TINY = (  # two outer iterations, a quick check after each, two-epoch evaluations
    "distill.max_iterations=2",
    "distill.eval_every=1",
    "distill.eval_epochs=2",
    "distill.teacher_logits=false",
    "eval.epochs=2",
    "eval.n_models=2",
    "eval.arch=mlp",
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def generator_file(cache):
    cfg = load_config(
        SMOKE, [f"run_dir={cache / 'run'}", f"cache_dir={cache}", "train.eval_samples_per_class=0"]
    )
    return train(cfg).generator_path


def _cfg(cache, *extra):
    return benchmark_config(SMOKE, [f"cache_dir={cache}", *TINY, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache, generator_file):
    """One benchmark of every method at IPC 1 and 2 (one seed), as a user runs it."""
    out = tmp_path_factory.mktemp("bench")
    lines = []
    run_benchmark(
        _cfg(cache), out, (1, 2), METHODS, 1, BUDGET, "quick", generator_file, "cmd", lines.append
    )
    return out, lines


def table_rows(text):
    """The markdown table of ``benchmark.md`` as a list of cell lists (header first)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert set(lines[1].replace("|", "")) <= set("-:"), lines[1]  # the separator row
    return [[c.strip() for c in line.strip("|").split("|")] for line in [lines[0], *lines[2:]]]


def test_table_and_results_are_well_formed(finished):
    out, lines = finished
    n_train = len(load_dataset(load_config(SMOKE).data).train)
    rows = [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]
    assert [(r["ipc"], r["method"]) for r in rows] == [(i, m) for i in (1, 2) for m in METHODS]
    for r in rows:
        assert tuple(r) == RESULT_KEYS
        assert len(r["accuracies"]) == 2 and 0 <= r["mean"] <= 1 and r["fid"] >= 0
        assert r["compression"] == pytest.approx(n_train / (10 * r["ipc"]))
        assert (out / r["set_file"]).is_file() and r["profile"] == "quick"
        assert r["protocol"]["epochs"] == 2 and r["protocol"]["augment"] == "none"
        if r["method"] in benchmark.OPTIMISED_METHODS:
            assert r["iterations"] == 2 and len(r["quick_checks"]) == 2
            assert 0 <= r["target_accuracy"] <= 1
            tta = r["time_to_accuracy"]
            assert tta is None or tta in [s for s, _ in r["quick_checks"]]
        else:
            assert r["quick_checks"] == [] and r["time_to_accuracy"] is None
    text = (out / TABLE_FILE).read_text()
    table = table_rows(text)
    assert tuple(table[0]) == TABLE_HEADER
    assert [(int(c[0]), c[1]) for c in table[1:]] == [(i, m) for i in (1, 2) for m in METHODS]
    for cells in table[1:]:
        assert "±" in cells[2] and "(n=2)" in cells[2]
        assert (cells[5] == "n/a") == (cells[1] not in benchmark.OPTIMISED_METHODS)
    assert "Command: `cmd`" in text and "Protocol `quick`" in text and "reduced CPU" in text
    assert len(lines) == 16 and lines[-1].startswith("[16/16] IPC 2 latent-dm seed 0:")


def test_second_call_skips_finished_rows(finished, cache, generator_file, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    shutil.copytree(finished[0], out)
    results = (out / RESULTS_FILE).read_text().splitlines()
    (out / RESULTS_FILE).write_text("\n".join(results[:-1]) + "\n")  # as if killed in the last
    computed = []
    real_row = benchmark._Bench.row

    def counting_row(self, method, ipc, seed):
        computed.append((ipc, method, seed))
        return real_row(self, method, ipc, seed)

    monkeypatch.setattr(benchmark._Bench, "row", counting_row)
    last_set = out / json.loads(results[-1])["set_file"]
    built_at = last_set.stat().st_mtime_ns
    lines = []
    rows = run_benchmark(
        _cfg(cache), out, (1, 2), METHODS, 1, BUDGET, "quick", generator_file, "cmd", lines.append
    )
    assert computed == [(2, "latent-dm", 0)] and len(rows) == 16
    assert last_set.stat().st_mtime_ns == built_at  # its set was finished: scored, not rebuilt
    assert rows[-1]["distill_seconds"] == json.loads(results[-1])["distill_seconds"]
    assert sum("done earlier, skipped" in line for line in lines) == 15
    assert (out / RESULTS_FILE).read_text().splitlines()[:-1] == results[:-1]
    run_benchmark(_cfg(cache), out, (1, 2), METHODS, 1, BUDGET, "quick", generator_file, "cmd")
    assert len(computed) == 1  # everything finished: nothing recomputed


def test_another_protocol_in_the_same_folder_is_refused(finished, cache):
    with pytest.raises(ConfigError, match="another protocol"):
        run_benchmark(_cfg(cache), finished[0], (1,), ("random",), profile="full", minutes=BUDGET)


def test_cli_skips_latent_methods_without_generator(cache, tmp_path, capsys):
    out = tmp_path / "bench"
    overrides = set_args([f"cache_dir={cache}", *TINY])
    argv = ["benchmark", "--config", str(SMOKE), "--ipc", "1", "--methods", "random,latent-gm"]
    assert cli.main([*argv, *overrides, "--minutes", str(BUDGET), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "note: skipping latent-gm" in stdout and f"wrote {out / TABLE_FILE}" in stdout
    assert [json.loads(x)["method"] for x in (out / RESULTS_FILE).read_text().splitlines()] == [
        "random"
    ]
    assert "Not run: latent-gm" in (out / TABLE_FILE).read_text()


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--methods", "random,pixel-gm", "unknown method(s) pixel-gm"),
        ("--ipc", "0,10", "--ipc takes"),
        ("--ipc", "one", "--ipc takes"),
    ],
)
def test_bad_methods_and_ipc_are_one_line_errors(tmp_path, capsys, flag, value, fragment):
    code = cli.main(["benchmark", "--config", str(SMOKE), flag, value, "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / RESULTS_FILE).exists()


def test_command_line_names_the_program_as_typed():
    assert benchmark.command_line(["/x/gandistill/__main__.py", "benchmark", "--set", "a=b c"]) == (
        "python -m gandistill benchmark --set 'a=b c'"
    )
    assert benchmark.command_line(["scripts/benchmark.py", "--ipc", "1"]) == (
        "scripts/benchmark.py --ipc 1"
    )


def test_parsers():
    assert parse_ipcs("1,10,50") == [1, 10, 50]
    assert parse_methods("kmeans,latent-dm") == ["kmeans", "latent-dm"]
    with pytest.raises(ConfigError):
        parse_methods("random,random")


def test_time_to_accuracy_is_the_first_check_reaching_the_target():
    history = [
        {"seconds": 1.0},
        {"seconds": 2.0, "accuracy": 0.4},
        {"seconds": 3.0, "accuracy": 0.6},
        {"seconds": 4.0, "accuracy": 0.7},
    ]
    assert time_to_accuracy(history, 0.6) == 3.0
    assert time_to_accuracy(history, 0.9) is None


def test_table_aggregates_seeds():
    def row(seed, accs, tta):
        return {
            "ipc": 1, "method": "pixel-dm", "seed": seed, "accuracies": accs, "fid": 2.0 + seed,
            "distill_seconds": 60.0, "quick_checks": [[60.0, 0.5]], "time_to_accuracy": tta,
            "compression": 500.0,
        }  # fmt: skip

    table = table_rows(render_table([row(1, [0.5, 0.7], None), row(0, [0.4, 0.6], 30.0)], []))
    assert table[1] == [
        "1", "pixel-dm", "55.00 ± 11.18 (n=4)", "2.50", "1m00s", "30s (1/2 seeds)", "500×"
    ]  # fmt: skip
