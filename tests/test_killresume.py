"""Killed and interrupted runs (issue 7): SIGKILL at random moments, Ctrl-C, ``--resume``.

The end result of any sequence of kills and resumes must be bit-identical (CPU) to an
uninterrupted run with the same seed: the generator's raw and EMA weights after training, the
latents and images after distillation.
"""

import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import ignite.handlers.checkpoint
import pytest
import torch
from conftest import SMOKE, make_tiny_data, set_args
from ignite.engine import Events

from gandistill.cli import main
from gandistill.config import load_config
from gandistill.distillation import Distiller, state_path
from gandistill.errors import ArtifactError, ConfigError, Interrupted
from gandistill.files import DistilledSet, atomic_save
from gandistill.gan.checkpoints import STATE_DIR
from gandistill.gan.trainer import GANTrainer, train

REPO = Path(__file__).resolve().parents[1]
TRAIN_ITERATIONS = 60
DISTILL_ITERATIONS = 20


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "gandistill", *map(str, args)]


def _state_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in (run_dir / STATE_DIR).glob("*.pt"))


def _tensors_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _same_generator(a: Path, b: Path) -> None:
    pa, pb = (torch.load(p, weights_only=True) for p in (a, b))
    assert pa["iteration"] == pb["iteration"]
    _tensors_equal(pa["state_dict"], pb["state_dict"])
    _tensors_equal(pa["ema_state_dict"], pb["ema_state_dict"])


def _same_set(a: DistilledSet, b: DistilledSet) -> None:
    assert torch.equal(a.images_float, b.images_float)
    assert torch.equal(a.images_uint8, b.images_uint8)
    for name in ("latents", "feature_offsets", "residuals"):
        ta, tb = getattr(a, name), getattr(b, name)
        assert (ta is None) == (tb is None), name
        if ta is not None:
            assert torch.equal(ta, tb), name
    assert [h["match_loss"] for h in a.history] == [h["match_loss"] for h in b.history]


def _kill_and_resume(
    cmd: list[str], progress, log: Path, seed: int, cwd: Path, kills: int = 3
) -> None:
    """Start ``cmd``; ``kills`` times SIGKILL it at a random moment after it saved a new state
    and restart it with ``--resume``; then let it finish."""
    rng = random.Random(seed)
    targets = sorted(rng.sample(range(3, int(0.6 * progress.total)), kills))
    resume: list[str] = []
    for target in targets:
        with open(log, "w") as err:
            proc = subprocess.Popen(cmd + resume, stdout=err, stderr=err, cwd=cwd)
            while progress() < target:  # no timeout: the machine may pause us for minutes
                assert proc.poll() is None, log.read_text()
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.02))
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
        resume = ["--resume"]
    done = subprocess.run(cmd + resume, capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stderr


class _Progress:
    """How far a subprocess got, read from what it saved."""

    def __init__(self, read, total: int) -> None:
        self.read, self.total = read, total

    def __call__(self) -> int:
        try:
            return self.read()
        except (OSError, RuntimeError, KeyError, EOFError):  # between writes, or finished
            return 0


# --- training ------------------------------------------------------------------------------------


def _train_cmd(run_dir: Path, cache: Path, *extra: str) -> list[str]:
    sets = [
        f"cache_dir={cache}",
        f"train.iterations={TRAIN_ITERATIONS}",
        "train.eval_samples_per_class=0",
        "train.sample_every=20",
        *extra,
    ]
    return _cli("train", "--config", SMOKE, "--run-dir", run_dir, *set_args(sets))


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory) -> Path:
    """generator.pt of an uninterrupted CLI run."""
    root = tmp_path_factory.mktemp("train_ref")
    proc = subprocess.run(_train_cmd(root / "run", root), capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "run" / "generator.pt"


@pytest.mark.slow
def test_train_killed_three_times_equals_uninterrupted(tmp_path, train_reference):
    run = tmp_path / "run"
    cmd = _train_cmd(run, tmp_path, "train.checkpoint_every=1")
    progress = _Progress(lambda: max(_state_steps(run), default=0), TRAIN_ITERATIONS)
    _kill_and_resume(cmd, progress, tmp_path / "log.txt", seed=7, cwd=tmp_path)
    _same_generator(run / "generator.pt", train_reference)
    # retention holds across restarts: n_saved (2) checkpoints, no temporary files of cut writes
    assert _state_steps(run) == [TRAIN_ITERATIONS - 1, TRAIN_ITERATIONS]
    assert sorted(p.name for p in (run / STATE_DIR).iterdir()) == [
        f"checkpoint_{TRAIN_ITERATIONS - 1}.pt",
        f"checkpoint_{TRAIN_ITERATIONS}.pt",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("sig, how", [(signal.SIGINT, ""), (signal.SIGTERM, " by SIGTERM")])
def test_train_ctrl_c_or_sigterm_saves_exits_and_resumes(tmp_path, train_reference, sig, how):
    """Ctrl-C (exit 130) or SIGTERM (exit 143, as from a batch scheduler), sent to the CLI."""
    run = tmp_path / "run"
    every = 25  # the interrupt lands between periodic checkpoints and saves its own
    cmd = _train_cmd(run, tmp_path, f"train.checkpoint_every={every}", "train.n_saved=1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not _state_steps(run):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.005)
    proc.send_signal(sig)
    _, stderr = proc.communicate()
    assert proc.returncode == 128 + sig, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    found = re.fullmatch(
        rf"gandistill: interrupted{how} at iteration (\d+); checkpoint saved to (\S+); "
        r"continue with: (gandistill train .* --resume)",
        lines[0],
    )
    assert found, lines[0]
    iteration, saved = int(found.group(1)), Path(found.group(2))
    assert every <= iteration < TRAIN_ITERATIONS
    assert saved == run / STATE_DIR / f"checkpoint_{iteration}.pt" and saved.is_file()
    assert _state_steps(run) == [iteration]  # n_saved 1: the periodic one was replaced
    assert torch.load(saved, weights_only=True)["trainer"]["iteration"] == iteration
    assert not (run / "generator.pt").exists()

    resume = shlex.split(found.group(3))
    assert resume[0] == "gandistill"
    done = subprocess.run(_cli(*resume[1:]), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _same_generator(run / "generator.pt", train_reference)


@pytest.fixture
def tiny_train(tmp_path):
    """The smoke config, 6 iterations, writing under ``tmp_path/name``."""

    def make(name: str, *overrides: str):
        cfg = load_config(
            SMOKE,
            [
                f"run_dir={tmp_path / name}",
                f"cache_dir={tmp_path}",
                "train.eval_samples_per_class=0",
                "train.iterations=6",
                *overrides,
            ],
        )
        return cfg

    return make


def _weights(trainer: GANTrainer) -> dict:
    return {
        **{f"g.{k}": v.clone() for k, v in trainer.generator.state_dict().items()},
        **{f"d.{k}": v.clone() for k, v in trainer.discriminator.state_dict().items()},
        **{f"ema.{k}": v.clone() for k, v in trainer.ema.module.state_dict().items()},
    }


def _ctrl_c_after(engine, iteration: int, sig: int = signal.SIGINT) -> None:
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(once=iteration), lambda _: os.kill(os.getpid(), sig)
    )


@pytest.mark.parametrize(
    "sig, said", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "interrupted by SIGTERM")]
)
def test_train_ctrl_c_in_process_checkpoints_the_next_iteration(tiny_train, sig, said):
    data = make_tiny_data()
    reference = GANTrainer(tiny_train("ref"), data=data)
    reference.run()
    cfg = tiny_train("part", "train.checkpoint_every=100")  # no periodic checkpoint
    trainer = GANTrainer(cfg, data=data)
    _ctrl_c_after(trainer.engine, 2, sig)  # arrives after iteration 2's check: stops after 3
    before = signal.getsignal(sig)
    with pytest.raises(Interrupted, match=f"{said} at iteration 3; checkpoint saved to") as exc:
        trainer.run()
    assert exc.value.signum == sig  # the CLI exits 128 + signum: 130 or 143
    assert signal.getsignal(sig) is before  # the handler is restored
    run = Path(cfg.run_dir)
    assert _state_steps(run) == [3] and not (run / "generator.pt").exists()
    resumed = GANTrainer(cfg, resume=True, data=data)
    assert resumed.engine.state.iteration == 3
    resumed.run()
    _tensors_equal(_weights(resumed), _weights(reference))


def test_train_retention_holds_across_restarts(tiny_train):
    data = make_tiny_data()
    cfg = tiny_train("run", "train.iterations=8", "train.checkpoint_every=1", "train.n_saved=2")
    state = Path(cfg.run_dir) / STATE_DIR
    first = GANTrainer(cfg, data=data)
    first.engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda e: e.terminate())
    first.run()
    for stop in (6, None):
        # what a kill mid-save leaves: atomic_save's temporary file (or, in a run folder of an
        # earlier version, ignite DiskSaver's)
        cut_short = [state / ".checkpoint_9.pt.x1y2z3.tmp", state / "tmpcutshort"]
        for path in cut_short:
            path.write_bytes(b"half a checkpoint")
        trainer = GANTrainer(cfg, resume=True, data=data)
        assert not any(path.exists() for path in cut_short)
        if stop:
            trainer.engine.add_event_handler(
                Events.ITERATION_COMPLETED(once=stop), lambda e: e.terminate()
            )
        trainer.run()
    assert _state_steps(Path(cfg.run_dir)) == [7, 8]


def test_train_resuming_a_finished_run_does_not_train_again(tiny_train):
    data = make_tiny_data()
    cfg = tiny_train("run")
    done = GANTrainer(cfg, data=data)
    done.run()
    generator = Path(cfg.run_dir) / "generator.pt"
    before = torch.load(generator, weights_only=True)
    generator.unlink()  # as if killed between the last checkpoint and the generator file
    again = GANTrainer(cfg, resume=True, data=data)
    result = again.run()
    assert result.iterations == 6
    _tensors_equal(_weights(again), _weights(done))
    after = torch.load(generator, weights_only=True)
    _tensors_equal(after["ema_state_dict"], before["ema_state_dict"])


def test_train_time_budget_stops_writes_the_generator_and_counts_over_resumes(tiny_train, capsys):
    """``train.max_minutes`` stops after the iteration that spends it, with a checkpoint and the
    generator file; the clock is saved, so resuming under the same budget trains no further and
    a larger one goes on to where an uninterrupted run ends."""
    data = make_tiny_data()
    budget = ("train.max_minutes=1e-9", "train.checkpoint_every=100", "train.progress=true")
    cfg = tiny_train("run", *budget)
    first = GANTrainer(cfg, data=data)
    result = first.run()
    assert result.stopped_by == "time budget spent" and result.iterations == 1
    run = Path(cfg.run_dir)
    assert _state_steps(run) == [1] and (run / "generator.pt").is_file()
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert [line for line in bar if line.startswith("train")][-1].startswith(
        "train, stopped (time budget spent): [1/6]"
    )
    again = GANTrainer(cfg, resume=True, data=data)
    assert again.clock.earlier > 0  # saved with the checkpoint
    assert again.run().iterations == 1 and _state_steps(run) == [1]
    on = GANTrainer(tiny_train("run", "train.max_minutes=60"), resume=True, data=data)
    assert on.run().stopped_by is None and on.engine.state.iteration == 6
    reference = GANTrainer(tiny_train("ref"), data=data)
    reference.run()
    _tensors_equal(_weights(on), _weights(reference))


def test_train_failed_save_keeps_the_previous_checkpoint(tiny_train, monkeypatch):
    data = make_tiny_data()
    cfg = tiny_train("run", "train.checkpoint_every=1", "train.n_saved=1")
    trainer = GANTrainer(cfg, data=data)
    real_save, calls = torch.save, []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ignite.handlers.checkpoint.torch, "save", failing_save)
    # one line naming the file and the cause (the CLI prints it as the error)
    with pytest.raises(ArtifactError, match=r"cannot write .*checkpoint_3\.pt: disk full"):
        trainer.run()
    # ignite alone deletes checkpoint_2 before writing checkpoint_3: nothing would be left
    assert _state_steps(Path(cfg.run_dir)) == [2]


# --- distillation --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_data(per_class=6)


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory, tiny) -> Path:
    root = tmp_path_factory.mktemp("gen")
    cfg = load_config(
        SMOKE, [f"run_dir={root / 'run'}", f"cache_dir={root}", "train.eval_samples_per_class=0"]
    )
    return train(cfg, data=tiny).generator_path


SPACES = {
    "pixel": ["distill.space=pixel"],
    # with a pool of matching networks: their weights, momenta and ages carry over
    "pixel-dm-pool": [
        "distill.space=pixel",
        "distill.objective=dm",
        "distill.pool_size=2",
        "distill.pool_steps=3",  # iteration 5 draws a network saved at iteration 4
    ],
    # Adam, feature offsets, residuals, the cosine schedule and DSA draws all carry over
    "hybrid": [
        "distill.space=hybrid",
        "distill.init=normal",
        "distill.feature_level=1",
        "distill.lr_schedule=cosine",
        "distill.dsa=true",
    ],
    # trajectory matching: the learnable student learning rate and its optimiser group carry
    # over, with the cosine schedule on the set's group alone
    "pixel-mtt": [
        "distill.space=pixel",
        "distill.objective=mtt",
        "distill.mtt_experts=2",
        "distill.mtt_train_epochs=2",
        "distill.mtt_expert_epochs=1",
        "distill.mtt_max_start_epoch=2",
        "distill.mtt_syn_steps=2",
        "distill.mtt_lr_lr=1e-3",
        "distill.lr_schedule=cosine",
    ],
}


def _distill_cfg(tmp_path: Path, space: str, *extra: str):
    return load_config(
        SMOKE,
        [
            f"cache_dir={tmp_path}",
            "distill.max_iterations=6",
            "distill.eval_every=0",
            "distill.teacher_logits=false",
            *SPACES[space],
            *extra,
        ],
    )


def _distiller(cfg, generator, out, data, **kwargs) -> Distiller:
    gen = generator if cfg.distill.space != "pixel" else None
    return Distiller(cfg, generator=gen, out=out, data=data, **kwargs)


def _crash_after(engine, iteration: int) -> None:
    def crash(_):
        raise RuntimeError("simulated crash")

    engine.add_event_handler(Events.ITERATION_COMPLETED(once=iteration), crash)


@pytest.mark.parametrize("space", list(SPACES))
def test_distill_resume_in_process_equals_uninterrupted(tmp_path, tiny, tiny_generator, space):
    cfg = _distill_cfg(tmp_path, space, "distill.checkpoint_every=2")
    reference = _distiller(cfg, tiny_generator, tmp_path / "ref.pt", tiny).run()
    assert not state_path(tmp_path / "ref.pt").exists()  # removed once the set is written

    out = tmp_path / "set.pt"
    crashed = _distiller(cfg, tiny_generator, out, tiny)
    _crash_after(crashed.engine, 5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.run()
    assert not out.exists()
    assert torch.load(state_path(out), weights_only=True)["iteration"] == 4

    resumed = _distiller(cfg, tiny_generator, out, tiny, resume=True)
    assert resumed.resumed and resumed.engine.state.iteration == 4
    ds = resumed.run()
    _same_set(ds, reference)
    _same_set(DistilledSet.load(out), reference)
    assert [h["iteration"] for h in ds.history] == list(range(1, 7))
    assert not state_path(out).exists()


def _crash_at_iteration_2(cfg, generator, out: Path, data) -> None:
    """Run ``cfg`` (which must save every iteration) until a crash after iteration 2."""
    crashed = _distiller(cfg, generator, out, data)
    _crash_after(crashed.engine, 2)
    with pytest.raises(RuntimeError):
        crashed.run()


def test_distill_resume_refuses_a_changed_pool(tmp_path, tiny):
    out = tmp_path / "set.pt"
    cfg = _distill_cfg(tmp_path, "pixel-dm-pool", "distill.checkpoint_every=1")
    _crash_at_iteration_2(cfg, None, out, tiny)
    for override, message in (
        ("distill.pool_size=3", r"'distill.pool_size' differs .* \(2 there, 3 now\)"),
        ("distill.net_width=16", "the networks pooled in .* do not fit distill.net_width"),
    ):
        changed = _distill_cfg(tmp_path, "pixel-dm-pool", override)
        with pytest.raises(ConfigError, match=message):
            _distiller(changed, None, out, tiny, resume=True)


def test_distill_ctrl_c_in_process_saves_and_resumes(tmp_path, tiny):
    cfg = _distill_cfg(tmp_path, "pixel", "distill.checkpoint_every=0")  # only on Ctrl-C
    reference = _distiller(cfg, None, tmp_path / "ref.pt", tiny).run()
    out = tmp_path / "set.pt"
    d = _distiller(cfg, None, out, tiny)
    _ctrl_c_after(d.engine, 2)
    before = signal.getsignal(signal.SIGINT)
    saved_to = re.escape(f"iteration 3; checkpoint saved to {state_path(out)}")
    with pytest.raises(Interrupted, match=saved_to):
        d.run()
    assert signal.getsignal(signal.SIGINT) is before  # the Ctrl-C handler is restored
    assert not out.exists()
    state = torch.load(state_path(out), weights_only=True)
    assert state["iteration"] == 3 and len(state["history"]) == 3
    _same_set(_distiller(cfg, None, out, tiny, resume=True).run(), reference)


def test_distill_time_budget_spans_restarts(tmp_path, tiny):
    cfg = _distill_cfg(tmp_path, "pixel", "distill.checkpoint_every=2")
    out = tmp_path / "set.pt"
    crashed = _distiller(cfg, None, out, tiny)
    _crash_after(crashed.engine, 3)
    with pytest.raises(RuntimeError):
        crashed.run()
    state = torch.load(state_path(out), weights_only=True)
    state["seconds"] = 600.0  # ten minutes were spent before the crash
    atomic_save(state, state_path(out))
    limited = _distill_cfg(tmp_path, "pixel", "distill.max_minutes=10")
    ds = _distiller(limited, None, out, tiny, resume=True).run()
    assert ds.stop_reason == "max_minutes"
    assert [h["iteration"] for h in ds.history] == [1, 2, 3]
    assert ds.history[-1]["seconds"] >= 600.0


def test_distill_resume_refuses_a_different_run(tmp_path, tiny, tiny_generator):
    out = tmp_path / "set.pt"
    with pytest.raises(ArtifactError, match="nothing to resume: no .*set.state.pt"):
        _distiller(_distill_cfg(tmp_path, "hybrid"), tiny_generator, out, tiny, resume=True)
    cfg = _distill_cfg(tmp_path, "hybrid", "distill.checkpoint_every=1")
    _crash_at_iteration_2(cfg, tiny_generator, out, tiny)

    for override, message in (
        ("seed=1", r"cannot resume: 'seed' differs .* \(0 there, 1 now\)"),
        ("distill.ipc=3", r"'distill.ipc' differs .* \(2 there, 3 now\)"),
        ("distill.objective=dm", r"'distill.objective' differs"),
        ("distill.max_iterations=9", r"'distill.max_iterations' differs"),  # cosine schedule
    ):
        changed = _distill_cfg(tmp_path, "hybrid", override)
        with pytest.raises(ConfigError, match=message):
            _distiller(changed, tiny_generator, out, tiny, resume=True)
    with pytest.raises(ConfigError, match="'distill.space' differs"):
        _distiller(_distill_cfg(tmp_path, "pixel"), None, out, tiny, resume=True)

    other = tmp_path / "other_generator.pt"  # the same weights, another file: another sha256
    payload = torch.load(tiny_generator, weights_only=True)
    atomic_save(payload | {"iteration": payload["iteration"] + 1}, other)
    with pytest.raises(ArtifactError, match="distilled through another generator"):
        _distiller(cfg, other, out, tiny, resume=True)

    # a file of another kind at the state's place is refused by its kind
    atomic_save({"kind": "gandistill.distilled", "format_version": 1}, state_path(out))
    with pytest.raises(ArtifactError, match="not a gandistill.distill_state"):
        _distiller(cfg, tiny_generator, out, tiny, resume=True)


def test_cli_distill_refuses_to_start_over_a_saved_state(tmp_path, capsys):
    out = tmp_path / "set.pt"
    atomic_save({"kind": "gandistill.distill_state", "format_version": 1}, state_path(out))
    args = ["distill", "--config", str(SMOKE), "--space", "pixel", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds an interrupted distillation; pass --resume" in err
    assert len(err.strip().splitlines()) == 1
    assert main([*args, "--resume", "--overwrite"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def _distill_cmd(out: Path, cache: Path, space: str, generator: Path | None) -> list[str]:
    sets = [
        f"cache_dir={cache}",
        f"distill.max_iterations={DISTILL_ITERATIONS}",
        "distill.checkpoint_every=1",
        "distill.eval_every=0",
        "distill.teacher_logits=false",
        "distill.image_every=10",
    ]
    args = ["distill", "--config", SMOKE, "--space", space, "--out", out]
    if space == "latent":
        sets.append("distill.init=normal")
        args += ["--generator", generator]
    return _cli(*args, *set_args(sets))


@pytest.fixture(scope="module")
def smoke_generator(tmp_path_factory) -> Path:
    """A smoke generator on the smoke config's own data (mnist5k), for the CLI runs."""
    root = tmp_path_factory.mktemp("smoke_gen")
    cfg = load_config(
        SMOKE, [f"run_dir={root / 'run'}", f"cache_dir={root}", "train.eval_samples_per_class=0"]
    )
    return train(cfg).generator_path


@pytest.mark.slow
@pytest.mark.parametrize(("space", "kills"), [("latent", 3), ("pixel", 1)])
def test_distill_killed_and_resumed_equals_uninterrupted(tmp_path, space, kills, smoke_generator):
    """Killed at random moments (three times in the default space; once in pixel space, whose
    state takes the same writer and whose resume the in-process test covers), the CLI run ends
    with exactly the uninterrupted run's set."""
    ref = tmp_path / "ref.pt"
    proc = subprocess.run(
        _distill_cmd(ref, tmp_path, space, smoke_generator), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr

    out = tmp_path / "set.pt"
    state = state_path(out)
    progress = _Progress(
        lambda: torch.load(state, weights_only=True)["iteration"], DISTILL_ITERATIONS
    )
    cmd = _distill_cmd(out, tmp_path, space, smoke_generator)
    _kill_and_resume(cmd, progress, tmp_path / "log.txt", seed=11, cwd=tmp_path, kills=kills)
    ds, reference = DistilledSet.load(out), DistilledSet.load(ref)
    _same_set(ds, reference)
    assert (ds.latents is not None) == (space == "latent")
    assert [h["iteration"] for h in ds.history] == list(range(1, DISTILL_ITERATIONS + 1))
    assert not state.exists()
    assert not list(tmp_path.glob(".set.state.pt.*.tmp"))  # atomic writes leave no debris


# --- the soak script -------------------------------------------------------------------------


def test_bench_soak_smoke(tmp_path):
    table = tmp_path / "soak.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_soak.py"),
            "--config", SMOKE,
            "--minutes", "0.01",
            "--cycle", "3",
            "--run-dir", tmp_path / "soak",
            *set_args([f"cache_dir={tmp_path}", "distill.eval_every=0"]),
            "--out", table,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = table.read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| (train|distill) \| \d", line)]
    assert [r.split("|")[1].strip() for r in rows] == ["train"] * 2 + ["distill"] * 2, text
    cells = [[c.strip() for c in r.split("|")[1:-1]] for r in rows]
    # each cycle resumes where the last stopped (Ctrl-C after 3 more iterations: stop at the 4th)
    assert [int(c[2]) for c in cells] == [4, 8, 4, 8], text
    assert [int(c[6]) for c in cells] == [1, 2, 1, 2], text  # one event file per process
    assert [int(c[7]) for c in cells] == [2, 2, 1, 1], text  # n_saved, across restarts


# --- how the CLI and the quickstart continue ------------------------------------------------


def test_continue_command_names_the_way_to_go_on():
    from gandistill.cli import _continue_command

    argv = ["train", "--config", "c.yaml", "--run-dir", "my runs", "--overwrite"]
    assert (
        _continue_command("train", argv)
        == "gandistill train --config c.yaml --run-dir 'my runs' --resume"
    )
    assert _continue_command("distill", ["distill", "--resume"]) == "gandistill distill --resume"
    assert _continue_command("quickstart", ["quickstart"]) == "gandistill quickstart"
    assert _continue_command("benchmark", ["benchmark"]) is None  # no way to resume one set


def test_quickstart_resumes_an_interrupted_distillation(tmp_path, monkeypatch):
    qs = sys.modules["gandistill.pipelines.quickstart"]
    cfg = qs.quickstart_config(SMOKE, [f"run_dir={tmp_path}", f"cache_dir={tmp_path}"])
    (tmp_path / "generator.pt").touch()  # stage 1 is skipped when its output is there
    monkeypatch.setattr(qs, "load_generator_checkpoint", lambda path: None)
    calls = []

    class Stop(Exception):
        pass

    def fake_distiller(cfg, generator, out, resume):
        calls.append(resume)
        raise Stop

    monkeypatch.setattr(qs, "Distiller", fake_distiller)
    state = state_path(tmp_path / f"distilled_ipc{cfg.distill.ipc}.pt")
    for make_state, overwrite in ((False, False), (True, False), (True, True)):
        if make_state:
            atomic_save({}, state)
        (tmp_path / "generator.pt").touch()
        with pytest.raises(Stop):
            qs.quickstart(cfg, overwrite=overwrite, progress=False, say=lambda line: None)
    assert calls == [False, True, False]
    assert not state.exists()  # --overwrite deleted it
