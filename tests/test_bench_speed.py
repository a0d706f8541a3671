"""scripts/bench_speed.py stays runnable: its --quick smoke run, as a subprocess."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = (
    "GAN training step",
    "distillation outer step",
    "fidelity FID + KID",
    "matching step",
)


LIMIT_ROWS = ("GAN training step", "distillation outer step", "evaluation network epoch")


def number(cell: str) -> float:
    return float(cell.strip().split()[0])


def tables(text: str) -> list[list[list[str]]]:
    """Each markdown table of ``text`` (blocks of lines starting with ``|``) as rows of cells,
    header and separator dropped."""
    blocks = [b.splitlines() for b in text.split("\n\n")]
    return [
        [line.strip("|").split("|") for line in block[2:]]
        for block in blocks
        if block and block[0].startswith("| ")
    ]


@pytest.mark.slow
def test_bench_speed_quick_prints_ratios_and_limits(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_speed.py"),
            "--quick",
            "--device",
            "cpu",
            "--ops",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    head = lines[0]
    assert head.startswith("Device cpu; CPU ") and "torch " in head and "threads" in head
    ratios, limits, ops = tables(proc.stdout)
    rows = ratios
    assert len(rows) == len(ROWS), proc.stdout
    for row, name in zip(rows, ROWS, strict=True):
        assert row[0].strip().startswith(name), row
        values = [number(cell) for cell in row[1:]]  # gandistill, reference, ratio
        assert all(math.isfinite(v) and v > 0 for v in values), row
        assert values[2] == pytest.approx(values[0] / values[1], rel=0.05), row
    assert not any(tmp_path.iterdir())  # run files go to a temporary folder, not the cwd
    # each stage beside the machine's limits: achieved = GFLOP / seconds, share of the larger peak
    assert len(limits) == len(LIMIT_ROWS), proc.stdout
    for row, name in zip(limits, LIMIT_ROWS, strict=True):
        assert row[0].strip().startswith(name), row
        assert row[1].strip() in ("float32", "bfloat16"), row
        gflop, seconds, achieved, matmul, conv = (number(c) for c in row[2:7])
        assert all(math.isfinite(v) and v > 0 for v in (gflop, seconds, matmul, conv)), row
        assert achieved == pytest.approx(gflop / seconds, rel=0.05), row
        share = float(row[7].strip().rstrip("%"))
        assert share == pytest.approx(100 * achieved / max(matmul, conv), rel=0.05, abs=1), row
    # --ops: each stage's three heaviest operators, by falling share of its self time
    by_stage: dict[str, list[float]] = {}
    for stage, op, share in ops:
        assert op.strip().startswith("`aten::") or op.strip().startswith("`"), op
        by_stage.setdefault(stage.strip(), []).append(float(share.strip().rstrip("%")))
    assert len(by_stage) == 4 and all(len(s) == 3 for s in by_stage.values()), by_stage
    assert all(0 < s[0] <= 100 and s == sorted(s, reverse=True) for s in by_stage.values())
