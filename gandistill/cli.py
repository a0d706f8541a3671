"""Command line: ``gandistill train|distill|baseline|evaluate|benchmark|sample``.

User mistakes end in one ``gandistill: error: ...`` line on stderr and exit status 2. A
subcommand only turns its flags into the Python API's arguments and calls it, so the command
line and the API cannot drift apart: the run's settings come from the config dataclasses, and
the defaults of the other options from :mod:`gandistill.defaults`, which the API's signatures
read too.

Flags that several subcommands take (``--config``, ``--set``, ``--device``, ``--overwrite``, the
process flags, ...) are declared once, in parent parsers; a subcommand lists its own flags first
and then those parents, so its ``--help`` reads as it always has.

The stages are imported at module level, not inside each command: importing ``gandistill.cli``
runs the package's ``__init__`` first, which already imports every one of them (measured: the
import of this module then adds nothing else and takes milliseconds), so deferring them would
not make ``gandistill --help`` any faster.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid, save_image

from gandistill import __version__, defaults
from gandistill.config import Config, apply_overrides, config_from_dict, load_config, to_dict
from gandistill.coreset.baselines import METHODS as CORESET_METHODS
from gandistill.coreset.baselines import build_baseline
from gandistill.data import DatasetInfo
from gandistill.distillation.loop import Distiller, state_path
from gandistill.errors import ArtifactError, ConfigError, GandistillError, Interrupted
from gandistill.evaluation.generator import evaluate_generator, generator_markdown
from gandistill.evaluation.report import PROFILES as EVAL_PROFILES
from gandistill.evaluation.report import evaluate_distilled, headline
from gandistill.files import (
    DistilledSet,
    GeneratorCheckpoint,
    atomic_save,
    atomic_write,
    load_generator_checkpoint,
    to_uint8,
)
from gandistill.gan.trainer import class_grid, train
from gandistill.parallel import BACKENDS, DEFAULT_TIMEOUT_MINUTES, is_main, launch, world_size
from gandistill.pipelines.benchmark import METHODS as BENCHMARK_METHODS
from gandistill.pipelines.benchmark import PROFILES as BENCHMARK_PROFILES
from gandistill.pipelines.benchmark import (
    RESULTS_FILE,
    TABLE_FILE,
    benchmark_config,
    parse_ipcs,
    parse_methods,
    run_benchmark,
)
from gandistill.pipelines.quickstart import quickstart, quickstart_config, summary
from gandistill.runtime import format_seconds as _fmt_seconds
from gandistill.runtime import resolve_device, step_generator

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C'd command
RESUMABLE_COMMANDS = ("train", "distill")  # continue with --resume
SELF_RESUMING_COMMANDS = ("quickstart",)  # continue when run again as it was
EXPORT_FORMATS = ("png", "npz", "pt", "imagefolder")
DEVICE_HELP = "auto | cpu | cuda | cuda:N"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        command = self.prog.removeprefix("gandistill").strip()  # a subcommand's prog
        where = f"{command}: " if command else ""
        self.exit(EXIT_USER_ERROR, f"gandistill: error: {where}{message}\n")


# --- helpers of the commands ----------------------------------------------------------------------


def _check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path} already exists (pass --overwrite to replace it)")
    folder = path.parent  # the nearest existing folder above it gets the new sub-folders
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ArtifactError(f"cannot write {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ArtifactError(f"output folder {folder} is not writable")


def _check_resume(state: Path, resume: bool, overwrite: bool) -> None:
    """Refuse ``--resume`` with ``--overwrite``, and a fresh start over an interrupted run."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if state.is_file() and not (resume or overwrite):
        raise ArtifactError(
            f"{state} holds an interrupted distillation; pass --resume to continue it "
            "or --overwrite to start over"
        )


def _overrides(args: argparse.Namespace, flags: dict[str, Any]) -> list[str]:
    """``--set``'s ``KEY=VALUE`` overrides, then one per flag that stands for a config key.

    Args:
        args: the parsed command line.
        flags: config key -> the flag's value; ``None`` (not given) adds nothing. Most
            commands pass ``args.device or None``: an empty ``--device`` keeps the config's
            device there, while ``distill`` passes it on, as each always has.
    """
    given = [f"{key}={value}" for key, value in flags.items() if value is not None]
    return [*(args.set or []), *given]


def _config(
    path: str | None,
    overrides: list[str],
    saved: DistilledSet | GeneratorCheckpoint | None = None,
) -> Config:
    """``--config`` with the overrides; without one, the config saved in ``saved`` (a generator
    checkpoint or distilled set: same data, classifier and seed), else the defaults."""
    if path:
        return load_config(path, overrides)
    if saved is not None:
        return config_from_dict(apply_overrides(to_dict(saved.config), overrides))
    return load_config(None, overrides)


def _launch(args: argparse.Namespace, cfg: Config, worker: Callable, *worker_args: Any) -> None:
    """Run ``worker(local_rank, *worker_args)`` on the processes the flags ask for."""
    launch(
        worker,
        *worker_args,
        nproc_per_node=args.nproc_per_node,
        nnodes=args.nnodes,
        node_rank=args.node_rank,
        master_addr=args.master_addr,
        master_port=args.master_port,
        backend=args.backend,
        device=cfg.device,
        timeout_minutes=args.timeout_minutes,
    )


# --- the commands ---------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    """``gandistill train``: train the GAN on the processes the flags ask for.

    Args:
        args: the parsed command line.

    Returns:
        The exit status, 0.
    """
    flags = {"device": args.device or None, "run_dir": args.run_dir or None}
    cfg = load_config(args.config, _overrides(args, flags))
    _launch(args, cfg, _train_worker, cfg, args.resume, args.overwrite)
    return 0


def _train_worker(local_rank: int, cfg: Config, resume: bool, overwrite: bool) -> None:
    result = train(cfg, resume=resume, overwrite=overwrite)
    if not is_main():
        return
    print(f"generator: {result.generator_path}")
    if result.class_consistency is not None:
        n = cfg.train.eval_samples_per_class
        share = 100 * result.class_consistency
        print(f"class consistency: {share:.1f}% ({n} EMA samples per class)")
    procs = f", {world_size()} processes" if world_size() > 1 else ""
    print(f"iterations: {result.iterations}, wall time: {_fmt_seconds(result.seconds)}{procs}")
    print(f"follow it with: tensorboard --logdir {Path(cfg.run_dir).parent}")


def cmd_distill(args: argparse.Namespace) -> int:
    """``gandistill distill``: distil a small training set, through the generator's latent
    space or in pixel space.

    Args:
        args: the parsed command line.

    Returns:
        The exit status, 0.
    """
    out = Path(args.out)
    _check_resume(state_path(out), args.resume, args.overwrite)
    _check_output(out, args.overwrite or args.resume)
    flags = {"distill.ipc": args.ipc, "distill.space": args.space, "device": args.device}
    ckpt = load_generator_checkpoint(args.generator) if args.generator else None
    cfg = _config(args.config, _overrides(args, flags), ckpt)  # else the generator's run config
    if cfg.distill.space == "pixel":
        ckpt = None
    _launch(args, cfg, _distill_worker, cfg, ckpt, out, args.resume)
    return 0


def _distill_worker(
    local_rank: int, cfg: Config, ckpt: GeneratorCheckpoint | None, out: Path, resume: bool
) -> None:
    ds = Distiller(cfg, generator=ckpt, out=out, resume=resume).run()
    if not is_main():
        return
    dc, n_classes = cfg.distill, ds.info.num_classes
    print(f"distilled set: {out} ({dc.ipc} per class × {n_classes} classes, {dc.space} space)")
    last = ds.history[-1] if ds.history else {}
    spent = _fmt_seconds(last.get("seconds", 0.0))
    print(f"stopped: {ds.stop_reason} after {last.get('iteration', 0)} iterations ({spent})")
    if "accuracy" in last:
        acc = 100 * last["accuracy"]
        print(f"quick check: {acc:.1f}% test accuracy (one network, {dc.eval_epochs} epochs)")


def cmd_baseline(args: argparse.Namespace) -> int:
    """``gandistill baseline``: a coreset of real images, chosen per class.

    Args:
        args: the parsed command line.

    Returns:
        The exit status, 0.
    """
    out = Path(args.out)
    _check_output(out, args.overwrite)
    cfg = load_config(args.config, _overrides(args, {"device": args.device or None}))
    ds = build_baseline(cfg, args.method, ipc=args.ipc, out=out)
    n_classes, spent = ds.info.num_classes, _fmt_seconds(ds.history[-1]["seconds"])
    print(f"baseline set: {out} ({args.ipc} per class × {n_classes} classes, real images)")
    print(f"selected by {args.method} in {spent} from {ds.info.name}'s training split")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """``gandistill benchmark``: every method × IPC × seed, under one budget and protocol.

    Args:
        args: the parsed command line.

    Returns:
        The exit status, 0.
    """
    ipcs = parse_ipcs(args.ipc)
    methods = parse_methods(args.methods or ",".join(BENCHMARK_METHODS))
    overrides = _overrides(args, {"device": args.device or None})
    ckpt = load_generator_checkpoint(args.generator) if args.generator else None
    cfg = benchmark_config(args.config, overrides, ckpt)
    run_benchmark(cfg, args.out, ipcs, methods, args.seeds, args.minutes, args.profile, ckpt)
    print(f"wrote {Path(args.out) / TABLE_FILE} and {Path(args.out) / RESULTS_FILE}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    """``gandistill quickstart``: train, distil and evaluate in one go.

    Args:
        args: the parsed command line.

    Returns:
        The exit status, 0.
    """
    flags = {"device": args.device or None, "run_dir": args.run_dir or None}
    overrides = _overrides(args, flags)
    if args.no_progress:
        overrides += ["train.progress=false", "distill.progress=false"]
    cfg = quickstart_config(args.config, overrides)
    result = quickstart(cfg, overwrite=args.overwrite, progress=not args.no_progress)
    print(summary(result))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``gandistill evaluate``: the report on a distilled set, or on a generator.

    Args:
        args: the parsed command line.

    Returns:
        The exit status, 0.
    """
    if bool(args.distilled) == bool(args.generator):
        raise ArtifactError("pass one of --distilled FILE or --generator FILE")
    out = Path(args.out)
    _check_output(out / "report.json", args.overwrite)
    source = (
        DistilledSet.load(args.distilled)
        if args.distilled
        else load_generator_checkpoint(args.generator)
    )
    cfg = _config(args.config, _overrides(args, {"device": args.device or None}), source)
    common = dict(
        cfg=cfg,
        out=out,
        profile=args.profile,
        extractor=args.feature_extractor,
        inception_weights=args.inception_weights,
        kid_subset_size=args.kid_subset_size,
        progress=not args.no_progress,
    )
    if args.generator:
        report = evaluate_generator(source, **common)
        print("\n".join(generator_markdown(report)[4:9]))
    else:
        archs = args.archs.split(",") if args.archs else None
        report = evaluate_distilled(
            args.distilled, **common, archs=archs, soft_labels=args.soft_labels
        )
        print(headline(report))
    print(f"report: {out / 'report.md'} ({_fmt_seconds(report['wall_seconds'])})")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """``gandistill sample``: a generator's class grid, or the export of a distilled set.

    Args:
        args: the parsed command line.

    Returns:
        The exit status, 0.
    """
    out = Path(args.out)
    if args.distilled:
        _export(args, out)
    elif args.generator:
        _grid(args, out)
    else:
        raise GandistillError("sample needs --generator FILE or --distilled FILE")
    return 0


def _grid(args: argparse.Namespace, out: Path) -> None:
    """A PNG grid of the generator's samples: one row per class."""
    if out.suffix.lower() != ".png":
        raise ArtifactError(f"--out must be a .png file for a grid, got '{out.name}'")
    if args.n_per_class < 1:
        raise GandistillError(f"--n-per-class must be >= 1, got {args.n_per_class}")
    _check_output(out, args.overwrite)
    device = resolve_device(args.device)
    ckpt = load_generator_checkpoint(args.generator, ema=not args.no_ema, device=device)
    g = ckpt.generator
    z = g.sample_latents(args.n_per_class, step_generator(args.seed, -3))
    with torch.no_grad():
        grid = class_grid(g, z, g.num_classes).cpu()
    atomic_write(out, lambda fh: save_image(grid, fh, format="png"))
    names = ", ".join(ckpt.info.class_names)
    print(f"wrote {out}: {g.num_classes} rows ({names}) × {args.n_per_class} samples")


def _export(args: argparse.Namespace, out: Path) -> None:
    """A distilled set's images in ``--format`` (else the one ``--out``'s suffix names)."""
    fmt = args.format or (out.suffix.lstrip(".").lower() if out.suffix else "imagefolder")
    if fmt not in EXPORT_FORMATS:
        raise GandistillError(f"unknown format '{fmt}' (use {', '.join(EXPORT_FORMATS)})")
    _check_output(out, args.overwrite)
    ds, images, source = _distilled_images(args)
    _write_export(images, ds.labels, ds.info, fmt, out)
    print(f"wrote {out} ({fmt}): {len(ds.labels)} images, {ds.ipc} per class, {source}")


def _distilled_images(args: argparse.Namespace) -> tuple[DistilledSet, torch.Tensor, str]:
    """uint8 images of a distilled set: decoded through its generator when at hand, else stored."""
    ds = DistilledSet.load(args.distilled)
    source = "stored images"
    if ds.space == "latent" and (
        args.generator or (ds.generator_path and Path(ds.generator_path).is_file())
    ):
        try:
            normalized = ds.decode(args.generator)
            pixels = to_uint8(ds.info.denormalize(normalized))
            source = f"decoded through {args.generator or ds.generator_path}"
            return ds, pixels, source
        except ArtifactError:
            if args.generator:
                raise
    return ds, ds.images_uint8, source


def _write_export(
    images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo, fmt: str, out: Path
) -> None:
    """Write a distilled set's uint8 images in one of :data:`EXPORT_FORMATS`."""
    if fmt == "png":
        ipc = int(torch.bincount(labels).max())
        grid = make_grid(images.float() / 255, nrow=ipc, padding=2, pad_value=1.0)
        atomic_write(out, lambda fh: save_image(grid, fh, format="png"))
    elif fmt == "pt":
        atomic_save(
            {"images": images, "labels": labels, "class_names": list(info.class_names)}, out
        )
    elif fmt == "npz":
        atomic_write(out, lambda fh: np.savez(fh, images=images.numpy(), labels=labels.numpy()))
    else:
        _write_imagefolder(images, labels, info.class_names, out)


def _write_imagefolder(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], out: Path
) -> None:
    """One sub-folder of PNGs per class, built aside and renamed into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for i, (img, y) in enumerate(zip(images, labels.tolist(), strict=True)):
            folder = tmp / class_names[y]
            folder.mkdir(exist_ok=True)
            arr = img.permute(1, 2, 0).squeeze(-1).numpy()
            Image.fromarray(arr).save(folder / f"{i:05d}.png")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --- the parser -----------------------------------------------------------------------------------
# Each subcommand's own flags go into a parent parser listed first, so they keep their place
# above the shared ones in --help.


def _flags() -> argparse.ArgumentParser:
    """An empty parent parser: a subcommand listing it in ``parents`` takes its flags."""
    return argparse.ArgumentParser(add_help=False)


def _shared_flags(
    *,
    config: str | None = None,
    example: str = "seed=1",
    device: str = DEVICE_HELP,
    device_default: str | None = None,
    run_dir: str | None = None,
    resume: str | None = None,
    progress: bool = False,
    overwrite: str | None = None,
) -> argparse.ArgumentParser:
    """The flags several subcommands share, each declared only here; their help texts differ.

    Args:
        config: what runs without ``--config``, in words; adds ``--config`` and ``--set``.
        example: an override, for ``--set``'s help.
        device: ``--device``'s help (every subcommand takes ``--device``).
        device_default: ``--device``'s default (``None``: the config's device).
        run_dir: ``--run-dir``'s help; adds the flag.
        resume: ``--resume``'s help; adds the flag.
        progress: adds ``--no-progress``.
        overwrite: ``--overwrite``'s help; adds the flag.

    Returns:
        A parent parser (``add_help=False``) holding the flags asked for.
    """
    p = _flags()
    if config:
        p.add_argument("--config", help=f"YAML config (default: {config})")
        p.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help=f"override, e.g. {example}"
        )
    p.add_argument("--device", default=device_default, help=device)
    if run_dir:
        p.add_argument("--run-dir", help=run_dir)
    if resume:
        p.add_argument("--resume", action="store_true", help=resume)
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help=overwrite)
    return p


def _parallel_flags() -> argparse.ArgumentParser:
    """The flags of a run on several processes (``train``, ``distill``)."""
    p = _flags()
    g = p.add_argument_group("several processes (ignite.distributed; or launch with torchrun)")
    g.add_argument(
        "--nproc-per-node",
        type=int,
        default=defaults.NPROC_PER_NODE,
        help="processes on this machine",
    )
    g.add_argument("--nnodes", type=int, default=defaults.NNODES, help="machines taking part")
    g.add_argument("--node-rank", type=int, default=defaults.NODE_RANK, help="this machine's index")
    g.add_argument("--master-addr", help="address of the node with rank 0")
    g.add_argument("--master-port", type=int, help="its port (default: a free local one)")
    g.add_argument(
        "--backend", default=defaults.BACKEND, choices=BACKENDS, help="auto: nccl on CUDA"
    )
    g.add_argument(
        "--timeout-minutes",
        type=float,
        default=DEFAULT_TIMEOUT_MINUTES,
        help="how long a collective waits for a stuck peer",
    )
    return p


def _add_train(sub: argparse._SubParsersAction) -> None:
    shared = _shared_flags(
        config="built-in mnist5k defaults",
        example="train.iterations=100",
        device=f"{DEVICE_HELP} (overrides the config)",
        run_dir="output folder (overrides run_dir)",
        resume="continue from the last checkpoint",
        overwrite="discard an earlier run in run_dir",
    )
    p = sub.add_parser(
        "train", help="train a class-conditional GAN", parents=[shared, _parallel_flags()]
    )
    p.set_defaults(func=cmd_train)


def _add_distill(sub: argparse._SubParsersAction) -> None:
    own = _flags()
    own.add_argument("--generator", help="generator checkpoint (needed for latent space)")
    own.add_argument("--ipc", type=int, help="images per class (overrides distill.ipc)")
    own.add_argument("--space", choices=("latent", "pixel"), help="overrides distill.space")
    own.add_argument("--out", required=True, help="distilled-set file to write (.pt)")
    shared = _shared_flags(
        config="the generator's own run config",
        example="distill.max_iterations=100",
        resume="continue from the state saved next to --out",
        overwrite="replace an existing output",
    )
    p = sub.add_parser(
        "distill",
        help="distil a small training set through a generator",
        parents=[own, shared, _parallel_flags()],
    )
    p.set_defaults(func=cmd_distill)


def _add_baseline(sub: argparse._SubParsersAction) -> None:
    own = _flags()
    own.add_argument(
        "--method", required=True, help=f"selection rule: {', '.join(CORESET_METHODS)}"
    )
    own.add_argument("--ipc", type=int, required=True, help="images per class")
    own.add_argument("--out", required=True, help="distilled-set file to write (.pt)")
    shared = _shared_flags(
        config="built-in mnist5k defaults", overwrite="replace an existing output"
    )
    p = sub.add_parser(
        "baseline",
        help="coreset baseline: real images chosen per class",
        parents=[own, shared],
    )
    p.set_defaults(func=cmd_baseline)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    own = _flags()
    own.add_argument("--distilled", help="distilled-set file")
    own.add_argument("--generator", help="generator checkpoint (instead of --distilled)")
    own.add_argument("--out", required=True, help="report folder")
    own.add_argument(
        "--profile",
        choices=tuple(EVAL_PROFILES),
        default=defaults.EVAL_PROFILE,
        help="how much to run",
    )
    own.add_argument(
        "--feature-extractor",
        default=defaults.FEATURE_EXTRACTOR,
        help="torch-fidelity features: classifier (offline, default) or inception-v3-compat",
    )
    own.add_argument("--inception-weights", help="local Inception-v3 weights (no download)")
    own.add_argument("--kid-subset-size", type=int, help="KID subset size (default 1000, clamped)")
    own.add_argument(
        "--archs", help="comma-separated evaluation networks, e.g. convnet,mlp,resnet18"
    )
    own.add_argument(
        "--soft-labels", action="store_true", help="also train with the classifier as teacher"
    )
    shared = _shared_flags(
        config="the set's own config", progress=True, overwrite="replace an existing report"
    )
    p = sub.add_parser(
        "evaluate", help="report on a distilled set (or a generator)", parents=[own, shared]
    )
    p.set_defaults(func=cmd_evaluate)


def _add_quickstart(sub: argparse._SubParsersAction) -> None:
    shared = _shared_flags(
        config="built-in defaults + quickstart's",
        run_dir="output folder (default: checkpoints/quickstart)",
        progress=True,
        overwrite="start over, discarding earlier output",
    )
    p = sub.add_parser(
        "quickstart",
        help="train on mnist5k, distil IPC 10, evaluate: the whole pipeline",
        parents=[shared],
    )
    p.set_defaults(func=cmd_quickstart)


def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    own = _flags()
    ipcs = ",".join(map(str, defaults.BENCHMARK_IPCS))
    own.add_argument("--ipc", default=ipcs, help="comma-separated images per class")
    own.add_argument("--methods", help="comma-separated methods (default: all eight)")
    own.add_argument(
        "--minutes",
        type=float,
        default=defaults.BENCHMARK_MINUTES,
        help="budget per optimised set",
    )
    own.add_argument(
        "--seeds",
        type=int,
        default=defaults.BENCHMARK_SEEDS,
        help="seeds per row (cfg.seed + 0..N-1)",
    )
    own.add_argument(
        "--profile", choices=BENCHMARK_PROFILES, default=defaults.EVAL_PROFILE, help="eval protocol"
    )
    own.add_argument("--generator", help="generator checkpoint (for latent-gm, latent-dm)")
    own.add_argument("--out", default=defaults.BENCHMARK_OUT, help="output folder")
    shared = _shared_flags(config="the generator's run config")
    p = sub.add_parser(
        "benchmark",
        help="every method × IPC × seed: one budget, one protocol",
        parents=[own, shared],
    )
    p.set_defaults(func=cmd_benchmark)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    own = _flags()
    own.add_argument("--generator", help="generator checkpoint (generator.pt)")
    own.add_argument("--distilled", help="distilled-set file to export")
    own.add_argument(
        "--format", choices=EXPORT_FORMATS, help="export format (default: from --out's suffix)"
    )
    own.add_argument(
        "--n-per-class", type=int, default=defaults.SAMPLE_N_PER_CLASS, help="columns of the grid"
    )
    own.add_argument("--out", required=True, help="output file (or folder for imagefolder)")
    own.add_argument("--seed", type=int, default=defaults.SAMPLE_SEED, help="seed of the latents")
    own.add_argument("--no-ema", action="store_true", help="use the raw, not the EMA, weights")
    shared = _shared_flags(
        device_default=defaults.SAMPLE_DEVICE, overwrite="replace an existing output"
    )
    p = sub.add_parser(
        "sample", help="generator grid, or export of a distilled set", parents=[own, shared]
    )
    p.set_defaults(func=cmd_sample)


_SUBCOMMANDS = (
    _add_train,
    _add_distill,
    _add_baseline,
    _add_evaluate,
    _add_quickstart,
    _add_benchmark,
    _add_sample,
)  # in the order ``gandistill --help`` lists them


def build_parser() -> argparse.ArgumentParser:
    """The ``gandistill`` parser with every subcommand.

    Returns:
        The parser; a parsed command's ``func`` is its ``cmd_*`` function.
    """
    parser = _Parser(prog="gandistill", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gandistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def _continue_command(command: str, argv: list[str]) -> str | None:
    """The command line that continues an interrupted run (``None``: there is none)."""
    args = [a for a in argv if a != "--overwrite"]
    if command in RESUMABLE_COMMANDS and "--resume" not in args:
        args.append("--resume")
    elif command not in RESUMABLE_COMMANDS + SELF_RESUMING_COMMANDS:
        return None
    return shlex.join(["gandistill", *args])


def main(argv: list[str] | None = None) -> int:
    """Run one ``gandistill`` command line.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, 2 for a user error, 128 + the signal's number when interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GandistillError as exc:
        print(f"gandistill: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Interrupted as exc:  # stopped between iterations, state saved
        line, again = f"gandistill: {exc}", _continue_command(args.command, argv)
        print(line + (f"; continue with: {again}" if again else ""), file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("gandistill: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
