"""What each ``gandistill`` subcommand does: turn its parsed flags into the Python API's
arguments, check the outputs it will write, and call the API. A subcommand holds no logic of its
own beyond that, so the command line and the API cannot drift apart.

The stages are imported at module level, not inside each command: importing the command line
runs the package's ``__init__`` first, which already imports every one of them, so deferring
them would not make ``gandistill --help`` any faster.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image

from gandistill import defaults
from gandistill.config import (
    GENERATOR_SPACES,
    Config,
    apply_overrides,
    config_from_dict,
    load_config,
    to_dict,
    uses_generator,
)
from gandistill.coreset.baselines import build_baseline
from gandistill.distillation.loop import Distiller, state_path
from gandistill.distillation.sampled import sample_set
from gandistill.errors import ArtifactError, ConfigError, GandistillError
from gandistill.evaluation.compare import compare_reports, report_file
from gandistill.evaluation.generator import evaluate_generator
from gandistill.evaluation.options import parse_archs
from gandistill.evaluation.render import generator_markdown, headline
from gandistill.evaluation.report import evaluate_distilled
from gandistill.files import (
    EXPORT_FORMATS,
    DistilledSet,
    GeneratorCheckpoint,
    atomic_write,
    export_images,
    load_generator_checkpoint,
    to_uint8,
)
from gandistill.gan.monitor import class_grid
from gandistill.gan.trainer import train
from gandistill.parallel import is_main, launch, world_size
from gandistill.pipelines.benchmark import RESULTS_FILE, TABLE_FILE, run_benchmark
from gandistill.pipelines.benchmark_settings import METHODS as BENCHMARK_METHODS
from gandistill.pipelines.benchmark_settings import (
    benchmark_config,
    parse_ipcs,
    parse_methods,
)
from gandistill.pipelines.quickstart import (
    DEFAULT_MINUTES,
    quickstart,
    quickstart_config,
    sized_to,
    summary,
)
from gandistill.runtime import format_seconds as _fmt_seconds
from gandistill.runtime import resolve_device, step_generator

# --- helpers of the commands ----------------------------------------------------------------------


def _check_output(path: Path, overwrite: bool, folder: bool = False) -> None:
    """Refuse an output, before any work, that exists (unless ``overwrite``), that is a folder
    where a file is written (or a file where a ``folder`` is), or whose nearest existing folder
    is no folder or cannot be written."""
    if path.is_dir() and not folder:
        raise ArtifactError(f"cannot write {path}: it is a folder, not a file")
    if path.exists() and folder and not path.is_dir():
        raise ArtifactError(f"cannot write {path}: it is a file, not a folder")
    if path.exists() and not folder and not path.is_file():
        # a device, pipe or socket (/dev/null): the atomic rename would replace the node itself
        raise ArtifactError(f"cannot write {path}: it is not a regular file")
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path} already exists (pass --overwrite to replace it)")
    parent = _existing_parent(path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArtifactError(f"output folder {parent} is not writable")


def _existing_parent(path: Path) -> Path:
    """The nearest existing folder above ``path`` (it gets the new sub-folders); refused when
    it is a regular file."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ArtifactError(f"cannot write {path}: {parent} is not a folder")
    return parent


def _check_output_folder(path: Path) -> None:
    """Refuse, before any work, an output folder that is a regular file or lies under one."""
    if path.exists() and not path.is_dir():
        raise ArtifactError(f"cannot write {path}: it is a file, not a folder")
    _existing_parent(path)


INPUT_FILES = (  # flags naming a file
    "config",
    "generator",
    "distilled",
    "distilled_generator",
    "inception_weights",
)


def check_inputs(args: argparse.Namespace) -> None:
    """Refuse a folder given where a command reads a file, naming the flag (the loaders say
    when a file is missing or is no file of theirs)."""
    for name in INPUT_FILES:
        path = getattr(args, name, None)
        if path and Path(path).is_dir():
            flag = "--" + name.replace("_", "-")
            raise ArtifactError(f"{flag} {path} is a folder, not a file")


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
    """``gandistill train``: train the GAN on the processes the flags ask for."""
    flags = {"device": args.device or None, "run_dir": args.run_dir or None}
    cfg = load_config(args.config, _overrides(args, flags))
    _check_output_folder(Path(cfg.run_dir))
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
    stop = f" (stopped: {result.stopped_by})" if result.stopped_by else ""
    print(
        f"iterations: {result.iterations}{stop}, wall time: {_fmt_seconds(result.seconds)}{procs}"
    )
    print(f"follow it with: tensorboard --logdir {Path(cfg.run_dir).parent}")


def cmd_distill_generator(args: argparse.Namespace) -> int:
    """``gandistill distill-generator``: continue a generator's training run with the
    pool-matching term (:mod:`gandistill.gan.pool`) for ``match.iterations``, in a run folder of
    its own; the result is an ordinary generator file that records its source."""
    source = load_generator_checkpoint(args.generator)
    run_dir = args.run_dir or str(Path(args.generator).parent / defaults.DISTILL_GENERATOR_DIR)
    flags = {"device": args.device or None, "run_dir": run_dir}
    preset = [] if source.config.match.weight > 0 else list(defaults.DISTILL_GENERATOR_PRESET)
    # absolute, so that a resume from another folder names the same source
    init_from = Path(args.generator).resolve()
    overrides = [*preset, *_overrides(args, flags), f"train.init_from={init_from}"]
    cfg = _config(args.config, overrides, source)
    if cfg.match.weight <= 0:
        raise ConfigError("match.weight 0 turns the pool-matching term off: nothing to distil")
    cfg = replace(cfg, train=replace(cfg.train, iterations=source.iteration + cfg.match.iterations))
    _check_output_folder(Path(cfg.run_dir))
    _launch(args, cfg, _train_worker, cfg, args.resume, args.overwrite)
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """``gandistill distill``: distil a small training set, through the generator's latent
    space or in pixel space."""
    out = Path(args.out)
    _check_resume(state_path(out), args.resume, args.overwrite)
    _check_output(out, args.overwrite or args.resume)
    flags = {"distill.ipc": args.ipc, "distill.space": args.space, "device": args.device}
    ckpt = load_generator_checkpoint(args.generator) if args.generator else None
    cfg = _config(args.config, _overrides(args, flags), ckpt)  # else the generator's run config
    if not uses_generator(cfg.distill):
        ckpt = None  # a pixel set started from noise or real images does not depend on it
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
        split = last.get("accuracy_split", "test")
        print(f"quick check: {acc:.1f}% {split} accuracy (one network, {dc.eval_epochs} epochs)")


def cmd_baseline(args: argparse.Namespace) -> int:
    """``gandistill baseline``: a coreset of real images, chosen per class."""
    out = Path(args.out)
    _check_output(out, args.overwrite)
    cfg = load_config(args.config, _overrides(args, {"device": args.device or None}))
    ds = build_baseline(cfg, args.method, ipc=args.ipc, out=out)
    n_classes, spent = ds.info.num_classes, _fmt_seconds(ds.history[-1]["seconds"])
    print(f"baseline set: {out} ({args.ipc} per class × {n_classes} classes, real images)")
    print(f"selected by {args.method} in {spent} from {ds.info.name}'s training split")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """``gandistill benchmark``: every method × IPC × seed, under one budget and protocol."""
    ipcs = parse_ipcs(args.ipc)
    methods = parse_methods(args.methods or ",".join(BENCHMARK_METHODS))
    overrides = _overrides(args, {"device": args.device or None})
    ckpt = load_generator_checkpoint(args.generator) if args.generator else None
    cfg = benchmark_config(args.config, overrides, ckpt)
    _check_output_folder(Path(args.out))
    run_benchmark(
        cfg,
        args.out,
        ipcs,
        methods,
        args.seeds,
        args.minutes,
        args.profile,
        ckpt,
        distilled_generator=args.distilled_generator,
        archs=parse_archs(args.archs) if args.archs else None,
        split=args.split,
    )
    print(f"wrote {Path(args.out) / TABLE_FILE} and {Path(args.out) / RESULTS_FILE}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    """``gandistill quickstart``: train, distil and evaluate in one go."""
    flags = {"device": args.device or None, "run_dir": args.run_dir or None}
    overrides = _overrides(args, flags)
    if args.no_progress:
        overrides += ["train.progress=false", "distill.progress=false"]
    cfg = quickstart_config(args.config, overrides)
    minutes = args.minutes
    if minutes is not None:
        cfg = sized_to(cfg, minutes)
    elif args.config is None:  # the preset is sized to this total
        minutes = DEFAULT_MINUTES
    _check_output_folder(Path(cfg.run_dir))
    progress = not args.no_progress
    result = quickstart(cfg, overwrite=args.overwrite, progress=progress, minutes=minutes)
    print(summary(result, minutes))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``gandistill evaluate``: the report on a distilled set, or on a generator."""
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
        archs = parse_archs(args.archs) if args.archs else None
        report = evaluate_distilled(
            args.distilled, **common, archs=archs, soft_labels=args.soft_labels
        )
        print(headline(report))
    print(f"report: {out / 'report.md'} ({_fmt_seconds(report['wall_seconds'])})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``gandistill compare``: distilled sets' reports side by side, under one protocol."""
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.resolve() in {report_file(r).resolve() for r in args.reports}:
            raise ArtifactError(f"--out {out} is one of the reports compared")
        _check_output(out, args.overwrite)
    table = compare_reports(args.reports, fidelity=not args.no_fidelity)
    if out is not None:
        atomic_write(out, lambda fh: fh.write(table.encode("utf-8")))
    print(table, end="")
    if out is not None:
        print(f"wrote {out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """``gandistill sample``: a generator's class grid, or the export of a distilled set."""
    out = Path(args.out)
    if args.ipc is not None and (args.distilled or not args.generator):
        raise GandistillError("--ipc draws a set from a generator: pass --generator FILE")
    if args.distilled:
        _export(args, out)
    elif args.ipc is not None:
        _sampled_set(args, out)
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
    if args.n_per_class > defaults.SAMPLE_MAX_N_PER_CLASS:
        raise GandistillError(
            f"--n-per-class must be <= {defaults.SAMPLE_MAX_N_PER_CLASS}, got {args.n_per_class}"
        )
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


def _sampled_set(args: argparse.Namespace, out: Path) -> None:
    """A static set of ``--ipc`` samples per class: a distilled-set file (``.pt``, the default)
    or its images in ``--format``."""
    if args.no_ema:  # a set decodes through the EMA weights its file names by hash
        raise GandistillError("--no-ema draws a grid only; a set is drawn from the EMA weights")
    fmt = args.format or (out.suffix.lstrip(".").lower() if out.suffix else "imagefolder")
    if fmt not in EXPORT_FORMATS:
        raise GandistillError(f"unknown format '{fmt}' (use {', '.join(EXPORT_FORMATS)})")
    _check_output(out, args.overwrite, folder=fmt == "imagefolder")
    start = time.perf_counter()
    device = resolve_device(args.device)
    ckpt = load_generator_checkpoint(args.generator, device=device)
    if not ckpt.distilled:
        print(
            f"note: {args.generator} is a generator as trained (not distilled into): the set "
            "is its plain samples"
        )
    ds = sample_set(
        ckpt,
        args.ipc,
        args.seed,
        device,
        select=args.select,
        candidates=args.candidates,
        latent_scale=args.latent_scale,
    )
    chosen = (
        "the first draws"
        if args.select == "none"
        else f"{args.select} among {args.candidates} draws per image"
    )
    if (psi := ds.config.distill.latent_scale) != 1.0:
        chosen += f", latents scaled by {psi:g}"
    if fmt == "pt":
        ds.save(out)
    else:
        export_images(ds.images_uint8, ds.labels, ds.info.class_names, fmt, out)
    print(
        f"wrote {out} ({fmt}): {len(ds.labels)} images, {args.ipc} per class, seed {args.seed}, "
        f"{chosen}, in {time.perf_counter() - start:.1f} s"
    )


def _export(args: argparse.Namespace, out: Path) -> None:
    """A distilled set's images in ``--format`` (else the one ``--out``'s suffix names)."""
    fmt = args.format or (out.suffix.lstrip(".").lower() if out.suffix else "imagefolder")
    if fmt not in EXPORT_FORMATS:
        raise GandistillError(f"unknown format '{fmt}' (use {', '.join(EXPORT_FORMATS)})")
    _check_output(out, args.overwrite, folder=fmt == "imagefolder")
    ds, images, source = _distilled_images(args)
    export_images(images, ds.labels, ds.info.class_names, fmt, out)
    print(f"wrote {out} ({fmt}): {len(ds.labels)} images, {ds.ipc} per class, {source}")


def _distilled_images(args: argparse.Namespace) -> tuple[DistilledSet, torch.Tensor, str]:
    """uint8 images of a distilled set: decoded through its generator when at hand, else stored."""
    ds = DistilledSet.load(args.distilled)
    source = "stored images"
    if ds.space in GENERATOR_SPACES and (
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
