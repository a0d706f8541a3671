"""How good a training set does a generator draw? Sets sampled on demand against random real ones.

For each ``--ipc`` and each of ``--draws`` seeds s, it draws a set with
:func:`gandistill.distillation.sampled.sample_set` (latent seed s, each ``--select`` rule) from
every ``--generator``, and a random real subset of the same IPC (drawn with seed s as the
evaluation report draws its own), trains one fresh network per set (network seed s, so rows
are paired draw by draw) and scores it on the validation and the test split. Prints a markdown
table (mean ± std over the draws, each draw, the split's binomial standard error) and writes
every number to ``--json``.

The protocol is the config's ``eval`` section (by default the DC protocol: ConvNet-3, 1000
epochs with crop/scale/rotate); ``--profile quick`` trims it as ``gandistill evaluate`` does
(300 epochs, no augmentation). Example (2-core CPU; about 10 minutes per DC-protocol network at
IPC 10, 30 seconds per quick one)::

    python scripts/bench_sampled.py --generator checkpoints/mnist5k/distilled/generator.pt \\
        --ipc 1,10 --draws 5 --select kmeans,none --latent-scale 1,0.3 --json sampled.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

from gandistill.config import apply_overrides, config_from_dict, load_config, to_dict
from gandistill.data import load_dataset
from gandistill.defaults import SAMPLE_CANDIDATES
from gandistill.distillation.sampled import sample_set
from gandistill.errors import GandistillError
from gandistill.evaluation.options import PROFILES, apply_profile
from gandistill.evaluation.report import random_real_subset
from gandistill.files import load_generator_checkpoint
from gandistill.fit import test_accuracy, train_network
from gandistill.runtime import resolve_device

SPLITS = ("val", "test")


def _summary(accs: list[float], n_images: int) -> dict:
    mean = statistics.fmean(accs)
    return {
        "mean": mean,
        "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "accuracies": accs,
        "binomial_se": math.sqrt(mean * (1 - mean) / n_images),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", action="append", required=True, help="generator file")
    parser.add_argument(
        "--config", help="YAML config for the protocol (default: the first generator's)"
    )
    parser.add_argument("--set", action="append", default=[], help="config override")
    parser.add_argument("--ipc", default="10", help="comma-separated images per class")
    parser.add_argument("--draws", type=int, default=5, help="sets per row (seeds 0..draws-1)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first draw")
    parser.add_argument("--select", default="kmeans", help="comma-separated sample --select rules")
    parser.add_argument("--candidates", type=int, default=SAMPLE_CANDIDATES)
    parser.add_argument(
        "--latent-scale",
        default="auto",
        help="comma-separated sample --latent-scale values (psi; auto: sample's default)",
    )
    parser.add_argument("--profile", choices=("config", "quick"), default="config")
    parser.add_argument("--no-real", action="store_true", help="skip the random real subsets")
    parser.add_argument(
        "--no-sampled",
        action="store_true",
        help="skip the sampled sets (the first generator still gives the config)",
    )
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except GandistillError as exc:
        print(f"bench_sampled: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    ipcs = [int(k) for k in args.ipc.split(",")]
    rules = args.select.split(",")
    try:
        scales = [None if v == "auto" else float(v) for v in args.latent_scale.split(",")]
    except ValueError:
        print(f"bench_sampled: error: --latent-scale takes numbers, got {args.latent_scale!r}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.draws < 1 or min(ipcs) < 1:
        print("bench_sampled: error: --draws and every --ipc must be at least 1", file=sys.stderr)
        return 2
    ckpts = {path: load_generator_checkpoint(path) for path in args.generator}
    first = next(iter(ckpts.values()))
    if args.config:
        cfg = load_config(args.config, args.set)
    else:
        cfg = config_from_dict(apply_overrides(to_dict(first.config), args.set))
    ec = cfg.eval if args.profile == "config" else apply_profile(cfg.eval, PROFILES["quick"])
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.data)
    info = data.info
    sizes = {"val": len(data.val), "test": len(data.test)}

    rows: list[dict] = []

    def score(name: str, ipc: int, sets) -> None:
        accs: dict[str, list[float]] = {split: [] for split in SPLITS}
        start = time.perf_counter()
        for seed, (images, labels) in sets:
            net = train_network(images, labels, info, ec, seed, device)
            for split, held_out in zip(SPLITS, (data.val, data.test), strict=True):
                accs[split].append(test_accuracy(net, held_out, info, device))
            print(f"{name} ipc {ipc} seed {seed}: val {accs['val'][-1]:.4f} "
                  f"test {accs['test'][-1]:.4f}", flush=True)  # fmt: skip
        rows.append(
            {"set": name, "ipc": ipc, "seconds": round(time.perf_counter() - start, 1)}
            | {split: _summary(accs[split], sizes[split]) for split in SPLITS}
        )

    seeds = range(args.first_seed, args.first_seed + args.draws)
    for ipc in ipcs:
        for path, ckpt in ckpts.items() if not args.no_sampled else ():
            for rule, psi in itertools.product(rules, scales):

                def drawn(ipc=ipc, ckpt=ckpt, rule=rule, psi=psi):
                    for s in seeds:
                        ds = sample_set(ckpt, ipc, s, device, select=rule,
                                        candidates=args.candidates, data=data,
                                        latent_scale=psi)  # fmt: skip
                        yield s, (ds.images_float.to(device), ds.labels.to(device))

                name = f"{Path(path).parent.name}/{Path(path).name} select={rule}"
                score(name + (f" latent-scale={psi:g}" if psi is not None else ""), ipc, drawn())
        if not args.no_real:

            def real(ipc=ipc):
                for s in seeds:
                    x, y = random_real_subset(data.train, ipc, s)
                    yield s, (info.normalize(x).to(device), y.to(device))

            score("random real subset", ipc, real())

    protocol = (
        f"{ec.arch}, {ec.epochs} epochs, augmentation {ec.augment}, one network per draw, "
        f"draws (latent, subset and network seeds) {list(seeds)}"
    )
    print(f"\nProtocol: {protocol}. Candidates per kept image: {args.candidates}.\n")
    print("| set | IPC | validation: mean ± std (draws) | s.e. | test: mean ± std (draws) | s.e. |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        cells = []
        for split in SPLITS:
            r = row[split]
            each = ", ".join(f"{100 * a:.1f}" for a in r["accuracies"])
            cells += [f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}% ({each})",
                      f"{100 * r['binomial_se']:.2f}"]  # fmt: skip
        print(f"| {row['set']} | {row['ipc']} | " + " | ".join(cells) + " |")
    if args.json:
        out = {"protocol": protocol, "candidates": args.candidates, "images": sizes, "rows": rows}
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
