"""The ``gandistill`` argument parser: one small function per subcommand.

Flags that several subcommands take (``--config``, ``--set``, ``--device``, ``--overwrite``, the
process flags, ...) are declared once, in parent parsers; a subcommand lists its own flags first
and then those parents, so its ``--help`` reads as it always has. Defaults come from
:mod:`gandistill.defaults`, which the API's signatures read too.
"""

from __future__ import annotations

import argparse
import math
import os

from gandistill import __version__, defaults
from gandistill.cli.commands import (
    cmd_baseline,
    cmd_benchmark,
    cmd_compare,
    cmd_distill,
    cmd_distill_generator,
    cmd_evaluate,
    cmd_quickstart,
    cmd_sample,
    cmd_train,
)
from gandistill.config.schema import MAX_CANDIDATES, SPACES
from gandistill.coreset.baselines import METHODS as CORESET_METHODS
from gandistill.distillation.sampled import SELECTIONS
from gandistill.errors import EXIT_USER_ERROR
from gandistill.evaluation.options import PROFILES as EVAL_PROFILES
from gandistill.files import EXPORT_FORMATS
from gandistill.parallel import BACKENDS, DEFAULT_TIMEOUT_MINUTES
from gandistill.pipelines.benchmark_settings import PROFILES as BENCHMARK_PROFILES
from gandistill.pipelines.benchmark_settings import SPLITS as BENCHMARK_SPLITS

DESCRIPTION = (
    "Command line: ``gandistill train|distill|distill-generator|baseline|evaluate|compare|"
    "benchmark|sample``."
)
DEVICE_HELP = "auto | cpu | cuda | cuda:N"


# processes of a run on one machine: one per core, and at least 8 to try a run on several on a
# small machine; each imports torch (about 0.5 GiB), so thousands would exhaust the memory
MAX_NPROC_PER_NODE = max(8, os.cpu_count() or 1)
MAX_PORT = 65535


class _Bounded:
    """An argparse ``type``: a number (``kind``, int or float) of at least ``low``, more than
    ``above``, at most ``high``; a float must be finite. Refused values end in the parser's one
    line (``argument --seeds: must be >= 1, got 0``); a non-number keeps argparse's own message
    (``invalid int value: 'abc'``), since the type takes ``kind``'s name. The bounds are
    attributes, for help and tests to read."""

    def __init__(
        self,
        kind: type,
        *,
        low: float | None = None,
        above: float | None = None,
        high: float | None = None,
    ) -> None:
        self.kind, self.low, self.above, self.high = kind, low, above, high
        self.__name__ = kind.__name__

    def __call__(self, text: str) -> int | float:
        value = self.kind(text)
        if self.kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if self.low is not None and value < self.low:
            raise argparse.ArgumentTypeError(f"must be >= {self.low}, got {value}")
        if self.above is not None and value <= self.above:
            raise argparse.ArgumentTypeError(f"must be > {self.above}, got {value}")
        if self.high is not None and value > self.high:
            raise argparse.ArgumentTypeError(f"must be <= {self.high}, got {value}")
        return value

    def __repr__(self) -> str:
        return self.__name__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        command = self.prog.removeprefix("gandistill").strip()  # a subcommand's prog
        where = f"{command}: " if command else ""
        self.exit(EXIT_USER_ERROR, f"gandistill: error: {where}{message}\n")


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
        type=_Bounded(int, low=1, high=MAX_NPROC_PER_NODE),
        default=defaults.NPROC_PER_NODE,
        help=f"processes on this machine (at most {MAX_NPROC_PER_NODE})",
    )
    g.add_argument(
        "--nnodes", type=_Bounded(int, low=1), default=defaults.NNODES, help="machines taking part"
    )
    g.add_argument(
        "--node-rank",
        type=_Bounded(int, low=0),
        default=defaults.NODE_RANK,
        help="this machine's index",
    )
    g.add_argument("--master-addr", help="address of the node with rank 0")
    g.add_argument(
        "--master-port",
        type=_Bounded(int, low=1, high=MAX_PORT),
        help="its port (default: a free local one)",
    )
    g.add_argument(
        "--backend", default=defaults.BACKEND, choices=BACKENDS, help="auto: nccl on CUDA"
    )
    g.add_argument(
        "--timeout-minutes",
        type=_Bounded(float, above=0),
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
    own.add_argument("--space", choices=SPACES, help="overrides distill.space")
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


def _add_distill_generator(sub: argparse._SubParsersAction) -> None:
    own = _flags()
    own.add_argument(
        "--generator", required=True, help="generator.pt in its run folder (with state/)"
    )
    shared = _shared_flags(
        config="the generator's own run config",
        example="match.iterations=300",
        device=f"{DEVICE_HELP} (overrides the config)",
        run_dir=f"output folder (default: {defaults.DISTILL_GENERATOR_DIR}/ beside --generator)",
        resume="continue from the last checkpoint",
        overwrite="discard an earlier run in the output folder",
    )
    p = sub.add_parser(
        "distill-generator",
        help="distil the training set into a generator, so that any set sampled from it is "
        "informative",
        parents=[own, shared, _parallel_flags()],
    )
    p.set_defaults(func=cmd_distill_generator)


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
        help="quick (one network, 300 epochs, no augmentation), full (the DC protocol) or cpu "
        "(full, with quick's cuts for alexnet and resnet18)",
    )
    own.add_argument(
        "--feature-extractor",
        default=defaults.FEATURE_EXTRACTOR,
        help="fidelity features: independent (a network of its own, default), classifier (the "
        "one that selects sets) or inception-v3-compat",
    )
    own.add_argument("--inception-weights", help="local Inception-v3 weights (no download)")
    own.add_argument(
        "--kid-subset-size", type=int, help="set images per KID draw (default: the whole set)"
    )
    own.add_argument(
        "--archs",
        help="comma-separated evaluation networks, e.g. convnet,mlp,resnet18; 'cross' = "
        + ",".join(defaults.CROSS_ARCHS)
        + " (a cross-architecture block with the mean over the unseen ones)",
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


def _add_compare(sub: argparse._SubParsersAction) -> None:
    own = _flags()
    own.add_argument(
        "reports", nargs="+", metavar="REPORT", help="report folder or report.json (two or more)"
    )
    own.add_argument(
        "--no-fidelity",
        action="store_true",
        help="leave FID and KID out (then reports scored by different extractors compare)",
    )
    own.add_argument("--out", metavar="FILE.md", help="also write the table to this file")
    own.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p = sub.add_parser(
        "compare", help="distilled sets' reports side by side, under one protocol", parents=[own]
    )
    p.set_defaults(func=cmd_compare)


def _add_quickstart(sub: argparse._SubParsersAction) -> None:
    shared = _shared_flags(
        config="built-in defaults + quickstart's",
        run_dir="output folder (default: checkpoints/quickstart)",
        progress=True,
        overwrite="start over, discarding earlier output",
    )
    own = _flags()
    own.add_argument(
        "--minutes",
        type=_Bounded(float, above=0),
        help="size the stages to about this total: training and distillation get budgets of "
        "their share (train.max_minutes, distill.max_minutes), set-up and evaluation the rest "
        "(default: the preset's sizes, those of 10 minutes; a --config file's own)",
    )
    p = sub.add_parser(
        "quickstart",
        help="train on mnist5k, distil IPC 10, evaluate: the whole pipeline",
        parents=[shared, own],
    )
    p.set_defaults(func=cmd_quickstart)


def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    own = _flags()
    ipcs = ",".join(map(str, defaults.BENCHMARK_IPCS))
    own.add_argument("--ipc", default=ipcs, help="comma-separated images per class")
    own.add_argument(
        "--methods", help="comma-separated methods (default: all those the given files allow)"
    )
    own.add_argument(
        "--minutes",
        type=_Bounded(float, above=0),
        default=defaults.BENCHMARK_MINUTES,
        help="budget per optimised set",
    )
    own.add_argument(
        "--seeds",
        type=_Bounded(int, low=1, high=defaults.BENCHMARK_MAX_SEEDS),
        default=defaults.BENCHMARK_SEEDS,
        help=f"seeds per row (cfg.seed + 0..N-1; at most {defaults.BENCHMARK_MAX_SEEDS})",
    )
    own.add_argument(
        "--profile",
        choices=BENCHMARK_PROFILES,
        default=defaults.EVAL_PROFILE,
        help="eval protocol: quick (300 epochs, no augmentation), full (the DC protocol) or cpu "
        "(full, with quick's cuts for alexnet and resnet18)",
    )
    own.add_argument(
        "--generator",
        help="generator checkpoint (for the latent and hybrid methods and generator-sample)",
    )
    own.add_argument(
        "--distilled-generator",
        help="a generator made by distill-generator (for distilled-generator)",
    )
    own.add_argument(
        "--archs",
        help="comma-separated networks that score each set, one row each (e.g. convnet,mlp); "
        "'cross' = " + ",".join(defaults.CROSS_ARCHS) + " (default: eval.arch)",
    )
    own.add_argument(
        "--split",
        choices=BENCHMARK_SPLITS,
        default="test",
        help="what accuracy and FID are measured on: test (results to report) or validation "
        "(choosing settings without reading the test split)",
    )
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
        "--n-per-class",
        type=int,
        default=defaults.SAMPLE_N_PER_CLASS,
        help=f"columns of the grid (at most {defaults.SAMPLE_MAX_N_PER_CLASS})",
    )
    own.add_argument(
        "--ipc",
        type=_Bounded(int, low=1),
        help="with --generator: draw a static set of IPC samples per class (a distilled-set "
        ".pt file, or --format png|npz|imagefolder)",
    )
    own.add_argument(
        "--select",
        choices=SELECTIONS,
        default=defaults.SAMPLE_SELECT,
        help="with --ipc: keep each class's images among --candidates draws per image in the "
        "real-data classifier's features: kmeans (the draw nearest each centroid), herding, "
        f"kcenter; none: the first draws (default: {defaults.SAMPLE_SELECT})",
    )
    own.add_argument(
        "--candidates",
        type=_Bounded(int, low=1, high=MAX_CANDIDATES),
        default=defaults.SAMPLE_CANDIDATES,
        help=f"with --select: draws per kept image (default: {defaults.SAMPLE_CANDIDATES})",
    )
    own.add_argument(
        "--latent-scale",
        type=_Bounded(float, low=0.0, high=1.0),
        help="with --ipc: psi in 0..1, latents drawn as psi * N(0, I); below 1 the set keeps "
        "nearer each class's typical sample (the truncation trick) (default: 0.3 at --ipc 1, "
        "else 1)",
    )
    own.add_argument("--out", required=True, help="output file (or folder for imagefolder)")
    own.add_argument("--seed", type=int, default=defaults.SAMPLE_SEED, help="seed of the latents")
    own.add_argument("--no-ema", action="store_true", help="use the raw, not the EMA, weights")
    shared = _shared_flags(
        device_default=defaults.SAMPLE_DEVICE, overwrite="replace an existing output"
    )
    p = sub.add_parser(
        "sample",
        help="generator grid, a set of any IPC drawn from a generator, or export of a set",
        parents=[own, shared],
    )
    p.set_defaults(func=cmd_sample)


_SUBCOMMANDS = (
    _add_train,
    _add_distill,
    _add_distill_generator,
    _add_baseline,
    _add_evaluate,
    _add_compare,
    _add_quickstart,
    _add_benchmark,
    _add_sample,
)  # in the order ``gandistill --help`` lists them


def build_parser() -> argparse.ArgumentParser:
    """The ``gandistill`` parser with every subcommand.

    Returns:
        The parser; a parsed command's ``func`` is its ``cmd_*`` function.
    """
    parser = _Parser(prog="gandistill", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"gandistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser
