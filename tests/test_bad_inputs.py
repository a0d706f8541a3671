"""Bad input, as a user meets it: the CLI run in subprocesses on a table of mistakes (the
cases share interpreters, see ``cli_batch``).

Every case must end in exit status 2 and one ``gandistill: error: ...`` line naming the problem,
with no traceback and nothing written: no output file or folder, no ``.*.tmp`` left over, and
the module's shared files untouched. Untrusted files (code-carrying pickles, newer formats) are
refused before anything in them runs.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from cli_batch import run_cli_many
from PIL import Image

from gandistill.config import DataConfig
from gandistill.data import load_dataset
from gandistill.errors import ArtifactError
from gandistill.files import FORMAT_VERSION, DistilledSet, atomic_save, load_generator_checkpoint

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
ERROR_PREFIX = "gandistill: error: "
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run_cli(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gandistill", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def assert_user_error(proc: subprocess.CompletedProcess, fragment: str) -> str:
    """Exit status 2, one stderr line starting ``gandistill: error:`` and holding ``fragment``."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    assert fragment in lines[0], lines[0]
    return lines[0]


def write_images(folder: Path, n: int, mode: str, size: int = 28, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    for i in range(n):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{mode}_{i}.png")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``root``: what a failing command must not touch."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One smoke generator, one distilled set made through it, and the broken files derived
    from them, built once for the module."""
    root = tmp_path_factory.mktemp("bad_inputs")
    f = SimpleNamespace(root=root, cache=root / "cache")
    run = root / "run"
    proc = run_cli(
        "train", "--config", SMOKE, "--run-dir", run, "--set", f"cache_dir={f.cache}", cwd=root
    )
    assert proc.returncode == 0, proc.stderr
    f.generator = run / "generator.pt"
    f.distilled = root / "set.pt"
    proc = run_cli(
        "distill",
        "--generator",
        f.generator,
        "--out",
        f.distilled,
        "--set",
        f"cache_dir={f.cache}",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr

    payload = torch.load(f.generator, weights_only=True)
    f.other_generator = root / "other_generator.pt"  # one field changed: another sha256
    atomic_save(payload | {"iteration": payload["iteration"] + 1}, f.other_generator)
    f.truncated = root / "truncated.pt"
    data = f.generator.read_bytes()
    f.truncated.write_bytes(data[: len(data) // 2])
    f.plain = root / "plain.pt"
    torch.save(torch.zeros(3, 4), f.plain)

    f.bad_yaml = root / "bad.yaml"
    f.bad_yaml.write_text("train: {iterations: 3\n")
    f.unknown_key_yaml = root / "unknown_key.yaml"
    f.unknown_key_yaml.write_text("train:\n  iteratons: 3\n")
    f.wrong_type_yaml = root / "wrong_type.yaml"
    f.wrong_type_yaml.write_text("model:\n  latent_dim: [16]\n")

    gen = torch.Generator().manual_seed(0)
    f.three_classes = root / "three_classes.pt"
    atomic_save(
        {
            "images": torch.randint(0, 256, (30, 1, 28, 28), dtype=torch.uint8, generator=gen),
            "labels": torch.arange(3).repeat_interleave(10),
        },
        f.three_classes,
    )
    f.empty_class = root / "empty_class"
    write_images(f.empty_class / "a", 3, "L")
    (f.empty_class / "b").mkdir()

    f.existing = root / "existing.png"
    f.existing.write_bytes(b"not to be replaced")
    f.blocker = root / "a_file"  # a regular file where a folder should be: fails for root too
    f.blocker.write_text("")
    f.read_only = root / "read_only"
    f.read_only.mkdir()
    f.read_only.chmod(0o500)
    yield f
    f.read_only.chmod(0o700)


def _unwritable(f: SimpleNamespace, out: Path) -> list:
    # root ignores permission bits, so it gets a path under a regular file instead
    folder = f.blocker if IS_ROOT else f.read_only
    return ["sample", "--generator", f.generator, "--out", folder / "grid.png"]


def _train(*extra: object) -> Callable[[SimpleNamespace, Path], list]:
    return lambda f, out: ["train", "--config", SMOKE, "--run-dir", out, *extra]


def _cache_set(f: SimpleNamespace) -> list:
    return ["--set", f"cache_dir={f.cache}"]


# (id, argv builder taking the shared files and the case's --out path, fragment of the message)
CASES: list[tuple[str, Callable[[SimpleNamespace, Path], list], str]] = [
    # --- config -------------------------------------------------------------------------------
    (
        "yaml-malformed",
        lambda f, out: ["train", "--config", f.bad_yaml, "--run-dir", out],
        "malformed YAML",
    ),
    (
        "yaml-unknown-key",
        lambda f, out: ["train", "--config", f.unknown_key_yaml, "--run-dir", out],
        "unknown config key 'train.iteratons'",
    ),
    (
        "yaml-wrong-type",
        lambda f, out: ["train", "--config", f.wrong_type_yaml, "--run-dir", out],
        "'model.latent_dim' expects int, got list",
    ),
    (
        "config-not-found",
        lambda f, out: ["train", "--config", f.root / "missing.yaml", "--run-dir", out],
        "config file not found",
    ),
    ("override-not-key-value", _train("--set", "iterations"), "not of the form section.key=value"),
    ("batch-size-zero", _train("--set", "train.batch_size=0"), "'train.batch_size' must be >= 1"),
    ("iterations-zero", _train("--set", "train.iterations=0"), "'train.iterations' must be >= 1"),
    (
        "image-size-unsupported",
        _train("--set", "data.image_size=16"),
        "has 16 px (set data.image_size to one of 28, 32, 64)",
    ),
    (
        "ipc-zero",
        lambda f, out: ["distill", "--config", SMOKE, "--space", "pixel", "--ipc", 0, "--out", out],
        "'distill.ipc' must be >= 1, got 0",
    ),
    (
        "matching-network-too-deep",
        lambda f, out: [
            *["distill", "--config", SMOKE, "--space", "pixel", "--out", out],
            *["--set", "distill.net_depth=6"],
        ],
        "distill.net_depth 6 pools 28-px images below one pixel; use at most 5",
    ),
    (
        "classifier-too-deep",
        lambda f, out: [
            *["distill", "--config", SMOKE, "--space", "pixel", "--out", out],
            *["--set", "distill.init=kmeans", "--set", "classifier.depth=6", *_cache_set(f)],
        ],
        "classifier.depth 6 pools 28-px images below one pixel",
    ),
    # --- data ---------------------------------------------------------------------------------
    (
        "ipc-larger-than-class",
        lambda f, out: [
            *["distill", "--config", SMOKE, "--space", "pixel", "--ipc", 100000, "--out", out],
            *["--set", "distill.init=real", *_cache_set(f)],
        ],
        "ipc 100000 exceeds the 360 training images of class 0 for init 'real'",
    ),
    (
        "dataset-folder-missing",
        _train("--set", "data.name=mnist", "--set", "data.root=/nonexistent"),
        "mnist not found under '/nonexistent'",
    ),
    (
        "imagefolder-empty-class",
        lambda f, out: [
            *_train("--set", "data.name=imagefolder")(f, out),
            *["--set", f"data.root={f.empty_class}"],
        ],
        "class folder 'b' holds no images",
    ),
    # --- checkpoints and artifacts ------------------------------------------------------------
    (
        "generator-truncated",
        lambda f, out: ["sample", "--generator", f.truncated, "--out", out / "g.png"],
        "is not a readable gandistill file",
    ),
    (
        "generator-not-gandistill",
        lambda f, out: ["sample", "--generator", f.plain, "--out", out / "g.png"],
        "is not a gandistill file (expected a gandistill.generator)",
    ),
    (
        "sample-generator-is-distilled-set",
        lambda f, out: ["sample", "--generator", f.distilled, "--out", out / "g.png"],
        "is a gandistill.distilled, not a gandistill.generator",
    ),
    (
        "sample-distilled-is-generator",
        lambda f, out: ["sample", "--distilled", f.generator, "--out", out / "set.png"],
        "is a gandistill.generator, not a gandistill.distilled",
    ),
    (
        "evaluate-generator-is-distilled-set",
        lambda f, out: ["evaluate", "--generator", f.distilled, "--out", out],
        "is a gandistill.distilled, not a gandistill.generator",
    ),
    (
        "evaluate-distilled-is-generator",
        lambda f, out: ["evaluate", "--distilled", f.generator, "--out", out],
        "is a gandistill.generator, not a gandistill.distilled",
    ),
    (
        "generator-class-count-mismatch",
        lambda f, out: [
            *["distill", "--generator", f.generator, "--out", out, "--set", "data.name=tensors"],
            *["--set", f"data.root={f.three_classes}"],
        ],
        "the generator has 10 classes of 1×28² images; dataset 'tensors' has 3 classes",
    ),
    (
        "distilled-set-class-count-mismatch",
        lambda f, out: [
            *["evaluate", "--distilled", f.distilled, "--out", out, "--set", "data.name=tensors"],
            *["--set", f"data.root={f.three_classes}", *_cache_set(f)],
        ],
        "the distilled set has 10 classes",
    ),
    (
        "generator-image-shape-mismatch",
        lambda f, out: [
            *["evaluate", "--generator", f.generator, "--out", out],
            *["--set", "data.channels=3", *_cache_set(f)],
        ],
        "the generator has 10 classes of 1×28² images; dataset 'mnist5k' has 10 classes of 3×28²",
    ),
    (
        "generator-hash-mismatch",
        lambda f, out: [
            *["sample", "--distilled", f.distilled, "--generator", f.other_generator],
            *["--out", out / "set.png"],
        ],
        "is not the one this set was distilled with",
    ),
    # --- outputs ------------------------------------------------------------------------------
    ("output-unwritable", _unwritable, "not writable" if not IS_ROOT else "is not a folder"),
    (
        "output-is-a-device",
        lambda f, out: [
            *["distill", "--config", SMOKE, "--space", "pixel", "--out", os.devnull],
            "--overwrite",
        ],
        f"cannot write {os.devnull}: it is not a regular file",
    ),
    (
        "output-exists",
        lambda f, out: ["sample", "--generator", f.generator, "--out", f.existing],
        "already exists (pass --overwrite to replace it)",
    ),
    (
        "export-format-unknown",
        lambda f, out: ["sample", "--distilled", f.distilled, "--out", out / "set.gif"],
        "unknown format 'gif'",
    ),
    (
        "export-format-flag-unknown",
        lambda f, out: [
            *["sample", "--distilled", f.distilled, "--format", "gif", "--out", out / "set.png"]
        ],
        "sample: argument --format: invalid choice: 'gif'",
    ),
    (
        "sample-n-per-class-zero",
        lambda f, out: [
            *["sample", "--generator", f.generator, "--n-per-class", 0, "--out", out / "g.png"]
        ],
        "--n-per-class must be >= 1, got 0",
    ),
    # --- evaluate options ---------------------------------------------------------------------
    (
        "evaluate-unknown-architecture",
        lambda f, out: ["evaluate", "--distilled", f.distilled, "--archs", "foo", "--out", out],
        "unknown architecture(s) foo",
    ),
    (
        "evaluate-unknown-feature-extractor",
        lambda f, out: [
            *["evaluate", "--distilled", f.distilled, "--out", out],
            *["--feature-extractor", "foo"],
        ],
        "unknown feature extractor 'foo'",
    ),
    (
        "evaluate-inception-weights-missing",
        lambda f, out: [
            *["evaluate", "--distilled", f.distilled, "--out", out],
            *["--feature-extractor", "inception-v3-compat", "--inception-weights"],
            "/nonexistent.pth",
        ],
        "Inception weights not found: /nonexistent.pth",
    ),
    (
        "evaluate-kid-subset-too-large",
        lambda f, out: [
            *["evaluate", "--distilled", f.distilled, "--out", out],
            *["--kid-subset-size", 1000, *_cache_set(f)],
        ],
        "KID subset size 1000 must lie in 2..20",
    ),
]


CASE_TEST = "test_bad_input_is_one_line_and_writes_nothing"
WORKERS = max(1, min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def outcomes(files, request, tmp_path_factory) -> SimpleNamespace:
    """Run the selected cases in ``WORKERS`` interpreters (see ``cli_batch``), each case in
    its own folder: for each id the finished command, its ``--out`` path and its folder; plus
    snapshots of the shared files."""
    wanted = {
        item.callspec.id
        for item in request.session.items
        if getattr(item, "originalname", None) == CASE_TEST
    }
    jobs = [(case_id, builder, tmp_path_factory.mktemp(case_id)) for case_id, builder, _ in CASES]
    jobs = [job for job in jobs if job[0] in wanted]
    before = snapshot(files.root)
    procs = run_cli_many(
        [(builder(files, folder / "out"), folder) for _, builder, folder in jobs],
        workers=WORKERS,
        env={"OMP_NUM_THREADS": "1"},
    )
    results = {
        case_id: (proc, folder / "out", folder)
        for (case_id, _, folder), proc in zip(jobs, procs, strict=True)
    }
    return SimpleNamespace(results=results, before=before, after=snapshot(files.root))


@pytest.mark.parametrize(
    ("case_id", "fragment"), [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_and_writes_nothing(outcomes, case_id, fragment):
    proc, out, folder = outcomes.results[case_id]
    assert_user_error(proc, fragment)
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    assert not list(folder.rglob(".*.tmp"))


def test_failed_commands_leave_shared_files_untouched(files, outcomes):
    assert outcomes.after == outcomes.before  # inputs, and the output that already existed
    assert not list(files.root.rglob(".*.tmp"))
    if not IS_ROOT:
        assert not list(files.read_only.iterdir())


def test_enough_cases():
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


# --- things that are not errors -----------------------------------------------------------------


def test_image_folder_mixing_gray_and_rgb_trains(tmp_path):
    folder = tmp_path / "mixed"
    write_images(folder / "a", 3, "L", seed=1)
    write_images(folder / "a", 2, "RGB", seed=2)
    write_images(folder / "b", 3, "RGB", seed=3)
    write_images(folder / "b", 2, "L", seed=4)
    run = tmp_path / "run"
    proc = run_cli(
        *["train", "--config", SMOKE, "--run-dir", run, "--set", "data.name=imagefolder"],
        *["--set", f"data.root={folder}", "--set", "data.test_fraction=0.2"],
        *["--set", "train.iterations=1", "--set", "train.eval_samples_per_class=0"],
        *["--set", f"cache_dir={tmp_path}"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    info = load_generator_checkpoint(run / "generator.pt").info
    assert (info.num_classes, info.channels, info.image_size) == (2, 3, 28)
    assert info.class_names == ("a", "b")


def test_non_image_files_in_image_folder_are_skipped_with_a_warning(tmp_path):
    write_images(tmp_path / "a", 3, "L")
    write_images(tmp_path / "b", 3, "RGB")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cfg = DataConfig(name="imagefolder", root=str(tmp_path), test_fraction=0.34)
    with pytest.warns(UserWarning, match="skipped 2 unreadable file"):
        data = load_dataset(cfg)
    assert len(data.train) + len(data.val) + len(data.test) == 6
    assert data.info.channels == 3 and data.info.num_classes == 2


# --- untrusted files ------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_code_carrying_checkpoint_is_refused_and_never_run(files, tmp_path):
    marker = tmp_path / "code_ran"
    payload = torch.load(files.generator, weights_only=True)
    evil = tmp_path / "evil_generator.pt"  # a real generator dict, plus one poisoned entry
    torch.save(payload | {"iteration": _RunsCode(marker)}, evil)
    raw = tmp_path / "evil_raw.pt"  # the same as a bare (non-zip) pickle, protocol 4
    raw.write_bytes(pickle.dumps(payload | {"iteration": _RunsCode(marker)}, protocol=4))
    refused = f"unsafe content refused: it would import {os.system.__module__}.system"
    for path in (evil, raw):
        with warnings.catch_warnings(record=True) as caught:  # nothing but the error reaches
            warnings.simplefilter("always")  # a user's terminal
            with pytest.raises(ArtifactError, match="not a readable gandistill file") as exc:
                load_generator_checkpoint(path)
        assert not caught, [str(w.message) for w in caught]
        assert "\n" not in str(exc.value)
        with pytest.raises(ArtifactError, match="not a readable gandistill file"):
            DistilledSet.load(path)
    assert refused in str(exc.value) or "weights-only loader refuses" in str(exc.value)
    out = tmp_path / "grid.png"
    proc = run_cli("sample", "--generator", evil, "--out", out, cwd=tmp_path)
    assert_user_error(proc, refused)
    assert not marker.exists()
    assert not out.exists()


def test_newer_format_version_is_refused_naming_the_version(files, tmp_path):
    newer = FORMAT_VERSION + 1
    generator = tmp_path / "newer_generator.pt"
    payload = torch.load(files.generator, weights_only=True)
    atomic_save(payload | {"format_version": newer}, generator)
    message = f"has format version {newer}; this gandistill reads up to {FORMAT_VERSION}"
    with pytest.raises(ArtifactError, match=message):
        load_generator_checkpoint(generator)
    distilled = tmp_path / "newer_set.pt"
    payload = torch.load(files.distilled, weights_only=True)
    atomic_save(payload | {"format_version": newer}, distilled)
    with pytest.raises(ArtifactError, match=message):
        DistilledSet.load(distilled)
    proc = run_cli("sample", "--generator", generator, "--out", tmp_path / "g.png", cwd=tmp_path)
    assert_user_error(proc, message)
