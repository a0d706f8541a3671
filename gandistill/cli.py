"""Command line: ``gandistill train|distill|baseline|evaluate|benchmark|sample``.

User mistakes end in one ``gandistill: error: ...`` line on stderr and exit status 2; defaults
come from the config dataclasses, so the CLI and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from gandistill.errors import ArtifactError, ConfigError, GandistillError, Interrupted
from gandistill.files import atomic_write
from gandistill.runtime import format_seconds as _fmt_seconds

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C'd command
RESUMABLE_COMMANDS = ("train", "distill")  # continue with --resume
SELF_RESUMING_COMMANDS = ("quickstart",)  # continue when run again as it was
EXPORT_FORMATS = ("png", "npz", "pt", "imagefolder")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        command = self.prog.removeprefix("gandistill").strip()  # a subcommand's prog
        where = f"{command}: " if command else ""
        self.exit(EXIT_USER_ERROR, f"gandistill: error: {where}{message}\n")


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


def cmd_train(args: argparse.Namespace) -> int:
    from gandistill.config import load_config

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"device={args.device}")
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    cfg = load_config(args.config, overrides)
    _launch(args, cfg, _train_worker, cfg, args.resume, args.overwrite)
    return 0


def _launch(args: argparse.Namespace, cfg, worker, *worker_args) -> None:
    """Run ``worker(local_rank, *worker_args)`` on the processes the flags ask for."""
    from gandistill.parallel import launch

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


def _train_worker(local_rank: int, cfg, resume: bool, overwrite: bool) -> None:
    from gandistill.gan.trainer import train
    from gandistill.parallel import is_main, world_size

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
    from gandistill.config import (
        Config,
        apply_overrides,
        from_dict,
        load_config,
        to_dict,
    )
    from gandistill.distillation.loop import state_path
    from gandistill.files import load_generator_checkpoint

    out = Path(args.out)
    state = state_path(out)
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if state.is_file() and not (args.resume or args.overwrite):
        raise ArtifactError(
            f"{state} holds an interrupted distillation; pass --resume to continue it "
            "or --overwrite to start over"
        )
    _check_output(out, args.overwrite or args.resume)
    overrides = list(args.set or [])
    for key, value in (
        ("distill.ipc", args.ipc),
        ("distill.space", args.space),
        ("device", args.device),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    ckpt = None
    if args.generator:
        ckpt = load_generator_checkpoint(args.generator)
    if args.config:
        cfg = load_config(args.config, overrides)
    elif ckpt is not None:  # the generator's own run config: same data, classifier, seed
        cfg = from_dict(Config, apply_overrides(to_dict(ckpt.config), overrides))
    else:
        cfg = load_config(None, overrides)
    if cfg.distill.space == "pixel":
        ckpt = None
    _launch(args, cfg, _distill_worker, cfg, ckpt, out, args.resume)
    return 0


def _distill_worker(local_rank: int, cfg, ckpt, out: Path, resume: bool) -> None:
    from gandistill.distillation.loop import Distiller
    from gandistill.parallel import is_main

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
    from gandistill.config import load_config
    from gandistill.coreset.baselines import build_baseline

    out = Path(args.out)
    _check_output(out, args.overwrite)
    overrides = list(args.set or []) + ([f"device={args.device}"] if args.device else [])
    cfg = load_config(args.config, overrides)
    ds = build_baseline(cfg, args.method, ipc=args.ipc, out=out)
    n_classes, spent = ds.info.num_classes, _fmt_seconds(ds.history[-1]["seconds"])
    print(f"baseline set: {out} ({args.ipc} per class × {n_classes} classes, real images)")
    print(f"selected by {args.method} in {spent} from {ds.info.name}'s training split")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from gandistill.files import load_generator_checkpoint
    from gandistill.pipelines.benchmark import (
        METHODS,
        RESULTS_FILE,
        TABLE_FILE,
        benchmark_config,
        parse_ipcs,
        parse_methods,
        run_benchmark,
    )

    ipcs, methods = parse_ipcs(args.ipc), parse_methods(args.methods or ",".join(METHODS))
    overrides = list(args.set or []) + ([f"device={args.device}"] if args.device else [])
    ckpt = load_generator_checkpoint(args.generator) if args.generator else None
    cfg = benchmark_config(args.config, overrides, ckpt)
    run_benchmark(cfg, args.out, ipcs, methods, args.seeds, args.minutes, args.profile, ckpt)
    print(f"wrote {Path(args.out) / TABLE_FILE} and {Path(args.out) / RESULTS_FILE}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from gandistill.pipelines.quickstart import quickstart, quickstart_config, summary

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"device={args.device}")
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    if args.no_progress:
        overrides += ["train.progress=false", "distill.progress=false"]
    cfg = quickstart_config(args.config, overrides)
    result = quickstart(cfg, overwrite=args.overwrite, progress=not args.no_progress)
    print(summary(result))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gandistill.config import apply_overrides, config_from_dict, load_config, to_dict
    from gandistill.evaluation.generator import evaluate_generator, generator_markdown
    from gandistill.evaluation.report import evaluate_distilled, headline
    from gandistill.files import DistilledSet, load_generator_checkpoint

    if bool(args.distilled) == bool(args.generator):
        raise ArtifactError("pass one of --distilled FILE or --generator FILE")
    out = Path(args.out)
    _check_output(out / "report.json", args.overwrite)
    source = (
        DistilledSet.load(args.distilled)
        if args.distilled
        else load_generator_checkpoint(args.generator)
    )
    overrides = list(args.set or []) + ([f"device={args.device}"] if args.device else [])
    if args.config:
        cfg = load_config(args.config, overrides)
    else:  # the file's own config: same data, classifier and seed
        cfg = config_from_dict(apply_overrides(to_dict(source.config), overrides))
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
        report = evaluate_distilled(
            args.distilled,
            **common,
            archs=args.archs.split(",") if args.archs else None,
            soft_labels=args.soft_labels,
        )
        print(headline(report))
    print(f"report: {out / 'report.md'} ({_fmt_seconds(report['wall_seconds'])})")
    return 0


def _distilled_images(args: argparse.Namespace):
    """uint8 images of a distilled set: decoded through its generator when at hand, else stored."""
    from gandistill.files import DistilledSet, to_uint8

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


def _write_export(images, labels, info, fmt: str, out: Path) -> None:
    import numpy as np
    from torchvision.utils import make_grid, save_image

    from gandistill.files import atomic_save

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
    else:  # imagefolder: one sub-folder per class, built aside and renamed into place
        from PIL import Image

        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            for i, (img, y) in enumerate(zip(images, labels.tolist(), strict=True)):
                folder = tmp / info.class_names[y]
                folder.mkdir(exist_ok=True)
                arr = img.permute(1, 2, 0).squeeze(-1).numpy()
                Image.fromarray(arr).save(folder / f"{i:05d}.png")
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def cmd_sample(args: argparse.Namespace) -> int:
    from torchvision.utils import save_image

    from gandistill.files import load_generator_checkpoint
    from gandistill.gan.trainer import class_grid
    from gandistill.runtime import resolve_device, step_generator

    out = Path(args.out)
    if args.distilled:
        fmt = args.format or (out.suffix.lstrip(".").lower() if out.suffix else "imagefolder")
        if fmt not in EXPORT_FORMATS:
            raise GandistillError(f"unknown format '{fmt}' (use {', '.join(EXPORT_FORMATS)})")
        _check_output(out, args.overwrite)
        ds, images, source = _distilled_images(args)
        _write_export(images, ds.labels, ds.info, fmt, out)
        print(f"wrote {out} ({fmt}): {len(ds.labels)} images, {ds.ipc} per class, {source}")
        return 0
    if not args.generator:
        raise GandistillError("sample needs --generator FILE or --distilled FILE")
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
    return 0


def _add_parallel_flags(p: argparse.ArgumentParser) -> None:
    from gandistill.parallel import BACKENDS, DEFAULT_TIMEOUT_MINUTES

    g = p.add_argument_group("several processes (ignite.distributed; or launch with torchrun)")
    g.add_argument("--nproc-per-node", type=int, default=1, help="processes on this machine")
    g.add_argument("--nnodes", type=int, default=1, help="machines taking part")
    g.add_argument("--node-rank", type=int, default=0, help="this machine's index")
    g.add_argument("--master-addr", help="address of the node with rank 0")
    g.add_argument("--master-port", type=int, help="its port (default: a free local one)")
    g.add_argument("--backend", default="auto", choices=BACKENDS, help="auto: nccl on CUDA")
    g.add_argument(
        "--timeout-minutes",
        type=float,
        default=DEFAULT_TIMEOUT_MINUTES,
        help="how long a collective waits for a stuck peer",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gandistill", description=__doc__.splitlines()[0])
    from gandistill import __version__

    parser.add_argument("--version", action="version", version=f"gandistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a class-conditional GAN")
    p.add_argument("--config", help="YAML config (default: built-in mnist5k defaults)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.iterations=100"
    )
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides the config)")
    p.add_argument("--run-dir", help="output folder (overrides run_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="discard an earlier run in run_dir")
    _add_parallel_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="distil a small training set through a generator")
    p.add_argument("--generator", help="generator checkpoint (needed for latent space)")
    p.add_argument("--ipc", type=int, help="images per class (overrides distill.ipc)")
    p.add_argument("--space", choices=("latent", "pixel"), help="overrides distill.space")
    p.add_argument("--out", required=True, help="distilled-set file to write (.pt)")
    p.add_argument("--config", help="YAML config (default: the generator's own run config)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override, e.g. distill.max_iterations=100",
    )
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--resume", action="store_true", help="continue from the state saved next to --out"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_parallel_flags(p)
    p.set_defaults(func=cmd_distill)

    from gandistill.coreset.baselines import METHODS

    p = sub.add_parser("baseline", help="coreset baseline: real images chosen per class")
    p.add_argument("--method", required=True, help=f"selection rule: {', '.join(METHODS)}")
    p.add_argument("--ipc", type=int, required=True, help="images per class")
    p.add_argument("--out", required=True, help="distilled-set file to write (.pt)")
    p.add_argument("--config", help="YAML config (default: built-in mnist5k defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. seed=1")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("evaluate", help="report on a distilled set (or a generator)")
    p.add_argument("--distilled", help="distilled-set file")
    p.add_argument("--generator", help="generator checkpoint (instead of --distilled)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--profile", choices=("quick", "full"), default="quick", help="how much to run")
    p.add_argument(
        "--feature-extractor",
        default="classifier",
        help="torch-fidelity features: classifier (offline, default) or inception-v3-compat",
    )
    p.add_argument("--inception-weights", help="local Inception-v3 weights (no download)")
    p.add_argument("--kid-subset-size", type=int, help="KID subset size (default 1000, clamped)")
    p.add_argument("--archs", help="comma-separated evaluation networks, e.g. convnet,mlp,resnet18")
    p.add_argument(
        "--soft-labels", action="store_true", help="also train with the classifier as teacher"
    )
    p.add_argument("--config", help="YAML config (default: the set's own config)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. seed=1")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "quickstart", help="train on mnist5k, distil IPC 10, evaluate: the whole pipeline"
    )
    p.add_argument("--config", help="YAML config (default: built-in defaults + quickstart's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. seed=1")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--run-dir", help="output folder (default: checkpoints/quickstart)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="start over, discarding earlier output")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("benchmark", help="every method × IPC × seed: one budget, one protocol")
    p.add_argument("--ipc", default="1,10", help="comma-separated images per class")
    p.add_argument("--methods", help="comma-separated methods (default: all eight)")
    p.add_argument("--minutes", type=float, default=10.0, help="budget per optimised set")
    p.add_argument("--seeds", type=int, default=1, help="seeds per row (cfg.seed + 0..N-1)")
    p.add_argument("--profile", choices=("quick", "full"), default="quick", help="eval protocol")
    p.add_argument("--generator", help="generator checkpoint (for latent-gm, latent-dm)")
    p.add_argument("--out", default="checkpoints/benchmark", help="output folder")
    p.add_argument("--config", help="YAML config (default: the generator's run config)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. seed=1")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("sample", help="generator grid, or export of a distilled set")
    p.add_argument("--generator", help="generator checkpoint (generator.pt)")
    p.add_argument("--distilled", help="distilled-set file to export")
    p.add_argument(
        "--format", choices=EXPORT_FORMATS, help="export format (default: from --out's suffix)"
    )
    p.add_argument("--n-per-class", type=int, default=8, help="columns of the grid")
    p.add_argument("--out", required=True, help="output file (or folder for imagefolder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents")
    p.add_argument("--no-ema", action="store_true", help="use the raw, not the EMA, weights")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_sample)
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
