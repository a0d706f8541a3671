"""``gandistill quickstart`` end to end on the smoke config, and its stage-by-stage resume."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from gandistill.cli import main
from gandistill.errors import ConfigError
from gandistill.evaluation import options
from gandistill.files import DistilledSet, load_generator_checkpoint
from gandistill.pipelines.quickstart import (
    DEFAULT_MINUTES,
    STAGE_SHARES,
    quickstart_config,
    quickstart_preset,
    sized_to,
)

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
MINUTES = 0.25


def _argv(tmp_path: Path) -> list[str]:
    return [
        "quickstart",
        "--config",
        str(SMOKE),
        "--run-dir",
        str(tmp_path / "qs"),
        "--set",
        f"cache_dir={tmp_path}",
        "--set",
        "train.eval_samples_per_class=0",
        "--set",
        "eval.epochs=1",  # one epoch for each set's network
        "--no-progress",
        # training and distillation stopped by the budgets --minutes gives them, not by a count
        "--minutes",
        str(MINUTES),
        "--set",
        "train.iterations=1000000",
        "--set",
        "distill.max_iterations=1000000",
    ]


@pytest.fixture
def one_epoch_full_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick profile's full-data reference (the 3600 training images, trained until the
    validation split stalls, up to 30 epochs) cut to one epoch, and one network for the gradient
    similarity: the stage's wiring is under test here, not the reference's convergence
    (test_evaluation covers that)."""
    quick = replace(options.PROFILES["quick"], full_epochs=1, full_patience=1, grad_networks=1)
    monkeypatch.setitem(options.PROFILES, "quick", quick)


@pytest.mark.usefixtures("one_epoch_full_data")
def test_quickstart_runs_all_stages_then_reuses_them(tmp_path: Path, capsys) -> None:
    assert main(_argv(tmp_path)) == 0
    out = capsys.readouterr().out
    run = tmp_path / "qs"
    for stage in ("[1/3] training", "[2/3] distilling", "[3/3] quick evaluation"):
        assert stage in out
    train_share, distill_share = (STAGE_SHARES[k] * MINUTES for k in ("train", "distill"))
    assert f"1000000 iterations or {train_share:g} min, what comes first" in out
    assert "stopped: time budget spent" in out and f"of a {MINUTES:g}-minute budget" in out
    assert " over: the sets' networks train the protocol's epochs" in out  # 15 s is too short
    generator = load_generator_checkpoint(run / "generator.pt")
    assert generator.config.train.max_minutes == train_share
    ds = DistilledSet.load(run / "distilled_ipc2.pt")
    assert ds.stop_reason == "max_minutes" and ds.config.distill.max_minutes == distill_share
    # the distillation clock ends within its share, overshooting by at most its last iteration
    seconds = [h["seconds"] for h in ds.history]
    last = seconds[-1] - (seconds[-2] if len(seconds) > 1 else 0.0)
    assert 60 * distill_share <= seconds[-1] <= 60 * distill_share + last + 1e-6
    assert ds.ipc == 2 and ds.space == "latent"  # the smoke config: the default space
    assert quickstart_config().distill.space == "hybrid"  # the preset: as its figures were made
    report = json.loads((run / "report_ipc2" / "report.json").read_text())
    # the evaluation gets what the earlier stages left of the 15 s (how much depends on the
    # machine); its full-data reference reports whether that stopped it
    left = re.search(r"the full-data reference within the (\d+\.\d) min left", out)
    assert left and float(left.group(1)) <= MINUTES
    assert isinstance(report["accuracy"]["convnet"]["full_data"]["out_of_time"], bool)
    assert set(report["accuracy"]["convnet"]) >= {"distilled", "random_real", "full_data"}
    assert "| set | accuracy (test split) |" in out and f"tensorboard --logdir {run}" in out
    assert f"gandistill evaluate --distilled {run / 'distilled_ipc2.pt'}" in out  # what next
    mtime = (run / "distilled_ipc2.pt").stat().st_mtime_ns

    assert main(_argv(tmp_path)) == 0  # a second call finds every stage done
    out = capsys.readouterr().out
    assert out.count("reusing") == 3
    assert (run / "distilled_ipc2.pt").stat().st_mtime_ns == mtime


def test_minutes_budget_training_and_distillation_their_shares() -> None:
    cfg = sized_to(quickstart_config(), 20)
    assert (cfg.train.max_minutes, cfg.distill.max_minutes) == pytest.approx((5.0, 4.0))
    preset = quickstart_config()  # sized as --minutes 10 sizes it
    assert DEFAULT_MINUTES == 10 and preset.eval.amp
    sized = sized_to(preset, DEFAULT_MINUTES)
    assert (preset.train.max_minutes, preset.distill.max_minutes) == (
        sized.train.max_minutes,
        sized.distill.max_minutes,
    )
    assert sum(STAGE_SHARES.values()) < 1  # the rest: set-up and the evaluation
    with pytest.raises(ConfigError, match="--minutes must be > 0"):
        sized_to(cfg, 0)


def test_quickstart_defaults_apply_only_without_a_config() -> None:
    cfg = quickstart_config(None, ["distill.max_minutes=1"])
    assert cfg.distill.ipc == 10 and cfg.distill.objective == "dm"
    assert cfg.distill.max_minutes == 1.0  # the user's override wins
    assert cfg.run_dir == "checkpoints/quickstart"
    cfg = quickstart_config(SMOKE)
    assert cfg.distill.ipc == 2  # the file is taken as it is
    assert "objective" in quickstart_preset()["distill"]
