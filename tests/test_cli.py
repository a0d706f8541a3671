"""The CLI end to end, as a user runs it: subprocesses on the smoke config (tables of command
lines share an interpreter, see ``cli_batch``)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_batch import run_cli_many
from PIL import Image

from gandistill.files import atomic_save

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
    run, here = tmp_path / "run", Path.cwd()
    generator, grid, distilled = run / "generator.pt", tmp_path / "grid.png", tmp_path / "set.pt"
    exports = {"png": "set.png", "npz": "set.npz", "pt": "export.pt", "imagefolder": "folder"}
    # train, sample a grid, distil through the generator, export the set in every format, and
    # distil the export again as a dataset gandistill reads back
    procs = run_cli_many(
        [
            (
                ["train", "--config", SMOKE, "--run-dir", run, "--set", f"cache_dir={tmp_path}"],
                here,
            ),
            (["sample", "--generator", generator, "--n-per-class", 3, "--out", grid], here),
            (["distill", "--generator", generator, "--ipc", 2, "--out", distilled], here),
            *(
                (
                    ["sample", "--distilled", distilled, "--format", fmt, "--out", tmp_path / name],
                    here,
                )
                for fmt, name in exports.items()
            ),
            (
                [
                    *[
                        "distill",
                        "--space",
                        "pixel",
                        "--config",
                        SMOKE,
                        "--out",
                        tmp_path / "px.pt",
                    ],
                    *["--set", "data.name=tensors", "--set", f"data.root={tmp_path / 'export.pt'}"],
                    # two images per class: one to train on, one to test, none to validate
                    *["--set", "data.test_fraction=0.5", "--set", "data.val_fraction=0"],
                ],
                here,
            ),
        ]
    )
    for proc in procs:
        assert proc.returncode == 0, (proc.args, proc.stderr)
    train_proc, _, distill_proc, *export_procs, _ = procs
    assert "class consistency:" in train_proc.stdout
    assert generator.is_file() and (run / "config.yaml").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    with Image.open(grid) as img:
        width, height = img.size
    # make_grid: 2 px padding around 28 px cells -> 10 rows of classes, 3 columns
    assert (width, height) == (2 + 3 * 30, 2 + 10 * 30)
    assert "quick check:" in distill_proc.stdout and distilled.is_file()
    assert all("decoded through" in proc.stdout for proc in export_procs)
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == [str(c) for c in range(10)]
    assert len(list((tmp_path / "folder").rglob("*.png"))) == 20
    npz = np.load(tmp_path / "set.npz")
    assert npz["images"].shape == (20, 1, 28, 28) and npz["images"].dtype == np.uint8
    exported = torch.load(tmp_path / "export.pt", weights_only=True)
    assert exported["labels"].tolist() == [c for c in range(10) for _ in range(2)]
    assert (tmp_path / "px.pt").is_file()

    # without the generator at hand, the stored images are exported; then the refusals
    moved = tmp_path / "moved.pt"
    generator.rename(moved)
    x = tmp_path / "x.pt"
    stored, *refused = run_cli_many(
        [
            (["sample", "--distilled", distilled, "--out", tmp_path / "stored.png"], here),
            (["train", "--config", SMOKE, "--run-dir", run], here),
            (["distill", "--generator", moved, "--out", distilled], here),
            (["distill", "--generator", distilled, "--out", x], here),
            (["distill", "--generator", moved, "--ipc", 0, "--out", x], here),
            (["sample", "--distilled", moved, "--out", tmp_path / "x.png"], here),
            (["sample", "--generator", moved, "--out", grid], here),
        ]
    )
    assert stored.returncode == 0 and "stored images" in stored.stdout, stored.stderr
    for proc, fragment in zip(
        refused,
        [
            "already holds a run",  # a second train into the same folder
            "already exists",
            "is a gandistill.distilled, not a gandistill.generator",
            "'distill.ipc' must be >= 1",
            "not a gandistill.distilled",
            "already exists",
        ],
        strict=True,
    ):
        assert_user_error(proc, fragment)
    assert not x.exists()


BAD_INPUT = [
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
]


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
    """Every ``BAD_INPUT`` command line run once in its own folder: (finished command, folder)."""
    folders = [tmp_path_factory.mktemp(f"bad{i}") for i in range(len(BAD_INPUT))]
    jobs = [
        ([*args, "--run-dir", f / "r"], f) for (args, _), f in zip(BAD_INPUT, folders, strict=True)
    ]
    return list(zip(run_cli_many(jobs, workers=2), folders, strict=True))


@pytest.mark.parametrize("case", range(len(BAD_INPUT)), ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line(bad_input_runs, case):
    proc, folder = bad_input_runs[case]
    assert_user_error(proc, *BAD_INPUT[case][1])
    assert not (folder / "r").exists()  # nothing written for a run that could not start


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {iterations: 3\n")
    assert_user_error(run_cli("train", "--config", bad), "malformed YAML")


def test_sample_rejects_bad_checkpoints(tmp_path):
    out = tmp_path / "g.png"
    truncated = tmp_path / "t.pt"
    atomic_save({"kind": "gandistill.generator", "format_version": 1}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:30])
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    cases = [
        (tmp_path / "x.pt", out, "not found"),
        (truncated, out, "not a readable"),
        (other, out, "not a gandistill"),
        (other, tmp_path / "g.jpg", ".png"),
    ]
    procs = run_cli_many(
        [(["sample", "--generator", g, "--out", o], tmp_path) for g, o, _ in cases]
    )
    for proc, (_, _, fragment) in zip(procs, cases, strict=True):
        assert_user_error(proc, fragment)
    assert not out.exists()
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["other.pt", "t.pt"]
