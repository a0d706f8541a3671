"""Scaling: GAN training throughput and distillation iteration time on 1, 2, ... processes.

Each workload runs through :func:`gandistill.parallel.launch` (``idist.Parallel``: gloo on CPU,
nccl on CUDA) exactly as ``--nproc-per-node N`` runs it, and rank 0 times its iterations (median
interval after warm-up). On CPU the processes share the machine's cores (each gets
``cores / N`` torch threads, as torchrun does), so on one machine the ratio shows what
processes buy over threads, not over more hardware.

- **GAN training**: images/s of :class:`~gandistill.gan.GANTrainer` (global batch
  ``train.batch_size``, DDP over the processes).
- **Distillation, gradient matching** and **distribution matching**: seconds per outer iteration
  of :class:`~gandistill.distillation.Distiller` in latent space (the classes split over the
  processes), through a randomly initialised generator of the config's size: timing needs no
  trained one.

Example::

    python scripts/bench_scaling.py                    # mnist5k, 1 and 2 processes, CPU
    python scripts/bench_scaling.py --procs 1 --device cuda
    python scripts/bench_scaling.py --quick            # seconds: tiny sizes, a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from ignite.engine import Events
from speed_common import median_interval

from gandistill.config import Config, load_config
from gandistill.data import load_dataset
from gandistill.distillation.loop import Distiller
from gandistill.files import GeneratorCheckpoint
from gandistill.gan.trainer import GANTrainer
from gandistill.models import Generator
from gandistill.parallel import is_main, launch
from gandistill.runtime import resolve_device

GAN_WARMUP = 3
SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


def _write(path: str, seconds: float) -> None:
    if is_main():
        Path(path).write_text(json.dumps({"seconds": seconds}))


def gan_worker(local_rank: int, cfg: Config, result: str) -> None:
    trainer = GANTrainer(cfg, overwrite=True)
    stamps: list[float] = []

    def stamp(_engine) -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        stamps.append(time.perf_counter())

    trainer.engine.add_event_handler(Events.ITERATION_COMPLETED, stamp)
    trainer.run()
    _write(result, median_interval(stamps[GAN_WARMUP - 1 :]))


def distill_worker(local_rank: int, cfg: Config, ckpt: GeneratorCheckpoint, result: str) -> None:
    d = Distiller(cfg, generator=ckpt)
    d.run()
    _write(result, median_interval([h["seconds"] for h in d.history]))


def random_generator(cfg: Config) -> GeneratorCheckpoint:
    """A generator of the config's size with random weights (timing only)."""
    info = load_dataset(cfg.data).info
    mc = cfg.model
    torch.manual_seed(cfg.seed)
    g = Generator(info.num_classes, mc.latent_dim, mc.g_width, info.image_size, info.channels)
    digest = hashlib.sha256(b"bench_scaling random generator").hexdigest()
    return GeneratorCheckpoint(g.eval(), info, cfg, 0, Path("random-generator"), digest)


def measure(fn, args: tuple, nproc: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        launch(fn, *args, str(result), nproc_per_node=nproc, device=device)
        return json.loads(result.read_text())["seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML config (default: mnist5k defaults)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (one GPU per process)")
    parser.add_argument("--procs", default="1,2", help="process counts, e.g. 1,2")
    parser.add_argument("--gan-steps", type=int, default=20, help="timed GAN iterations")
    parser.add_argument("--distill-steps", type=int, default=3, help="timed outer iterations")
    parser.add_argument("--ipc", type=int, default=10, help="images per class when distilling")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds")
    args = parser.parse_args(argv)
    procs = [int(p) for p in args.procs.split(",")]
    config = str(SMOKE) if args.quick else args.config
    gan_steps, distill_steps = (4, 2) if args.quick else (args.gan_steps, args.distill_steps)
    ipc = 2 if args.quick else args.ipc
    device = resolve_device(args.device)

    with tempfile.TemporaryDirectory() as run_dir:
        n = GAN_WARMUP + gan_steps
        gan_cfg = load_config(
            config,
            [
                f"device={args.device}",
                f"run_dir={run_dir}",
                f"train.iterations={n}",
                f"train.sample_every={n + 1}",
                f"train.checkpoint_every={n + 1}",
                "train.progress=false",
                "train.eval_samples_per_class=0",
            ],
        )
        common = [
            f"device={args.device}",
            f"distill.ipc={ipc}",
            f"distill.max_iterations={distill_steps + 1}",
            "distill.init=normal",
            "distill.eval_every=0",
            "distill.progress=false",
            "distill.teacher_logits=false",
        ]
        gm_cfg = load_config(config, [*common, "distill.objective=gm"])
        dm_cfg = load_config(config, [*common, "distill.objective=dm"])
        ckpt = random_generator(gm_cfg)
        rows = {"GAN training (images/s)": [], "GM outer iteration (s)": [], "DM iteration (s)": []}
        for nproc in procs:
            step = measure(gan_worker, (gan_cfg,), nproc, args.device)
            rows["GAN training (images/s)"].append(gan_cfg.train.batch_size / step)
            rows["GM outer iteration (s)"].append(
                measure(distill_worker, (gm_cfg, ckpt), nproc, args.device)
            )
            rows["DM iteration (s)"].append(
                measure(distill_worker, (dm_cfg, ckpt), nproc, args.device)
            )
            done = ", ".join(f"{name} {values[-1]:.3g}" for name, values in rows.items())
            print(f"{nproc} process(es): {done}", file=sys.stderr, flush=True)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"Device {where}; {torch.get_num_threads()} torch threads in one process; "
        f"torch {torch.__version__}; global GAN batch {gan_cfg.train.batch_size}; IPC {ipc} "
        "(latent space, DC schedule)"
    )
    print()
    head = " | ".join(f"{p} process{'es' if p > 1 else ''}" for p in procs)
    print(f"| workload | {head} | speed-up at {procs[-1]} |")
    print("|" + "---|" * (len(procs) + 2))
    for name, values in rows.items():
        faster = values[-1] / values[0] if "images/s" in name else values[0] / values[-1]
        cells = " | ".join(f"{v:.3g}" for v in values)
        print(f"| {name} | {cells} | {faster:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
