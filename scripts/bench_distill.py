"""Distillation benchmarks: outer-step speed, and accuracy against distillation wall time.

``speed``: the time of one gradient-matching outer step (all classes, ``real_batch`` per class)
as gandistill runs it, next to a plain per-class Python loop in float32 (what the reference
code does), with the same network and batch sizes, in one run; medians over ``--repeats`` steps
after one warm-up step (timing code shared with ``bench_speed.py`` in ``speed_common.py``).

``curve``: distils with each method for ``--minutes``, snapshotting the set every
``--every`` minutes of distillation time, then scores every snapshot with the DC protocol
(``cfg.eval``: fresh ConvNet-3, 1000 epochs with crop/scale/rotate) and writes a markdown table
and a PNG plot of accuracy against wall time. Example (2-core CPU, about an hour)::

    python scripts/bench_distill.py speed
    python scripts/bench_distill.py curve --generator checkpoints/mnist5k/generator.pt \\
        --ipc 1 --minutes 24 --every 4 --out checkpoints/bench_distill
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from ignite.engine import Events
from speed_common import outer_step_config, outer_step_seconds, plain_outer_seconds

from gandistill.config import load_config
from gandistill.distillation.loop import Distiller
from gandistill.fit import evaluate_set

METHODS = {
    "latent-gm": ["distill.space=latent", "distill.objective=gm"],
    "latent-dm": ["distill.space=latent", "distill.objective=dm"],
    "latent-krr": ["distill.space=latent", "distill.objective=krr"],
    "pixel-dc": ["distill.space=pixel", "distill.objective=gm", "distill.init=noise"],
}


def cmd_speed(args: argparse.Namespace) -> None:
    rows = []
    for label, extra in (
        ("gandistill (loop, bf16 autocast)", ["distill.amp=true", "distill.grad_mode=loop"]),
        ("gandistill (loop, float32)", ["distill.amp=false", "distill.grad_mode=loop"]),
        ("gandistill (vmap, float32)", ["distill.amp=false", "distill.grad_mode=vmap"]),
        ("gandistill (vmap, bf16 autocast)", ["distill.amp=true", "distill.grad_mode=vmap"]),
    ):
        cfg = outer_step_config(args.config, args.device, args.ipc, args.repeats, extra)
        seconds, d = outer_step_seconds(cfg)
        rows.append((label, seconds))
    plain = plain_outer_seconds(d, args.repeats)  # same shapes as the last Distiller
    rows.append(("plain per-class loop (float32)", plain))
    lines = [
        f"Outer step, IPC {args.ipc}, {d.info.num_classes} classes × "
        f"{d.cfg.distill.real_batch} real images, "
        f"ConvNet-{cfg.distill.net_depth} width {cfg.distill.net_width}, "
        f"{torch.get_num_threads()} threads",
        "",
        "| implementation | seconds / outer step | speed-up vs plain loop |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {sec:.2f} | {plain / sec:.2f}× |" for label, sec in rows]
    print("\n".join(lines))


def cmd_curve(args: argparse.Namespace) -> None:
    unknown = sorted(set(args.methods.split(",")) - set(METHODS))
    if unknown:
        raise SystemExit(
            f"error: unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for method in args.methods.split(","):
        overrides = [
            *args.set,
            *METHODS[method],
            f"distill.ipc={args.ipc}",
            f"distill.max_minutes={args.minutes}",
            "distill.max_iterations=1000000",
            "distill.eval_every=0",
        ]
        cfg = load_config(args.config, overrides)
        gen = args.generator if "latent" in method else None
        d = Distiller(cfg, generator=gen, out=out / f"{method}_ipc{args.ipc}.pt")
        snaps: list[tuple[float, torch.Tensor]] = [(0.0, d.syn().detach().cpu().clone())]

        def snapshot(engine, d=d, snaps=snaps):
            seconds = engine.state.output["seconds"]
            if seconds >= 60 * args.every * len(snaps):
                snaps.append((seconds, d.syn().detach().cpu().clone()))  # pixels alias

        d.engine.add_event_handler(Events.ITERATION_COMPLETED, snapshot)
        ds = d.run()
        if ds.history[-1]["seconds"] > snaps[-1][0] + 1.0:  # unless the last snapshot is the end
            snaps.append((ds.history[-1]["seconds"], ds.images_float))
        for seconds, images in snaps:
            res = evaluate_set(images, ds.labels, d.data.test, d.info, cfg.eval, 0, d.device)
            row = {"method": method, "minutes": seconds / 60, "mean": res.mean, "std": res.std}
            results.append(row)
            print(json.dumps(row), flush=True)
        (out / "curve.json").write_text(json.dumps(results, indent=1))  # kept after each method
    lines = ["| method | distillation minutes | accuracy (DC protocol) |", "|---|---|---|"]
    lines += [
        f"| {r['method']} | {r['minutes']:.1f} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f}% |"
        for r in results
    ]
    (out / "curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in args.methods.split(","):
        rows = [r for r in results if r["method"] == method]
        ax.errorbar(
            [r["minutes"] for r in rows],
            [100 * r["mean"] for r in rows],
            yerr=[100 * r["std"] for r in rows],
            marker="o",
            label=method,
            capsize=3,
        )
    ax.set_xlabel("distillation wall time (minutes)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"IPC {args.ipc}: accuracy against distillation time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=120)
    print(f"wrote {out / 'curve.md'} and {out / 'curve.png'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML config (default: mnist5k defaults)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("speed", help="outer-step time against a plain per-class loop")
    p.add_argument("--ipc", type=int, default=1)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_speed)
    p = sub.add_parser("curve", help="accuracy against distillation wall time")
    p.add_argument("--generator", required=True)
    p.add_argument("--methods", default="latent-gm,latent-dm,pixel-dc")
    p.add_argument("--ipc", type=int, default=1)
    p.add_argument("--minutes", type=float, default=24.0)
    p.add_argument("--every", type=float, default=4.0)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--out", default="checkpoints/bench_distill")
    p.set_defaults(func=cmd_curve)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
