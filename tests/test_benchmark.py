"""The benchmark: the table and results file on the smoke config, resuming, bad arguments."""

import io
import json
import math
import shutil
from dataclasses import replace

import pytest
from conftest import SMOKE, set_args

from gandistill import cli
from gandistill.config import load_config
from gandistill.data import load_dataset
from gandistill.errors import ConfigError
from gandistill.evaluation.options import parse_archs
from gandistill.evaluation.sections import at_chance
from gandistill.files import DistilledSet, load_generator_checkpoint
from gandistill.gan.trainer import train
from gandistill.pipelines import benchmark
from gandistill.pipelines.benchmark import (
    CROSS_ARCH_PLOT,
    RESULTS_FILE,
    TABLE_FILE,
    run_benchmark,
    time_to_accuracy,
)
from gandistill.pipelines.benchmark_results import (
    BYTES_HEADER,
    RESULT_KEYS,
    TABLE_HEADER,
    TIE_MARK,
    cross_arch_points,
    plot_cross_arch,
    render_table,
)
from gandistill.pipelines.benchmark_settings import (
    METHODS,
    benchmark_config,
    parse_ipcs,
    parse_methods,
)
from gandistill.runtime import format_bytes

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
    # trajectory matching's experts: one, two epochs
    "distill.mtt_experts=1",
    "distill.mtt_train_epochs=2",
    "distill.mtt_expert_epochs=1",
    "distill.mtt_max_start_epoch=1",
    "distill.mtt_syn_steps=2",
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


@pytest.fixture(scope="module")
def distilled_file(cache, generator_file):
    """The smoke generator distilled into for two more iterations."""
    cfg = load_config(
        SMOKE,
        [
            f"run_dir={cache / 'distilled'}",
            f"cache_dir={cache}",
            "train.eval_samples_per_class=0",
            "train.iterations=6",
            f"train.init_from={generator_file}",
            "match.weight=1",
            "match.net_width=8",
        ],
    )
    return train(cfg).generator_path


def _cfg(cache, *extra):
    return benchmark_config(SMOKE, [f"cache_dir={cache}", *TINY, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache, generator_file, distilled_file):
    """One benchmark of every method at IPC 1 and 2 (one seed), as a user runs it."""
    out = tmp_path_factory.mktemp("bench")
    lines = []
    run_benchmark(
        _cfg(cache), out, (1, 2), METHODS, 1, BUDGET, "quick", generator_file, "cmd", lines.append,
        distilled_file,
    )  # fmt: skip
    return out, lines


def table_rows(text):
    """The first markdown table of ``benchmark.md`` as a list of cell lists (header first)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    assert set(lines[1].replace("|", "")) <= set("-:"), lines[1]  # the separator row
    return [[c.strip() for c in line.strip("|").split("|")] for line in [lines[0], *lines[2:]]]


def test_table_and_results_are_well_formed(finished):
    out, lines = finished
    data = load_dataset(load_config(SMOKE).data)
    n_train = len(data.train)
    rows = [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]
    assert [(r["ipc"], r["method"]) for r in rows] == [(i, m) for i in (1, 2) for m in METHODS]
    for r in rows:
        assert tuple(r) == RESULT_KEYS
        assert r["test_images"] == len(data.test)
        assert len(r["accuracies"]) == 2 and 0 <= r["mean"] <= 1 and r["fid"] >= 0
        # bytes as stored: uint8 images with their labels (and soft labels, if any) per image
        per_image = data.train.images[0].numel() + 8
        ds = DistilledSet.load(out / r["set_file"])
        if ds.space not in ("latent",):  # latent sets store latents alone
            assert r["bytes"] >= 10 * r["ipc"] * per_image
        else:
            assert r["bytes"] == 4 * ds.latents.numel() + 8 * len(ds.labels) + 4 * (
                0 if ds.feature_offsets is None else ds.feature_offsets.numel()
            )
        assert r["arch"] == r["protocol"]["arch"] == "mlp"
        full = data.train.images.numel() + 8 * n_train
        assert r["compression"] == pytest.approx(full / r["bytes"])
        assert r["images_per_class_equivalent"] == pytest.approx(r["bytes"] / (10 * per_image))
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
    col = {name: TABLE_HEADER.index(name) for name in TABLE_HEADER}
    means = {(r["ipc"], r["method"]): 100 * r["mean"] for r in rows}  # one seed: the row's mean
    for cells in table[1:]:
        ipc, method, acc = int(cells[0]), cells[1], cells[col["accuracy (%)"]]
        assert "±" in acc and "(n=2)" in acc
        tta = cells[col["time to random-real accuracy"]]
        assert (tta == "n/a") == (method not in benchmark.OPTIMISED_METHODS)
        ior = cells[col["IOR (pts)"]]
        expected = means[ipc, method] - means[ipc, "random"]
        assert ior == "ref." if method == "random" else float(ior) == pytest.approx(expected, 0.01)
        assert (cells[col["vs best (pts)"]] == "best") == acc.startswith("**")
    for ipc in (1, 2):
        assert sum(c[col["vs best (pts)"]] == "best" for c in table[1:] if c[0] == str(ipc)) == 1
    assert "Command: `cmd`" in text and "Protocol `quick`" in text and "reduced CPU" in text
    assert "differences within the 95% resolution are ties" in text
    assert f"N = {len(data.test)} test images" in text and "DD-Ranking" in text
    # every row again, ordered by its bytes: methods that store as much sit side by side
    by_bytes = table_rows(text.split("## At equal bytes")[1])
    assert tuple(by_bytes[0]) == BYTES_HEADER and len(by_bytes) == len(rows) + 1
    order = [(int(c[2]), c[3]) for c in by_bytes[1:]]
    sizes = [next(r["bytes"] for r in rows if (r["ipc"], r["method"]) == key) for key in order]
    assert sizes == sorted(sizes)
    assert [c[0] for c in by_bytes[1:]] == [format_bytes(n) for n in sizes]
    latent = next(r for r in rows if r["method"] == "latent-dm")
    assert latent["generator_bytes"] > 0 and format_bytes(latent["bytes"]) in text
    # the main table counts the generator a latent set is decoded through beside the set
    stored = table[0].index("stored (compression)")
    for cells in table[1:]:
        row = next(r for r in rows if (str(r["ipc"]), r["method"]) == (cells[0], cells[1]))
        mb = (
            f" + {format_bytes(row['generator_bytes'])} generator"
            if row.get("generator_bytes")
            else ""
        )
        assert cells[stored].startswith(f"{format_bytes(row['bytes'])}{mb} (")
    n = 2 * len(METHODS)
    assert len(lines) == n
    assert lines[-1].startswith(f"[{n}/{n}] IPC 2 distilled-generator seed 0 mlp:")
    # sets drawn from the trained and the distilled generator: latents stored, generator apart
    for method in benchmark.SAMPLED_METHODS:
        for r in (r for r in rows if r["method"] == method):
            ds = DistilledSet.load(out / r["set_file"])
            assert ds.stop_reason == "sampled" and ds.ipc == r["ipc"]
            assert ds.config.distill.latent_scale == (0.3 if r["ipc"] == 1 else 1.0)
            assert r["generator_bytes"] > 0 and r["bytes"] < 10 * r["ipc"] * per_image
            assert 0 < r["distill_seconds"] < 60
    assert "a static set drawn once" in text


def test_second_call_skips_finished_rows(
    finished, cache, generator_file, distilled_file, tmp_path, monkeypatch
):
    out = tmp_path / "bench"
    shutil.copytree(finished[0], out)
    results = (out / RESULTS_FILE).read_text().splitlines()
    (out / RESULTS_FILE).write_text("\n".join(results[:-1]) + "\n")  # as if killed in the last
    computed = []
    real_rows = benchmark._Bench.rows

    def counting_rows(self, method, ipc, seed, archs):
        computed.append((ipc, method, seed))
        return real_rows(self, method, ipc, seed, archs)

    monkeypatch.setattr(benchmark._Bench, "rows", counting_rows)
    last_set = out / json.loads(results[-1])["set_file"]
    built_at = last_set.stat().st_mtime_ns
    lines = []
    rows = run_benchmark(
        _cfg(cache), out, (1, 2), METHODS, 1, BUDGET, "quick", generator_file, "cmd", lines.append,
        distilled_file,
    )  # fmt: skip
    n = 2 * len(METHODS)
    assert computed == [(2, "distilled-generator", 0)] and len(rows) == n
    assert last_set.stat().st_mtime_ns == built_at  # its set was finished: scored, not redrawn
    assert rows[-1]["distill_seconds"] == json.loads(results[-1])["distill_seconds"]
    assert sum("done earlier, skipped" in line for line in lines) == n - 1
    assert (out / RESULTS_FILE).read_text().splitlines()[:-1] == results[:-1]
    run_benchmark(
        _cfg(cache), out, (1, 2), METHODS, 1, BUDGET, "quick", generator_file, "cmd",
        distilled_generator=distilled_file,
    )  # fmt: skip
    assert len(computed) == 1  # everything finished: nothing recomputed


def test_rows_of_several_architectures_round_trip_through_results(finished, cache, tmp_path):
    """The finished folder's sets scored again by a network it lacks: one row per network,
    the set not rebuilt; the table keeps the first network and adds the cross-architecture
    one."""
    out = tmp_path / "bench"
    shutil.copytree(finished[0], out)
    archs = ["mlp", "lenet"]
    lines = []
    rows = run_benchmark(
        _cfg(cache), out, (1,), ("random", "pixel-dm"), 1, BUDGET, "quick", None, "cmd",
        lines.append, archs=archs,
    )  # fmt: skip
    new = [r for r in rows if r["arch"] == "lenet"]
    assert [(r["ipc"], r["method"]) for r in new] == [(1, "random"), (1, "pixel-dm")]
    assert all(r["protocol"]["arch"] == "lenet" and tuple(r) == RESULT_KEYS for r in new)
    saved = [json.loads(x) for x in (out / RESULTS_FILE).read_text().splitlines()]
    assert saved == rows  # what the call returned is what the file holds
    for r in new:  # the same set file as the mlp row of the same method
        twin = next(x for x in rows if x["arch"] == "mlp" and x["method"] == r["method"])
        assert twin["set_file"] == r["set_file"] and twin["ipc"] == 1
    text = (out / TABLE_FILE).read_text()
    assert not (out / CROSS_ARCH_PLOT).exists()  # no ConvNet row to set the unseen ones against
    main = table_rows(text)
    assert len(main) == len([r for r in rows if r["arch"] == "mlp"]) + 1  # the first network
    assert "fresh mlp networks (the cross-architecture table: the same for lenet)" in text
    cross = table_rows(text.split("## Across architectures")[1])
    assert cross[0] == ["IPC", "method", "mlp", "lenet", "mean of unseen"]
    line = next(c for c in cross[1:] if c[:2] == ["1", "random"])
    lenet = next(r for r in new if r["method"] == "random")
    failed = at_chance(lenet["accuracies"], lenet["num_classes"])  # tiny nets may not learn
    assert line[3] == f"{100 * lenet['mean']:.2f}" + (" †" if failed else "")
    mlp = next(r for r in rows if r["arch"] == "mlp" and r["method"] == "random" and r["ipc"] == 1)
    p = (mlp["mean"] + lenet["mean"]) / 2  # ± network spread (binomial error), as the report's
    assert line[4].startswith(f"{100 * p:.2f}") and "(" in line[4]
    assert line[4].removesuffix(" †").endswith(")")
    assert next(c for c in cross[1:] if c[:2] == ["2", "random"])[3] == "–"  # not scored
    # rows made before the key existed are read as their protocol's network
    old = dict(rows[0])
    del old["arch"]
    assert benchmark.row_arch(old) == rows[0]["protocol"]["arch"]
    again = run_benchmark(
        _cfg(cache), out, (1,), ("random",), 1, BUDGET, "quick", None, "cmd", lines.append,
        archs=archs,
    )  # fmt: skip
    assert len(again) == len(rows) and lines[-1].endswith("done earlier, skipped")


def test_the_cross_architecture_points_and_their_plot():
    """A point per (IPC, method) scored on ConvNet and every unseen network: the ConvNet mean
    with its standard error, the unseen mean as the report computes it; a PNG of them."""

    def row(method, arch, accs):
        return {"ipc": 1, "method": method, "seed": 0, "arch": arch, "accuracies": accs,
                "test_images": 1000, "protocol": {"arch": arch}}  # fmt: skip

    rows = [
        row("random", "convnet", [0.5, 0.6]), row("random", "mlp", [0.3, 0.5]),
        row("random", "lenet", [0.4, 0.4]), row("pixel-dm", "convnet", [0.8, 0.8]),
        row("pixel-dm", "mlp", [0.7, 0.7]),  # no lenet row: no point
    ]  # fmt: skip
    (point,) = cross_arch_points(rows)
    assert (point["ipc"], point["method"]) == (1, "random")
    p = 0.55
    assert point["matched"] == pytest.approx(p)
    assert point["matched_se"] == pytest.approx(math.sqrt(0.005 / 2 + p * (1 - p) / 1000))
    unseen = point["unseen"]
    assert unseen["mean"] == pytest.approx(0.4)
    assert unseen["network_se"] == pytest.approx(math.sqrt(0.02 / 2 + 0.0) / 2)
    b = [math.sqrt(q * (1 - q) / 1000) for q in (0.4, 0.4)]
    assert unseen["binomial_se"] == pytest.approx(sum(b) / 2)
    buf = io.BytesIO()
    plot_cross_arch([point], buf)
    assert buf.getvalue().startswith(b"\x89PNG")
    assert cross_arch_points([r for r in rows if r["arch"] != "convnet"]) == []  # no matched one


def test_a_generator_not_distilled_into_is_refused_for_the_distilled_row(
    cache, generator_file, tmp_path
):
    with pytest.raises(ConfigError, match="was not distilled into"):
        run_benchmark(
            _cfg(cache), tmp_path, (1,), ("distilled-generator",), 1, BUDGET, "quick",
            distilled_generator=generator_file,
        )  # fmt: skip


def test_another_protocol_in_the_same_folder_is_refused(finished, cache):
    with pytest.raises(ConfigError, match="another profile and protocol") as info:
        run_benchmark(_cfg(cache), finished[0], (1,), ("random",), profile="full", minutes=BUDGET)
    message = str(info.value)
    assert "profile quick vs full" in message and "augment none vs dc" in message
    assert "epochs" not in message and "\n" not in message


def test_a_validation_benchmark_scores_the_validation_split_and_keeps_to_it(cache, tmp_path):
    """``split="validation"`` scores on the validation images (choices without the test split),
    says so in the table and each row, and a folder holds one split."""
    rows = run_benchmark(
        _cfg(cache), tmp_path, (1,), ("random",), 1, BUDGET, "quick", split="validation"
    )
    data = load_dataset(_cfg(cache).data)
    assert len(data.val) != len(data.test)  # so that the count below tells them apart
    assert rows[0]["protocol"]["split"] == "validation" and rows[0]["test_images"] == len(data.val)
    assert "mean ± std validation-split accuracy" in (tmp_path / TABLE_FILE).read_text()
    with pytest.raises(ConfigError, match="another protocol .*split validation vs test"):
        run_benchmark(_cfg(cache), tmp_path, (1,), ("random",), 1, BUDGET, "quick")
    made = {"epochs": 300}  # a row from before the key: scored on the test split
    old = [{"profile": "quick", "minutes": 1.0, "protocol": made}]
    benchmark._check_settings(old, tmp_path, "quick", 1.0, _every({**made, "split": "test"}))
    with pytest.raises(ConfigError, match="split test vs validation"):
        benchmark._check_settings(
            old, tmp_path, "quick", 1.0, _every({**made, "split": "validation"})
        )
    with pytest.raises(ConfigError, match="needs a validation split"):
        run_benchmark(
            _cfg(cache, "data.val_fraction=0"), tmp_path / "b", (1,), ("random",), 1, BUDGET,
            "quick", split="validation",
        )  # fmt: skip


def test_a_pixel_set_started_from_the_generator_is_made_with_it(cache, tmp_path, generator_file):
    """A pixel method with a ``best_of_k`` start draws it from ``--generator``: the set records
    that generator, stores pixels only, and is reused by a second call."""
    cfg, method = _cfg(cache), ("pixel-dm-gen-init",)
    assert benchmark.needs_generator(method[0])
    run_benchmark(cfg, tmp_path, (1,), method, 1, BUDGET, "quick", generator_file)
    path = next((tmp_path / "sets").glob("*pixel-dm-gen-init*.pt"))
    ds = DistilledSet.load(path)
    assert ds.space == "pixel" and ds.latents is None and ds.config.distill.init == "best_of_k"
    assert ds.generator_sha256 == load_generator_checkpoint(generator_file).sha256
    made = path.stat().st_mtime_ns
    (tmp_path / RESULTS_FILE).unlink()  # rows gone, set kept: as after a killed scoring
    run_benchmark(cfg, tmp_path, (1,), method, 1, BUDGET, "quick", generator_file)
    assert path.stat().st_mtime_ns == made  # made the same way: reused, not rebuilt
    # scored by more networks for longer in another folder: the same set, not made again
    other = tmp_path / "more"
    shutil.copytree(tmp_path / "sets", other / "sets")
    more = _cfg(cache, "eval.n_models=3", "eval.epochs=3")
    (row,) = run_benchmark(more, other, (1,), method, 1, BUDGET, "quick", generator_file)
    assert (other / row["set_file"]).stat().st_mtime_ns == made and len(row["accuracies"]) == 3
    # another distillation setting is another set
    again = _cfg(cache, "distill.lr_net=0.02")
    shutil.copytree(tmp_path / "sets", tmp_path / "third" / "sets")
    run_benchmark(again, tmp_path / "third", (1,), method, 1, BUDGET, "quick", generator_file)
    assert (tmp_path / "third" / "sets" / path.name).stat().st_mtime_ns != made


def test_the_cpu_profile_trims_the_costliest_networks_and_says_so(cache, tmp_path):
    """``--profile cpu``: the configured protocol for the cheap networks, no augmentation for
    AlexNet (and at most 300 epochs), every row with the config's networks; the caption and the
    cross-architecture table say which network trained how, and the folder keeps to it."""
    cfg = _cfg(cache)
    archs = ["mlp", "alexnet"]
    rows = run_benchmark(cfg, tmp_path, (1,), ("random",), 1, BUDGET, "cpu", archs=archs)
    by = {r["arch"]: r["protocol"] for r in rows}
    assert by["mlp"]["augment"] == cfg.eval.augment == "dc" and by["alexnet"]["augment"] == "none"
    assert by["mlp"]["n_models"] == by["alexnet"]["n_models"] == cfg.eval.n_models == 2
    assert all(len(r["accuracies"]) == 2 and r["profile"] == "cpu" for r in rows)
    big = benchmark.protocol(replace(cfg.eval, epochs=1000), "cpu", "resnet18")
    assert (big.epochs, big.augment, big.arch) == (300, "none", "resnet18")
    assert benchmark.protocol(replace(cfg.eval, epochs=1000), "cpu", "lenet").epochs == 1000
    text = (tmp_path / TABLE_FILE).read_text()
    assert "Protocol `cpu` (the DC protocol where a 2-core CPU affords it" in text
    assert (
        "(the cross-architecture table: alexnet: 2 networks, 2 epochs without augmentation)" in text
    )
    assert (
        "each under its protocol: mlp: 2 networks, 2 epochs, 'dc' augmentation; alexnet: 2 "
        "networks, 2 epochs, no augmentation" in " ".join(text.split())
    )
    lines = []  # a second call keeps to the folder's protocols: nothing to do
    run_benchmark(cfg, tmp_path, (1,), ("random",), 1, BUDGET, "cpu", say=lines.append, archs=archs)
    assert lines[-1].endswith("done earlier, skipped")
    with pytest.raises(ConfigError, match="profile cpu vs quick.*augment dc vs none"):
        run_benchmark(cfg, tmp_path, (1,), ("random",), 1, BUDGET, "quick", archs=archs)


def _every(prot):
    """This call's protocol for a row of any network: ``prot``."""
    return lambda arch: prot


def test_settings_error_names_the_differing_protocol_keys(tmp_path):
    made = {"epochs": 300, "augment": "none", "lr": 0.01}
    rows = [{"profile": "quick", "minutes": 1.0, "protocol": made}]
    benchmark._check_settings(
        rows, tmp_path, "quick", 1.0, _every(dict(made))
    )  # the same: accepted
    now = {"epochs": 1000, "augment": "none", "lr": 0.01, "kd_alpha": 0.7}
    with pytest.raises(ConfigError) as info:
        benchmark._check_settings(rows, tmp_path / RESULTS_FILE, "quick", 1.0, _every(now))
    message = str(info.value)
    assert "another protocol" in message and "use another --out" in message
    assert "epochs 300 vs 1000" in message and "kd_alpha absent vs 0.7" in message
    assert "augment" not in message and "lr" not in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"another budget .*minutes 1 vs 2\.5"):
        benchmark._check_settings(rows, tmp_path, "quick", 2.5, _every(dict(made)))
    # keys added later read as the value older rows were made with: split test, amp off
    benchmark._check_settings(
        rows, tmp_path, "quick", 1.0, _every({**made, "split": "test", "amp": False})
    )
    with pytest.raises(ConfigError, match=r"amp False vs True"):
        benchmark._check_settings(rows, tmp_path, "quick", 1.0, _every({**made, "amp": True}))


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
    assert parse_archs("cross") == ["convnet", "mlp", "lenet", "alexnet", "resnet18"]
    with pytest.raises(ConfigError, match="unknown architecture"):
        parse_archs("convnet,vgg")
    assert benchmark.needs_generator("latent-mtt") and benchmark.needs_generator("hybrid-gm")
    assert not benchmark.needs_generator("pixel-mtt") and not benchmark.needs_generator("random")
    assert benchmark.needs_generator("pixel-mtt-gen-init")  # its start is drawn from G
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
        "1", "pixel-dm", "55.00 ± 11.18 (n=4)", "–", "–", "2.50", "1m00s", "30s (1/2 seeds)",
        "500×",
    ]  # fmt: skip


def _row(ipc, method, seed, accs, test_images=1000):
    """A hand-built results row with what the table reads (``test_images`` None: an older row
    that lacks the key)."""
    row = {
        "ipc": ipc, "method": method, "seed": seed, "accuracies": accs, "fid": 1.0,
        "distill_seconds": 10.0, "quick_checks": [], "time_to_accuracy": None,
        "compression": 50.0,
    }  # fmt: skip
    return row if test_images is None else {**row, "test_images": test_images}


def _cells(rows):
    """``(ipc, method) → {column: cell}`` of the table rendered from ``rows``."""
    table = table_rows(render_table(rows, []))
    return {(int(c[0]), c[1]): dict(zip(table[0], c, strict=True)) for c in table[1:]}


def test_methods_within_the_resolution_are_tied_with_the_best():
    # one point apart: within 1.96 × sqrt(spread + binomial variance) of 1000 test images
    rows = [
        _row(1, "pixel-dm", 0, [0.80, 0.81, 0.79]),
        _row(1, "kmeans", 0, [0.79, 0.80, 0.78]),
    ]
    cells = _cells(rows)
    best, other = cells[1, "pixel-dm"], cells[1, "kmeans"]
    assert best["accuracy (%)"] == "**80.00 ± 0.82 (n=3)**" and best["vs best (pts)"] == "best"
    assert other["accuracy (%)"] == f"79.00 ± 0.82 (n=3) {TIE_MARK}"
    gap, resolution = (float(x) for x in other["vs best (pts)"].split(" ± "))
    assert gap == -1.00 and resolution == pytest.approx(3.88, abs=0.01)


def test_methods_far_below_the_best_are_not_tied():
    rows = [
        _row(1, "pixel-dm", 0, [0.90, 0.91, 0.89]),
        _row(1, "kmeans", 0, [0.70, 0.71, 0.69]),
        _row(1, "herding", 0, [0.895, 0.905, 0.885]),
    ]
    cells = _cells(rows)
    assert cells[1, "pixel-dm"]["accuracy (%)"].startswith("**")
    assert TIE_MARK not in cells[1, "kmeans"]["accuracy (%)"]
    assert TIE_MARK in cells[1, "herding"]["accuracy (%)"]
    gap, resolution = (float(x) for x in cells[1, "kmeans"]["vs best (pts)"].split(" ± "))
    assert gap == -20.00 and 0 < resolution < 5
    assert "**" not in render_table(rows[1:2], [])  # a lone method at an IPC: nothing marked


def test_ior_is_the_accuracy_over_random_at_the_same_ipc():
    rows = [
        _row(1, "random", 0, [0.50, 0.60]),
        _row(1, "random", 1, [0.55, 0.65]),
        _row(1, "pixel-dm", 0, [0.70, 0.80]),
        _row(1, "pixel-dm", 1, [0.75, 0.85]),
        _row(1, "kmeans", 0, [0.60, 0.70]),  # one seed: compared with random's seed 0
        _row(2, "pixel-dm", 0, [0.90, 0.92]),  # no random row at IPC 2
    ]
    cells = _cells(rows)
    assert cells[1, "random"]["IOR (pts)"] == "ref."
    assert cells[1, "pixel-dm"]["IOR (pts)"] == "+20.00"  # 77.5 − 57.5
    assert cells[1, "kmeans"]["IOR (pts)"] == "+10.00 (1 common seeds)"  # 65 − 55
    assert cells[2, "pixel-dm"]["IOR (pts)"] == "–"


def test_rows_without_test_images_render_without_the_binomial_term():
    # no spread and no test-split size: a resolution of 0, so a 1.5-point gap is no tie
    old = [_row(1, "pixel-dm", 0, [0.8] * 3, None), _row(1, "kmeans", 0, [0.785] * 3, None)]
    cells = _cells(old)
    assert cells[1, "kmeans"]["vs best (pts)"] == "-1.50 ± 0.00"
    assert TIE_MARK not in cells[1, "kmeans"]["accuracy (%)"]
    # the same accuracies on 1000 test images: within the binomial resolution, a tie
    new = [{**r, "test_images": 1000} for r in old]
    assert TIE_MARK in _cells(new)[1, "kmeans"]["accuracy (%)"]
    # a method mixing old and new rows counts as unknown, and still renders
    mixed = [*old, _row(1, "kmeans", 1, [0.785] * 3)]
    assert TIE_MARK not in _cells(mixed)[1, "kmeans"]["accuracy (%)"]


def test_networks_at_chance_are_marked_in_the_cross_architecture_table():
    """A cell whose networks include one at chance (1/K ± 2 points) and the unseen mean it
    enters are marked, a footnote says which and how many; rows that do not record their
    number of classes (older ones) are not judged."""

    def row(method, arch, accs, classes=10):
        r = {**_row(1, method, 0, accs), "arch": arch, "protocol": {"arch": arch}}
        return r if classes is None else {**r, "num_classes": classes}

    rows = [
        row("random", "convnet", [0.5, 0.6]), row("random", "alexnet", [0.35, 0.34]),
        row("latent-dm", "convnet", [0.8, 0.8]), row("latent-dm", "alexnet", [0.10, 0.71, 0.73]),
        row("pixel-dm", "convnet", [0.8, 0.8]), row("pixel-dm", "alexnet", [0.1, 0.7], None),
    ]  # fmt: skip
    text = render_table(rows, [], "convnet")
    cross = table_rows(text.split("## Across architectures")[1])
    cells = {c[1]: c for c in cross[1:]}
    assert cells["latent-dm"][3] == "51.33 †" and cells["latent-dm"][4].endswith(" †")
    assert "†" not in "".join(cells["random"]) and "†" not in "".join(cells["pixel-dm"])
    note = next(line for line in text.splitlines() if line.startswith("† "))
    assert "within 2 points of 1/K" in note and note.endswith("alexnet IPC 1 latent-dm 1 of 3.")
    assert "†" not in render_table(rows[:2], [], "convnet")  # no network at chance: no note
