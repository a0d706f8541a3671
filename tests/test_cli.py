"""The CLI end to end, as a user runs it: subprocesses on the smoke config."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from gandistill.artifacts import atomic_save

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "gandistill", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.slow
def test_train_then_sample(tmp_path):
    run = tmp_path / "run"
    proc = run_cli("train", "--config", SMOKE, "--run-dir", run, "--set", f"cache_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert "class consistency:" in proc.stdout
    generator = run / "generator.pt"
    assert generator.is_file() and (run / "config.yaml").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))

    grid = tmp_path / "grid.png"
    proc = run_cli("sample", "--generator", generator, "--n-per-class", 3, "--out", grid)
    assert proc.returncode == 0, proc.stderr
    with Image.open(grid) as img:
        width, height = img.size
    # make_grid: 2 px padding around 28 px cells -> 10 rows of classes, 3 columns
    assert (width, height) == (2 + 3 * 30, 2 + 10 * 30)

    # a second train into the same folder is refused, --resume finishes at once
    assert_user_error(run_cli("train", "--config", SMOKE, "--run-dir", run), "already holds a run")
    assert_user_error(run_cli("sample", "--generator", generator, "--out", grid), "already exists")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("train", "--config", "missing.yaml"), ("config file not found",)),
        (("train", "--set", "train.iteratons=3"), ("unknown config key 'train.iteratons'",)),
        (("train", "--set", "train.batch_size=zero"), ("'train.batch_size' expects int",)),
        (("train", "--set", "train.augment=flip"), ("unknown augmentation 'flip'",)),
        (("train", "--set", "data.name=nope"), ("nope",)),
        (
            ("train", "--set", "data.name=cifar10", "--set", "data.root=nowhere"),
            ("cifar10", "not found"),
        ),
        (("train", "--device", "cuda:7"), ("cuda:7",)),
        (("train", "--device", "tpu"), ("unknown device 'tpu'",)),
        (("train", "--bogus-flag"), ("unrecognized arguments",)),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, fragments):
    assert_user_error(run_cli(*args, "--run-dir", tmp_path / "r", cwd=tmp_path), *fragments)
    assert not (tmp_path / "r" / "generator.pt").exists()


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {iterations: 3\n")
    assert_user_error(run_cli("train", "--config", bad), "malformed YAML")


def test_sample_rejects_bad_checkpoints(tmp_path):
    out = tmp_path / "g.png"
    missing = tmp_path / "x.pt"
    assert_user_error(run_cli("sample", "--generator", missing, "--out", out), "not found")
    truncated = tmp_path / "t.pt"
    atomic_save({"kind": "gandistill.generator", "format_version": 1}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:30])
    assert_user_error(run_cli("sample", "--generator", truncated, "--out", out), "not a readable")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    assert_user_error(run_cli("sample", "--generator", other, "--out", out), "not a gandistill")
    assert_user_error(run_cli("sample", "--generator", other, "--out", tmp_path / "g.jpg"), ".png")
    assert not out.exists()
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["other.pt", "t.pt"]
