"""Distil one set, then score it and the set it started from with the evaluation protocol.

Prints one JSON line (and appends it to ``--log``): distillation time, iterations, stop reason,
the quick checks along the way, and mean ± std test accuracy under ``cfg.eval`` (by default the
DC protocol: fresh ConvNet-3, 1000 epochs with crop/scale/rotate, 3 networks) for the initial and
the final set. Example (2-core CPU, about 14 minutes)::

    python scripts/distill_and_score.py --generator checkpoints/mnist5k/generator.pt \\
        --out checkpoints/mnist5k/latent_ipc1.pt --set distill.ipc=1 \\
        --set distill.max_minutes=12 --set distill.max_iterations=100000
"""

from __future__ import annotations

import argparse
import json
import sys

from gandistill.config import load_config
from gandistill.distillation.loop import Distiller
from gandistill.fit import evaluate_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config (default: mnist5k defaults)")
    parser.add_argument("--generator", help="generator checkpoint (latent space)")
    parser.add_argument("--out", required=True, help="distilled-set file to write")
    parser.add_argument("--set", action="append", default=[], help="config override")
    parser.add_argument("--log", help="append the JSON result to this file")
    parser.add_argument(
        "--skip-initial", action="store_true", help="do not score the set it started from"
    )
    args = parser.parse_args(argv)

    cfg = load_config(args.config, ["distill.progress=false", *args.set])
    distiller = Distiller(cfg, generator=args.generator, out=args.out)
    initial = distiller.syn().detach().clone()
    ds = distiller.run()
    score = lambda images: evaluate_set(  # noqa: E731
        images, ds.labels, distiller.data.test, distiller.info, cfg.eval, cfg.seed, distiller.device
    )
    final = score(ds.images_float)
    start = None if args.skip_initial else score(initial)
    history = ds.history
    result = {
        "out": args.out,
        "overrides": args.set,
        "iterations": len(history),
        "distill_seconds": round(history[-1]["seconds"], 1),
        "stop_reason": ds.stop_reason,
        "quick_checks": [
            (h["iteration"], round(h["seconds"]), h["accuracy"]) for h in history if "accuracy" in h
        ],
        "final": {"mean": final.mean, "std": final.std, "accuracies": final.accuracies},
        "initial": None
        if start is None
        else {"mean": start.mean, "std": start.std, "accuracies": start.accuracies},
    }
    line = json.dumps(result)
    print(line)
    if args.log:
        with open(args.log, "a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
