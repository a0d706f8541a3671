"""Command line: ``gandistill train|sample``.

User mistakes end in one ``gandistill: error: ...`` line on stderr and exit status 2; defaults
come from the config dataclasses, so the CLI and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from gandistill.errors import ArtifactError, GandistillError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def _check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path} already exists (pass --overwrite to replace it)")
    if path.parent.exists() and not os.access(path.parent, os.W_OK):
        raise ArtifactError(f"output folder {path.parent} is not writable")


def _fmt_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def cmd_train(args: argparse.Namespace) -> int:
    from gandistill.config import load_config
    from gandistill.train import train

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"device={args.device}")
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    cfg = load_config(args.config, overrides)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"generator: {result.generator_path}")
    if result.class_consistency is not None:
        n = cfg.train.eval_samples_per_class
        share = 100 * result.class_consistency
        print(f"class consistency: {share:.1f}% ({n} EMA samples per class)")
    print(f"iterations: {result.iterations}, wall time: {_fmt_seconds(result.seconds)}")
    print(f"follow it with: tensorboard --logdir {Path(cfg.run_dir).parent}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch
    from torchvision.utils import save_image

    from gandistill.artifacts import load_generator_checkpoint
    from gandistill.runtime import resolve_device, step_generator
    from gandistill.train import class_grid

    out = Path(args.out)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            save_image(grid, fh, format="png")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    names = ", ".join(ckpt.info.class_names)
    print(f"wrote {out}: {g.num_classes} rows ({names}) × {args.n_per_class} samples")
    return 0


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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="write a grid of generated images, one row per class")
    p.add_argument("--generator", required=True, help="generator checkpoint (generator.pt)")
    p.add_argument("--n-per-class", type=int, default=8, help="columns of the grid")
    p.add_argument("--out", required=True, help="output .png")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents")
    p.add_argument("--no-ema", action="store_true", help="use the raw, not the EMA, weights")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GandistillError as exc:
        print(f"gandistill: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gandistill: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
