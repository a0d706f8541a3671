"""What does the distribution-matching term buy? Train with it on and off, same seed and budget.

Prints (and writes as markdown) class consistency of the EMA generator and training wall time
for each variant of ``train.dist_kind``. Example (2-core CPU, about 7 minutes per variant)::

    python scripts/bench_gan.py --config configs/mnist5k.yaml --variants mmd,none --out bench_gan.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gandistill.config import load_config
from gandistill.errors import GandistillError
from gandistill.gan.trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mnist5k.yaml")
    parser.add_argument("--variants", default="mmd,none", help="dist_kind values to compare")
    parser.add_argument("--set", action="append", default=[], help="extra overrides for all runs")
    parser.add_argument("--run-root", default="checkpoints/bench_gan")
    parser.add_argument("--out", help="write the table as markdown here")
    args = parser.parse_args(argv)

    rows = []
    for kind in args.variants.split(","):
        cfg = load_config(
            args.config,
            [*args.set, f"train.dist_kind={kind}", f"run_dir={Path(args.run_root) / kind}"],
        )
        try:
            result = train(cfg, overwrite=True)
        except GandistillError as exc:
            print(f"bench_gan: error: {exc}", file=sys.stderr)
            return 2
        rows.append((kind, cfg, result))
        print(
            f"{kind}: class consistency {100 * result.class_consistency:.1f}%, "
            f"{result.seconds / 60:.1f} min",
            flush=True,
        )

    cfg0 = rows[0][1]
    lines = [
        f"Config `{args.config}` (seed {cfg0.seed}, {cfg0.train.iterations} iterations, batch "
        f"{cfg0.train.batch_size}, weight {cfg0.train.dist_weight}); class consistency of "
        f"{cfg0.train.eval_samples_per_class} EMA samples per class.",
        "",
        "| dist_kind | class consistency | training wall time |",
        "|---|---|---|",
    ]
    for kind, _, result in rows:
        lines.append(
            f"| {kind} | {100 * result.class_consistency:.1f}% | {result.seconds / 60:.1f} min |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
