"""The benchmark scripts stay runnable: each on the smoke config, as a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"


def run_script(name, *args, cwd):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_bench_gan_compares_variants(tmp_path):
    proc = run_script(
        "bench_gan.py",
        "--config", SMOKE,
        "--variants", "mmd,none",
        "--run-root", tmp_path / "runs",
        "--set", f"cache_dir={tmp_path}",
        "--out", tmp_path / "table.md",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "table.md").read_text()
    assert "| mmd |" in table and "| none |" in table


@pytest.mark.slow
def test_distill_and_score_reports_initial_and_final(tmp_path):
    log = tmp_path / "log.jsonl"
    proc = run_script(
        "distill_and_score.py",
        "--config", SMOKE,
        "--out", tmp_path / "set.pt",
        "--set", "distill.space=pixel",
        "--log", log,
        "--random-real",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(log.read_text())
    assert result["iterations"] == 2 and result["stop_reason"] == "max_iterations"
    assert (result["val_images"], result["test_images"]) == (400, 1000)
    for row in ("final", "initial", "random_real"):
        for split in ("val", "test"):
            assert 0 <= result[row][split]["mean"] <= 1
            assert len(result[row][split]["accuracies"]) == 1
    assert (tmp_path / "set.pt").is_file()


@pytest.mark.slow
def test_bench_distill_speed(tmp_path):
    proc = run_script(
        "bench_distill.py",
        "--config", SMOKE,
        "speed", "--repeats", 2,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "plain per-class loop" in proc.stdout and "speed-up" in proc.stdout


@pytest.mark.slow
def test_bench_distill_curve_snapshots_are_copies(tmp_path):
    """Pixel-space snapshots must be copies: the set is optimised in place."""
    proc = run_script(
        "bench_distill.py", "--config", SMOKE, "curve",
        "--generator", "unused-for-pixel-space.pt",
        "--methods", "pixel-dc",
        "--minutes", "0.05",
        "--every", "0.01",
        "--set", f"cache_dir={tmp_path}",
        "--set", "distill.lr=100",
        "--out", tmp_path / "curve",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert len(rows) >= 2 and rows[0]["minutes"] == 0.0
    assert [r["minutes"] for r in rows] == sorted(r["minutes"] for r in rows)
    assert len({r["mean"] for r in rows}) > 1  # noise start and a heavily stepped set differ
    assert (tmp_path / "curve" / "curve.png").is_file()


@pytest.mark.slow
def test_bench_scaling_prints_a_table(tmp_path):
    proc = run_script("bench_scaling.py", "--quick", "--procs", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| workload | 1 process |")
    assert {r.split(" | ")[0] for r in rows[1:]} == {
        "| GAN training (images/s)",
        "| GM outer iteration (s)",
        "| DM iteration (s)",
    }
    for row in rows[1:]:
        assert float(row.split(" | ")[1]) > 0


def test_bench_distill_curve_rejects_an_unknown_method(tmp_path):
    proc = run_script(
        "bench_distill.py", "--config", SMOKE, "curve",
        "--generator", "unused.pt",
        "--methods", "latent-krr,pixel-xyz",
        "--out", tmp_path / "curve",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "unknown method(s) pixel-xyz" in proc.stderr
    assert not (tmp_path / "curve").exists()


@pytest.mark.slow
def test_bench_fidelity_compares_extractors_and_kid_estimates(tmp_path):
    out = tmp_path / "set.pt"
    made = subprocess.run(
        [sys.executable, "-m", "gandistill", "distill", "--config", str(SMOKE), "--space",
         "pixel", "--ipc", "2", "--out", str(out), "--set", f"cache_dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = tmp_path / "fidelity.json"
    proc = run_script(
        "bench_fidelity.py", "--distilled", out, "--draws", 2, "--json", result, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    numbers = json.loads(result.read_text())
    assert set(numbers["fidelity"]) == {"independent", "classifier"}
    for table in numbers["fidelity"].values():
        assert set(table) == {"extractor", "distilled", "random_real", "herding"}
    assert numbers["kid_random_real"]["draws"] == 2
    assert "stratified estimate" in proc.stdout and "| uint8 images + labels |" in proc.stdout


@pytest.mark.slow
def test_bench_sampled_pairs_sampled_sets_with_random_real_ones(tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "gandistill", "train", "--config", str(SMOKE), "--run-dir",
         str(tmp_path / "g"), "--set", f"cache_dir={tmp_path}", "--set", "train.progress=false"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = tmp_path / "sampled.json"
    proc = run_script(
        "bench_sampled.py",
        "--generator", tmp_path / "g" / "generator.pt",
        "--ipc", 1,
        "--draws", 2,
        "--select", "none",
        "--latent-scale", "1,0.5",
        "--set", f"cache_dir={tmp_path}",
        "--json", result,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    numbers = json.loads(result.read_text())
    assert numbers["images"] == {"val": 400, "test": 1000}
    rows = numbers["rows"]
    assert [(r["set"], r["ipc"]) for r in rows] == [
        ("g/generator.pt select=none latent-scale=1", 1),
        ("g/generator.pt select=none latent-scale=0.5", 1),
        ("random real subset", 1),
    ]
    for row in rows:
        for split, n in (("val", 400), ("test", 1000)):
            stats = row[split]
            assert len(stats["accuracies"]) == 2
            assert stats["mean"] == pytest.approx(sum(stats["accuracies"]) / 2)
            assert stats["binomial_se"] == pytest.approx(
                (stats["mean"] * (1 - stats["mean"]) / n) ** 0.5
            )
    assert "| random real subset | 1 |" in proc.stdout
    only_real = run_script(
        "bench_sampled.py",
        "--generator", tmp_path / "g" / "generator.pt",
        "--ipc", 2,
        "--draws", 1,
        "--no-sampled",
        "--set", f"cache_dir={tmp_path}",
        "--json", result,
        cwd=tmp_path,
    )  # fmt: skip
    assert only_real.returncode == 0, only_real.stderr
    only = json.loads(result.read_text())["rows"]
    assert [(r["set"], r["ipc"]) for r in only] == [("random real subset", 2)]


def test_bench_sampled_refuses_zero_draws_in_one_line(tmp_path):
    proc = run_script("bench_sampled.py", "--generator", "missing.pt", "--draws", 0, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "bench_sampled: error: --draws and every --ipc must be at least 1"
    ]


_STUB_MAIN = """
import argparse, sys
import torchvision
p = argparse.ArgumentParser()
for a in ("dataset", "data_path", "ipc", "Iteration", "num_exp", "num_eval", "epoch_eval_train",
          "init", "save_path", "dsa_strategy"):
    p.add_argument("--" + a)
args = p.parse_args()
if ".view(out.size(0), -1)" in open("networks.py").read():
    sys.exit("networks.py not patched")
train = torchvision.datasets.MNIST(args.data_path, train=True, download=False)
test = torchvision.datasets.MNIST(args.data_path, train=False, download=False)
print("sizes", len(train), len(test), int(train.targets.sum()))
for it in range(0, int(args.Iteration) + 1, 10):  # 5 s per 10 iterations
    print("[2026-12-03 00:%02d:%02d] iter = %05d, loss = 1.0" % (it // 120, it // 2 % 60, it))
"""


def test_bench_reference_times_a_reference_checkout(tmp_path):
    """The script writes mnist5k as MNIST idx files torchvision reads, patches the reference's
    copy, reads its timestamps (a stub stamping 0.5 s per iteration here) and times gandistill."""
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "main_DM.py").write_text(_STUB_MAIN)
    (ref / "networks.py").write_text("out = out.view(out.size(0), -1)\n")
    proc = run_script(
        "bench_reference.py", "--reference", ref, "--ipc", 1, "--iterations", 20,
        "--config", SMOKE, "--out", tmp_path / "speed.md", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = (tmp_path / "speed.md").read_text().splitlines()[-1].strip("|").split("|")
    assert row[0].strip() == "1" and row[1].strip() == "0.50"  # the stub's pace, parsed
    assert float(row[2]) > 0 and row[3].strip().endswith("×")
    assert "mnist5k" not in proc.stderr and (ref / "networks.py").read_text().count(".view(") == 1
