"""Speed: gandistill against plain PyTorch and against the machine, one markdown table of ratios.

Every number is a median over ``--repeats`` timed rounds after warm-up, on one device:

- **GAN training step**: images/s of :class:`~gandistill.gan.GANTrainer` (ignite Engine with its
  per-iteration handlers; image grids and checkpoints are pushed past the run) over a plain loop
  with the same models, batch size, hinge loss, class-conditional MMD² on D's features,
  DiffAugment, Adam, EMA and autocast. Random weights: no trained generator is needed.
- **Distillation outer step**: steps/s of :class:`~gandistill.distillation.Distiller` (IPC 1, pixel
  space, its default gradient mode and precision) over the plain per-class loop in float32 of
  ``speed_common.py`` (shared with ``bench_distill.py speed``).
- **Fidelity**: images/s through :func:`~gandistill.evaluation.fidelity.fidelity_metrics`
  (FID + KID with the classifier extractor, torch-fidelity) over the extractor's forward pass
  alone, on 2000 train against 1000 test images.
- **Matching step**: achieved GFLOP/s of the timed outer step (its FLOPs counted by
  ``FlopCounterMode`` on the per-class loop, divided by its time) as a share of a 4096 × 4096
  matmul's GFLOP/s in the dtype the step computes in (bfloat16 under autocast, else float32).

A second table puts each stage beside the machine's limits: its achieved GFLOP/s (FLOPs of
matmuls and convolutions counted by ``FlopCounterMode``, divided by the timed seconds) against
the measured peak of a large matmul and of the convolution that dominates ConvNet-3 (128 → 128
channels, 3 × 3, batch 256, forward and both backward passes), each in the dtype the stage
computes in: the GAN training step, the distillation outer step and one epoch of an evaluation
network on a random real IPC 10 subset (the protocol's batch, augmentation and precision).

With ``--ops N`` a third table says where the time goes: the ``N`` operators with the largest
share of self time (torch.profiler; device time on CUDA, CPU time otherwise) in each stage: a
GAN training run of the timed length, the timed distillation outer step, one distribution
matching iteration at IPC 10 with the reference DM code's settings (real init, DSA, 256 real
images per class) and one epoch of an evaluation network on a random real IPC 10 subset.

Example::

    python scripts/bench_speed.py                 # mnist5k defaults; CUDA when present
    python scripts/bench_speed.py --device cpu --repeats 10 --ops 6
    python scripts/bench_speed.py --quick         # seconds: tiny sizes, a smoke run
"""

from __future__ import annotations

import argparse
import copy
import itertools
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from ignite.engine import Events
from speed_common import (
    median_interval,
    median_seconds,
    outer_step_config,
    outer_step_seconds,
    plain_outer_seconds,
    synchronize,
)
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from gandistill.augment import diff_augment
from gandistill.classifier import RealClassifier
from gandistill.config import Config, apply_overrides, from_dict, load_config, to_dict
from gandistill.data import DatasetInfo, ImageTensors, Splits, load_dataset
from gandistill.distances import mmd2
from gandistill.distillation.loop import Distiller
from gandistill.errors import GandistillError
from gandistill.evaluation.fidelity import fidelity_metrics
from gandistill.fit import train_network
from gandistill.gan.losses import class_conditional, hinge_d, hinge_g
from gandistill.gan.trainer import GANTrainer
from gandistill.models import ConvNet, Discriminator, Generator
from gandistill.runtime import amp_context, resolve_device

Data = Splits

DISTILL_IPC = 1  # as bench_distill.py speed
GAN_WARMUP = 2  # untimed trainer iterations (first-call allocations)
GAN_STEPS_PER_REPEAT = 10  # GAN steps are short: ten timed steps per repeat
FIDELITY_IMAGES = (2000, 1000)  # set under test (train split), reference (test split)
FIDELITY_BATCH = 64
MATMUL_SIZE = 4096
CONV_SHAPE = (256, 128)  # batch, channels in and out: ConvNet-3's widest layer at its width
EVAL_IPC = 10  # the evaluation network's set: a random real subset of this size per class
EVAL_EPOCHS = 30  # epochs per timed round of the evaluation network (one step each at IPC 10)
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}  # the matmul peaks taken
MIN_ROUND_SECONDS = 0.2  # fast calls are repeated within a round up to this
DEFAULT_REPEATS = 5

# --quick: tiny models and sets, for a smoke run of seconds
QUICK_OVERRIDES = (
    "model.latent_dim=16",
    "model.g_width=8",
    "model.d_width=8",
    "train.batch_size=20",
    "distill.real_batch=8",
    "distill.net_width=8",
    "classifier.width=8",
)
QUICK_FIDELITY_IMAGES = (200, 100)
QUICK_MATMUL_SIZE = 256
QUICK_CONV_SHAPE = (16, 16)
QUICK_EVAL_EPOCHS = 2
QUICK_REPEATS = 2


# --- the plain reference GAN loop ------------------------------------------------------------


class PlainGAN:
    """The GAN step as reference code writes it: one loop body, no engine, handlers or logging.

    Same models and optimisers as :class:`~gandistill.gan.GANTrainer`, same batch size, hinge
    loss, class-conditional MMD² on D's features (``train.dist_weight``), DiffAugment policy,
    EMA and bfloat16 autocast where the trainer uses it; real batches are drawn uniformly, not
    class-balanced.
    """

    def __init__(
        self, cfg: Config, train_set: ImageTensors, info: DatasetInfo, device: torch.device
    ) -> None:
        tc, mc = cfg.train, cfg.model
        self.tc, self.device = tc, device
        self.images, self.labels = train_set.images, train_set.labels  # uint8, on the CPU
        torch.manual_seed(cfg.seed)
        self.G = Generator(
            info.num_classes, mc.latent_dim, mc.g_width, info.image_size, info.channels
        ).to(device)
        self.D = Discriminator(info.num_classes, mc.d_width, info.image_size, info.channels)
        self.D.to(device)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.ema_pairs = [
            (e, g)
            for e, g in zip(
                itertools.chain(self.G_ema.parameters(), self.G_ema.buffers()),
                itertools.chain(self.G.parameters(), self.G.buffers()),
                strict=True,
            )
            if e.is_floating_point()
        ]
        self.opt_g = torch.optim.Adam(self.G.parameters(), tc.lr_g, (tc.beta1, tc.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), tc.lr_d, (tc.beta1, tc.beta2))
        self.autocast = partial(amp_context, device, tc.amp)  # as the trainer's step
        self.gen = torch.Generator().manual_seed(cfg.seed)  # diff_augment draws on the CPU

    def step(self) -> None:
        tc, G, D, gen, b = self.tc, self.G, self.D, self.gen, self.tc.batch_size
        idx = torch.randint(len(self.images), (b,), generator=gen)
        real = self.images[idx].to(self.device).float() / 127.5 - 1.0  # (B, C, H, W) in [-1, 1]
        y = self.labels[idx].to(self.device)

        z = torch.randn(b, G.latent_dim, generator=gen).to(self.device)
        with self.autocast():
            with torch.no_grad():
                fake = G(z, y)
            real_aug = diff_augment(real, tc.augment, gen)
            d_real = D(real_aug, y)
            d_fake = D(diff_augment(fake, tc.augment, gen), y)
            loss_d = hinge_d(d_real.float(), d_fake.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        z = torch.randn(b, G.latent_dim, generator=gen).to(self.device)
        with self.autocast():
            fake = G(z, y)
            logits, fake_feat = D(diff_augment(fake, tc.augment, gen), y, return_features=True)
            loss_g = hinge_g(logits.float())
            if tc.dist_weight > 0:
                with torch.no_grad():
                    real_feat = D(real_aug, y, return_features=True)[1]
                mmd = class_conditional(mmd2, real_feat.float(), y, fake_feat.float(), y)
                loss_g = loss_g + tc.dist_weight * mmd
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        with torch.no_grad():
            for ema, current in self.ema_pairs:
                ema.lerp_(current, 1.0 - tc.ema_decay)


# --- measurements ------------------------------------------------------------------------------


def gan_config(config: str | None, device: str, extra: list[str], steps: int, run_dir: str):
    """Hinge + MMD on D features, ``GAN_WARMUP + steps`` iterations, no periodic disk writes."""
    n = GAN_WARMUP + steps
    return load_config(
        config,
        [
            f"device={device}",
            *extra,
            "train.loss=hinge",
            "train.dist_kind=mmd",
            "train.dist_features=disc",
            "train.progress=false",
            "train.eval_samples_per_class=0",
            f"train.iterations={n}",
            f"train.sample_every={n + 1}",
            f"train.checkpoint_every={n + 1}",
            f"run_dir={run_dir}",
        ],
    )


def trainer_step_seconds(cfg: Config, data: Data) -> float:
    """Median seconds per iteration of :class:`GANTrainer`, its per-iteration handlers included
    (the end-of-run checkpoint and generator file come after the last time stamp)."""
    trainer = GANTrainer(cfg, overwrite=True, data=data)
    stamps: list[float] = []

    def stamp(_engine) -> None:  # attached last: runs after the trainer's own handlers
        synchronize(trainer.device)
        stamps.append(time.perf_counter())

    trainer.engine.add_event_handler(Events.ITERATION_COMPLETED, stamp)
    trainer.run()
    return median_interval(stamps[GAN_WARMUP - 1 :])


def outer_step_flops(cfg: Config, data: Data) -> int:
    """FLOPs (matmuls and convolutions, forward and backward) of one outer step.

    Counted with one autograd pass per class (``grad_mode: loop``): the algorithm's FLOPs,
    whatever mode is timed. Under ``vmap`` the counter sees the batching rules' kernels, whose
    count is several times larger for the same result.
    """
    dc = replace(cfg.distill, max_iterations=1, grad_mode="loop")
    return counted_flops(Distiller(replace(cfg, distill=dc), data=data).run)


def fidelity_throughput(
    cfg: Config, data: Data, device: torch.device, sizes: tuple[int, int], repeats: int
) -> tuple[float, float, tuple[int, int]]:
    """Images/s of FID + KID through torch-fidelity and of the extractor's forward pass alone,
    and the sizes of the two sets (at most ``sizes``).

    The classifier is untrained (same architecture as the cached one): speed does not depend on
    its weights, and no classifier has to be trained first.
    """
    train_set, test_set, info = data.train, data.test, data.info
    cc = cfg.classifier
    torch.manual_seed(cfg.seed)
    net = ConvNet(info.num_classes, info.channels, info.image_size, cc.width, cc.depth)
    clf = RealClassifier(net.to(device).eval().requires_grad_(False), info, val_accuracy=0.0)
    images_a, images_b = train_set.images[: sizes[0]], test_set.images[: sizes[1]]
    n = len(images_a) + len(images_b)  # every image goes through the extractor once

    def metrics() -> None:
        fidelity_metrics(
            images_a,
            images_b,
            clf,
            device=device,
            metrics=("fid", "kid"),
            batch_size=FIDELITY_BATCH,
        )

    @torch.no_grad()
    def features() -> None:
        for x in torch.cat([images_a, images_b]).split(FIDELITY_BATCH):
            clf.features(x.to(device).float() / 255.0)

    with_fidelity = median_seconds(metrics, device, repeats)
    forward_only = median_seconds(features, device, repeats, MIN_ROUND_SECONDS)
    return n / with_fidelity, n / forward_only, (len(images_a), len(images_b))


def matmul_gflops(size: int, dtype: torch.dtype, device: torch.device, repeats: int) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device, dtype)
    b = torch.randn(size, size, generator=gen).to(device, dtype)
    seconds = median_seconds(lambda: torch.mm(a, b), device, repeats, MIN_ROUND_SECONDS)
    return 2 * size**3 / seconds / 1e9


def conv_gflops(
    shape: tuple[int, int], image_size: int, dtype: torch.dtype, device: torch.device, repeats: int
) -> float:
    """GFLOP/s of a 3 × 3 convolution (``shape`` = batch, channels), padding 1, at
    ``image_size``: forward plus the gradients of its input and weight, as a training step
    computes them; FLOPs counted by ``FlopCounterMode``."""
    batch, channels = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, image_size, image_size, generator=gen)
    x = x.to(device, dtype).requires_grad_(True)
    w = torch.randn(channels, channels, 3, 3, generator=gen).mul_(0.03)
    w = w.to(device, dtype).requires_grad_(True)

    def step() -> None:
        y = torch.nn.functional.conv2d(x, w, padding=1)
        torch.autograd.grad(y, (x, w), torch.ones_like(y))

    seconds = median_seconds(step, device, repeats, MIN_ROUND_SECONDS)
    return counted_flops(step) / seconds / 1e9


def counted_flops(fn: Callable[[], object]) -> int:
    """FLOPs (matmuls and convolutions, forward and backward) of one ``fn()`` call."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def eval_epoch(cfg: Config, data: Data, device: torch.device, epochs: int, repeats: int):
    """Seconds and FLOPs of one epoch of an evaluation network (``cfg.eval``: architecture,
    batch, augmentation, precision) on a random real subset of ``EVAL_IPC`` images per class;
    rounds of ``epochs`` epochs, network set-up included."""
    gen = torch.Generator().manual_seed(cfg.seed)
    images, labels = data.train.sample_per_class([EVAL_IPC] * data.info.num_classes, gen)
    images = data.info.normalize(images)

    def run(n: int) -> None:
        train_network(images, labels, data.info, cfg.eval, cfg.seed, device, epochs=n)

    return median_seconds(partial(run, epochs), device, repeats) / epochs, counted_flops(
        partial(run, 1)
    )


# --- report ------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


# one distribution-matching iteration with the reference DM code's settings (--ops)
DM_OVERRIDES = (
    "distill.objective=dm",
    "distill.init=real",
    "distill.dsa=true",
    "distill.ipc=10",
    "distill.max_iterations=1",
)


def op_shares(fn: Callable[[], object], device: torch.device, top: int) -> list[tuple[str, float]]:
    """The ``top`` operators by share (%) of the self time of one ``fn()`` call under
    torch.profiler: device time on CUDA, CPU time otherwise."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, key) > 0]
    total = sum(getattr(e, key) for e in events)
    ranked = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:top]
    return [(e.key, 100.0 * getattr(e, key) / total) for e in ranked]


def where_time_goes(
    cfg: Config, dcfg: Config, data: Data, device: torch.device, top: int, run_dir: str
) -> list[str]:
    """The ``--ops`` table: per stage, its heaviest operators and their shares."""
    trainer = GANTrainer(replace(cfg, run_dir=run_dir), overwrite=True, data=data)
    outer = Distiller(dcfg, data=data)
    dm = Distiller(from_dict(Config, apply_overrides(to_dict(dcfg), DM_OVERRIDES)), data=data)
    ec = replace(cfg.eval, epochs=1)
    gen = torch.Generator().manual_seed(cfg.seed)
    subset = data.train.sample_per_class([10] * data.info.num_classes, gen)
    images = data.info.normalize(subset[0])
    stages = {
        "GAN training": trainer.run,
        "distillation outer step": outer.run,
        "DM iteration, IPC 10 (reference settings)": dm.run,
        "evaluation network, one epoch": lambda: train_network(
            images, subset[1], data.info, ec, cfg.seed, device
        ),
    }
    lines = ["| stage | operator | share of self time |", "|---|---|---:|"]
    for name, fn in stages.items():
        for op, share in op_shares(fn, device, top):
            lines.append(f"| {name} | `{op}` | {share:.1f}% |")
    return lines


def computes_in(device: torch.device, amp: bool) -> torch.dtype:
    """The dtype a stage's matmuls and convolutions run in: bfloat16 under autocast."""
    return torch.bfloat16 if isinstance(amp_context(device, amp), torch.autocast) else torch.float32


def limits_table(
    rows: list[tuple[str, int, float, torch.dtype]],
    matmul: dict[torch.dtype, float],
    conv: dict[torch.dtype, float],
    size: int,
    conv_shape: tuple[int, int],
    image_size: int,
) -> list[str]:
    """The second table: each stage's achieved GFLOP/s beside the measured matmul and
    convolution peaks in its dtype, and its share of the larger of the two."""
    lines = [
        "| stage | dtype | GFLOP per step | seconds per step | achieved GFLOP/s | matmul peak "
        "| conv peak | share of the peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, flops, seconds, dtype in rows:
        achieved = flops / seconds / 1e9
        best = max(matmul[dtype], conv[dtype])
        lines.append(
            f"| {name} | {DTYPE_NAMES[dtype]} | {fmt(flops / 1e9)} | {fmt(seconds)} "
            f"| {fmt(achieved)} | {fmt(matmul[dtype])} | {fmt(conv[dtype])} "
            f"| {100 * achieved / best:.0f}% |"
        )
    batch, channels = conv_shape
    lines += [
        "",
        f"Peaks: {size}² matmul; 3 × 3 convolution {channels} → {channels} channels at "
        f"{image_size}², batch {batch}, forward and both backward passes. GFLOP counted by "
        "FlopCounterMode (matmuls and convolutions only); evaluation epochs timed with the "
        "network's set-up included.",
    ]
    return lines


def header(device: torch.device) -> str:
    where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"
    return (
        f"Device {where}; CPU {cpu_model()}; torch {torch.__version__}; "
        f"{torch.get_num_threads()} threads"
    )


def fmt(value: float) -> str:
    return f"{value:.1f}" if value >= 100 else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML config (default: mnist5k defaults)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed rounds per measurement (default {DEFAULT_REPEATS}, {QUICK_REPEATS} "
        f"with --quick); GAN steps: {GAN_STEPS_PER_REPEAT} per round",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds")
    parser.add_argument(
        "--ops",
        type=int,
        default=0,
        metavar="N",
        help="also profile each stage and list its N heaviest operators (0: no profile)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    extra = list(QUICK_OVERRIDES) if args.quick else []
    fidelity_images = QUICK_FIDELITY_IMAGES if args.quick else FIDELITY_IMAGES
    size = QUICK_MATMUL_SIZE if args.quick else MATMUL_SIZE
    conv_shape = QUICK_CONV_SHAPE if args.quick else CONV_SHAPE
    eval_epochs = QUICK_EVAL_EPOCHS if args.quick else EVAL_EPOCHS
    gan_steps = GAN_STEPS_PER_REPEAT * repeats
    try:
        with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
            cfg = gan_config(args.config, args.device, extra, gan_steps, tmp)
            device = resolve_device(cfg.device)
            data = load_dataset(cfg.data)
            info = data.info

            trainer_s = trainer_step_seconds(cfg, data)
            plain_gan = PlainGAN(cfg, data.train, info, device)
            plain_gan_s = median_seconds(plain_gan.step, device, gan_steps)
            del plain_gan

        dcfg = outer_step_config(args.config, args.device, DISTILL_IPC, repeats, extra)
        outer_s, d = outer_step_seconds(dcfg, data)
        plain_outer_s = plain_outer_seconds(d, repeats)
        flops = outer_step_flops(dcfg, data)
        bf16 = isinstance(amp_context(device, dcfg.distill.amp), torch.autocast)

        fid_ips, forward_ips, fid_sizes = fidelity_throughput(
            cfg, data, device, fidelity_images, repeats
        )
        peak = {dt: matmul_gflops(size, dt, device, repeats) for dt in DTYPE_NAMES}
        conv_peak = {
            dt: conv_gflops(conv_shape, info.image_size, dt, device, repeats) for dt in DTYPE_NAMES
        }
        gan_flops = counted_flops(PlainGAN(cfg, data.train, info, device).step)
        eval_s, eval_flops = eval_epoch(cfg, data, device, eval_epochs, repeats)
        ops = []
        if args.ops > 0:
            with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
                ops = where_time_goes(cfg, dcfg, data, device, args.ops, tmp)
    except GandistillError as exc:
        print(f"bench_speed: error: {exc}", file=sys.stderr)
        return 2

    batch, dc = cfg.train.batch_size, dcfg.distill
    step_dtype = torch.bfloat16 if bf16 else torch.float32
    achieved = flops / outer_s / 1e9
    gan_dtype = computes_in(device, cfg.train.amp)
    eval_dtype = computes_in(device, cfg.eval.amp)
    limit_rows = [
        ("GAN training step", gan_flops, trainer_s, gan_dtype),
        ("distillation outer step", flops, outer_s, step_dtype),
        (
            f"evaluation network epoch ({cfg.eval.arch}, IPC {EVAL_IPC}, "
            f"augment {cfg.eval.augment})",
            eval_flops,
            eval_s,
            eval_dtype,
        ),
    ]
    rows = [
        (
            "GAN training step (images/s)",
            batch / trainer_s,
            batch / plain_gan_s,
            "plain PyTorch loop",
        ),
        (
            "distillation outer step (steps/s)",
            1 / outer_s,
            1 / plain_outer_s,
            "plain per-class loop, float32",
        ),
        ("fidelity FID + KID (images/s)", fid_ips, forward_ips, "extractor forward pass only"),
        (
            "matching step (GFLOP/s)",
            achieved,
            peak[step_dtype],
            f"{size}² {DTYPE_NAMES[step_dtype]} matmul",
        ),
    ]
    lines = [
        header(device),
        "",
        "| measurement | gandistill | reference | ratio |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {fmt(ours)} | {fmt(ref)} ({what}) | {ours / ref:.3g} |"
        for name, ours, ref, what in rows
    ]
    lines += [
        "",
        "ratio: gandistill over the reference (> 1: gandistill is faster); last row: the share "
        "of the machine's matmul peak.",
        f"GAN: batch {batch}, G width {cfg.model.g_width}, D width {cfg.model.d_width}, "
        f"{gan_steps} timed steps after {GAN_WARMUP}. Distillation: IPC {DISTILL_IPC}, "
        f"{info.num_classes} classes × {d.cfg.distill.real_batch} real images, "
        f"ConvNet-{dc.net_depth} width {dc.net_width}, grad mode {d.cfg.distill.grad_mode}, "
        f"{DTYPE_NAMES[step_dtype]}, "
        f"{flops / 1e9:.3g} GFLOP per step. Fidelity: {fid_sizes[0]} train vs {fid_sizes[1]} "
        f"test images, batch {FIDELITY_BATCH}. "
        f"Matmul {size}²: float32 {fmt(peak[torch.float32])}, "
        f"bfloat16 {fmt(peak[torch.bfloat16])} GFLOP/s. Medians of {repeats} rounds.",
    ]
    lines += ["", *limits_table(limit_rows, peak, conv_peak, size, conv_shape, info.image_size)]
    if ops:
        lines += ["", "Where the time goes (torch.profiler, one call of each stage):", "", *ops]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
