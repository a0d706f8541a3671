"""Seconds per distribution-matching iteration: the reference DM code against gandistill's pixel
DM, with the same settings, one after the other on this machine.

The reference is ``main_DM.py`` of VICO-UoE/DatasetCondensation (Zhao & Bilen 2023), from a
checkout you give with ``--reference`` (it is not shipped and nothing is downloaded). It runs
from a temporary copy with one shape-only change that torch 2.x needs (``.view`` → ``.reshape``
on the flattened embedding, whose input is non-contiguous after DSA's ``grid_sample``), on the
mnist5k split written as MNIST's four idx files (the 4000 training and 1000 test images of
gandistill's ``mnist5k``), so it never downloads. Both sides: IPC 10, initialised from real
images, DSA (``color_crop_cutout_scale_rotate``), 256 real images per class, a fresh ConvNet-3
per iteration, the machine's default torch threads. The reference prints a timestamp (whole
seconds) every 10 iterations; both sides are timed from iteration 10 to the last, so start-up
and the first iterations' warm-up are left out of each.

Example (2-core CPU, about 6 minutes with the defaults)::

    git clone https://github.com/VICO-UoE/DatasetCondensation /tmp/dc
    python scripts/bench_reference.py --reference /tmp/dc --iterations 40 --out speed_dm.md
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from gandistill.config import load_config
from gandistill.data import load_dataset
from gandistill.distillation.loop import Distiller

FIRST_TIMED = 10  # iterations before this one are warm-up on both sides
PATCH = (".view(out.size(0), -1)", ".reshape(out.size(0), -1)")
STAMP = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] iter = (\d+),")
# gandistill's pixel DM with the reference's settings
OURS = [
    "distill.space=pixel",
    "distill.objective=dm",
    "distill.init=real",
    "distill.dsa=true",
    "distill.real_batch=256",
    "distill.eval_every=0",
    "distill.checkpoint_every=0",
    "distill.teacher_logits=false",
    "distill.progress=false",
    "data.val_fraction=0",  # all 4000 training images, as the reference's MNIST files hold
]


def write_idx(images: np.ndarray, labels: np.ndarray, raw: Path, prefix: str) -> None:
    """``images`` (N, 28, 28) uint8 and ``labels`` (N,) as MNIST's big-endian idx files."""
    n, h, w = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes()
    )
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes()
    )


def mnist_files(root: Path) -> None:
    """The mnist5k split under ``root/MNIST/raw`` as torchvision's MNIST reads it."""
    data = load_dataset(load_config(None, ["data.val_fraction=0"]).data)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, prefix in ((data.train, "train"), (data.test, "t10k")):
        write_idx(split.images[:, 0].numpy(), split.labels.numpy(), raw, prefix)


def reference_copy(checkout: Path, into: Path) -> Path:
    """A copy of the reference checkout with the shape-only patch applied."""
    if not (checkout / "main_DM.py").is_file():
        sys.exit(f"bench_reference: error: no main_DM.py in {checkout}")
    copy = into / "reference"
    shutil.copytree(checkout, copy, ignore=shutil.ignore_patterns(".git"))
    networks = copy / "networks.py"
    networks.write_text(networks.read_text().replace(*PATCH))
    return copy


def reference_seconds(copy: Path, root: Path, ipc: int, iterations: int) -> float:
    """Seconds per iteration of the reference's DM from iteration 10 to the last it stamps."""
    cmd = [
        sys.executable, "main_DM.py", "--dataset", "MNIST", "--data_path", str(root),
        "--ipc", str(ipc), "--Iteration", str(iterations), "--num_exp", "1", "--num_eval", "1",
        "--epoch_eval_train", "1", "--init", "real", "--save_path", str(root / "result"),
        "--dsa_strategy", "color_crop_cutout_scale_rotate",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=copy, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_reference: error: the reference failed: {proc.stderr.strip()[-300:]}")
    stamps = {
        int(it): datetime.strptime(when, "%Y-%m-%d %H:%M:%S")
        for when, it in STAMP.findall(proc.stdout)
    }
    last = max(stamps)
    if last <= FIRST_TIMED or FIRST_TIMED not in stamps:
        sys.exit(f"bench_reference: error: the reference stamped no iteration past {FIRST_TIMED}")
    return (stamps[last] - stamps[FIRST_TIMED]).total_seconds() / (last - FIRST_TIMED)


def gandistill_seconds(ipc: int, iterations: int, cache: Path, config: str | None = None) -> float:
    """Seconds per iteration of gandistill's pixel DM, iterations 10 to the last."""
    sets = [*OURS, f"distill.ipc={ipc}", f"distill.max_iterations={iterations}"]
    sets.append(f"cache_dir={cache}")
    history = Distiller(load_config(config, sets)).run().history
    seconds = [h["seconds"] for h in history]  # after each iteration, from the start
    return (seconds[-1] - seconds[FIRST_TIMED - 1]) / (len(seconds) - FIRST_TIMED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="a DatasetCondensation checkout")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument(
        "--iterations",
        type=int,
        default=40,
        help="per side and round (>= 20: the reference stamps every 10)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="reference then gandistill, N times")
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument(
        "--config", help="gandistill's base config (default: the package's; a test's tiny one)"
    )
    args = parser.parse_args(argv)
    if args.iterations < FIRST_TIMED + 10 or args.rounds < 1:
        parser.error(f"need --iterations >= {FIRST_TIMED + 10} and --rounds >= 1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mnist_files(tmp / "data")
        copy = reference_copy(Path(args.reference), tmp)
        for r in range(args.rounds):
            ref = reference_seconds(copy, tmp / "data", args.ipc, args.iterations)
            ours = gandistill_seconds(args.ipc, args.iterations, tmp / "cache", args.config)
            rows.append((r + 1, ref, ours))
            print(f"round {r + 1}: reference {ref:.2f} s, gandistill {ours:.2f} s", flush=True)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, date {time.strftime('%Y-%m-%d')}. IPC {args.ipc}, "
        f"iterations {FIRST_TIMED}..{args.iterations} timed on each side"
        + (f"; gandistill's base config {args.config}." if args.config else "."),
        "",
        "| round | reference DM (s/iteration) | gandistill pixel DM (s/iteration) | speed-up |",
        "|---:|---:|---:|---:|",
        *(f"| {r} | {ref:.2f} | {ours:.2f} | {ref / ours:.2f}× |" for r, ref, ours in rows),
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
