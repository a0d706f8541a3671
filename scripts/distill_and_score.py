"""Distil one set, then score it and the set it started from with the evaluation protocol.

Prints one JSON line (and appends it to ``--log``): distillation time, iterations, stop reason,
the quick checks along the way (on the validation split), and mean ± std accuracy under
``cfg.eval`` (by default the DC protocol: fresh ConvNet-3, 1000 epochs with crop/scale/rotate,
3 networks) on the validation and the test split, for the final set, the set it started from
and (``--random-real``) a random real subset of the same IPC. Example (2-core CPU, about 14
minutes)::

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
from gandistill.evaluation.report import random_real_subset
from gandistill.fit import EvalResult, test_accuracy, train_network


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
    parser.add_argument(
        "--random-real", action="store_true", help="also score a random real subset of the IPC"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the distillation saved next to --out"
    )
    args = parser.parse_args(argv)

    cfg = load_config(args.config, ["distill.progress=false", *args.set])
    distiller = Distiller(cfg, generator=args.generator, out=args.out, resume=args.resume)
    initial = distiller.syn().detach().clone()
    ds = distiller.run()
    data = distiller.data

    def score(images, labels) -> dict:
        """Mean, std and accuracies on the validation and the test split of the same
        ``cfg.eval.n_models`` networks (seeds as :func:`gandistill.fit.evaluate_set` gives)."""
        accs: dict[str, list[float]] = {"val": [], "test": []}
        for i in range(cfg.eval.n_models):
            net = train_network(images, labels, data.info, cfg.eval, cfg.seed + 1000 * i, ds_device)
            for name, split in (("val", data.val), ("test", data.test)):
                accs[name].append(test_accuracy(net, split, data.info, ds_device))
        results = {name: EvalResult(a) for name, a in accs.items()}
        return {
            n: {"mean": r.mean, "std": r.std, "accuracies": r.accuracies}
            for n, r in results.items()
        }

    ds_device = distiller.device
    final = score(ds.images_float, ds.labels)
    start = None if args.skip_initial else score(initial, ds.labels)
    randomly = None
    if args.random_real:
        rand01, rand_labels = random_real_subset(data.train, ds.ipc, cfg.seed)
        randomly = score(data.info.normalize(rand01), rand_labels)
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
        "val_images": len(data.val),
        "test_images": len(data.test),
        "final": final,
        "initial": start,
        "random_real": randomly,
    }
    line = json.dumps(result)
    print(line)
    if args.log:
        with open(args.log, "a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
