"""The CLI end to end, as a user runs it: subprocesses on the smoke config."""

import subprocess
import sys
from pathlib import Path

import numpy as np
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

    # distil through it, then export the set in every format
    distilled = tmp_path / "set.pt"
    proc = run_cli("distill", "--generator", generator, "--ipc", 2, "--out", distilled)
    assert proc.returncode == 0, proc.stderr
    assert "quick check:" in proc.stdout and distilled.is_file()
    for fmt, name in (
        ("png", "set.png"),
        ("npz", "set.npz"),
        ("pt", "export.pt"),
        ("imagefolder", "folder"),
    ):
        proc = run_cli(
            "sample", "--distilled", distilled, "--format", fmt, "--out", tmp_path / name
        )
        assert proc.returncode == 0, proc.stderr
        assert "decoded through" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == [str(c) for c in range(10)]
    assert len(list((tmp_path / "folder").rglob("*.png"))) == 20
    npz = np.load(tmp_path / "set.npz")
    assert npz["images"].shape == (20, 1, 28, 28) and npz["images"].dtype == np.uint8
    exported = torch.load(tmp_path / "export.pt", weights_only=True)
    assert exported["labels"].tolist() == [c for c in range(10) for _ in range(2)]
    # the export is a dataset gandistill reads back
    proc = run_cli(
        "distill",
        "--space",
        "pixel",
        "--config",
        SMOKE,
        "--out",
        tmp_path / "px.pt",
        "--set",
        "data.name=tensors",
        "--set",
        f"data.root={tmp_path / 'export.pt'}",
        "--set",
        "data.test_fraction=0.5",
    )
    assert proc.returncode == 0, proc.stderr
    # without the generator at hand, the stored images are exported
    generator.rename(tmp_path / "moved.pt")
    proc = run_cli("sample", "--distilled", distilled, "--out", tmp_path / "stored.png")
    assert proc.returncode == 0 and "stored images" in proc.stdout, proc.stderr
    generator = tmp_path / "moved.pt"

    # a second train into the same folder is refused, --resume finishes at once
    assert_user_error(run_cli("train", "--config", SMOKE, "--run-dir", run), "already holds a run")
    assert_user_error(
        run_cli("distill", "--generator", generator, "--out", distilled), "already exists"
    )
    assert_user_error(
        run_cli("distill", "--generator", distilled, "--out", tmp_path / "x.pt"),
        "is a gandistill.distilled, not a gandistill.generator",
    )
    assert_user_error(
        run_cli("distill", "--generator", generator, "--ipc", 0, "--out", tmp_path / "x.pt"),
        "'distill.ipc' must be >= 1",
    )
    assert_user_error(
        run_cli("sample", "--distilled", generator, "--out", tmp_path / "x.png"),
        "not a gandistill.distilled",
    )
    assert not (tmp_path / "x.pt").exists()
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
    assert not (tmp_path / "r").exists()  # nothing written for a run that could not start


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
