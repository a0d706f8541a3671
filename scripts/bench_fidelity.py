"""Fidelity under two feature extractors, stratified KID against the old estimate, and storage.

For a distilled set and, at its IPC, a random real subset and a herding coreset (the coreset the
selection classifier picks): FID and stratified KID (×10³, 95% bootstrap intervals) against the
test split in the features of the independent network (the default) and of the selection
classifier (the extractor reports used before), so a reader sees whether the ranking of the
three depends on the extractor. Then KID of stratified random real subsets against the test
split, averaged over draws: the stratified estimate (reference subsets with the set's class
counts) beside torch-fidelity's plain one (uniformly random reference subsets), which is biased
below zero for stratified sets. Last, the set's storage with and without its pixel residuals.
Prints markdown; writes JSON with ``--json``. Example (2-core CPU, a few minutes)::

    python scripts/bench_fidelity.py --distilled checkpoints/mnist5k/distilled_ipc10.pt
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import replace

import numpy as np
import torch
from torch_fidelity.metric_kid import kernel_poly, mmd2

from gandistill.classifier import get_classifier, get_independent_network
from gandistill.config import Config, apply_overrides, from_dict, to_dict
from gandistill.coreset.baselines import build_baseline
from gandistill.data import load_dataset
from gandistill.evaluation.fidelity import FEATURE_LAYERS, _resolve_extractor, fidelity_table
from gandistill.evaluation.report import random_real_subset
from gandistill.evaluation.sections import compression_section
from gandistill.evaluation.stratified import KID_SCALE, extract_features, stratified_scores
from gandistill.files import DistilledSet, to_uint8
from gandistill.runtime import resolve_device, step_generator


def _table(fid: dict, names: list[str]) -> list[str]:
    rows = ["| set | FID [95% CI] | KID ×10³ [95% CI] |", "|---|---|---|"]
    for name in names:
        s = fid[name]
        rows.append(
            f"| {name} | {s['fid']:.2f} [{s['fid_ci'][0]:.2f}, {s['fid_ci'][1]:.2f}] | "
            f"{s['kid']:.2f} [{s['kid_ci'][0]:.2f}, {s['kid_ci'][1]:.2f}] |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distilled", required=True, help="a distilled-set file")
    parser.add_argument("--set", action="append", default=[], help="config override")
    parser.add_argument("--draws", type=int, default=20, help="random subsets for the KID check")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    ds = DistilledSet.load(args.distilled)
    cfg = ds.config
    if args.set:
        cfg = from_dict(Config, apply_overrides(to_dict(cfg), args.set))
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.data)
    train, test, k = data.train, data.test, data.info.num_classes
    rand01, rand_labels = random_real_subset(train, ds.ipc, cfg.seed)
    quiet = replace(cfg, distill=replace(cfg.distill, teacher_logits=False, progress=False))
    herding = build_baseline(quiet, "herding", ds.ipc, data=data)
    sets = {
        "distilled": (ds.images_uint8, ds.labels),
        "random_real": (to_uint8(rand01), rand_labels),
        "herding": (herding.images_uint8, herding.labels),
    }
    nets = {
        "independent": get_independent_network(
            cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, data, device, False
        ),
        "classifier": get_classifier(
            cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, data, device, False
        ),
    }
    out: dict = {"set": args.distilled, "ipc": ds.ipc, "fidelity": {}}
    lines = [f"Set `{args.distilled}` (IPC {ds.ipc}), against the test split ({len(test)} images)."]
    for extractor, net in nets.items():
        fid = fidelity_table(
            sets, (test.images, test.labels), net, extractor, None, None, device, cfg.seed
        )
        out["fidelity"][extractor] = fid
        lines += [
            "",
            f"Extractor `{fid['extractor']}` ({extractor}):",
            "",
            *_table(fid, list(sets)),
        ]

    # stratified random real subsets of the set's size against the test split: two estimates
    fe = _resolve_extractor("independent", nets["independent"], None)
    layer = FEATURE_LAYERS["independent"]["kid"]

    def features(images: torch.Tensor) -> np.ndarray:
        return extract_features(images, fe.name, layer, fe.channels, fe.kwargs, str(device), 64)

    y, y_labels = features(test.images), test.labels.numpy()
    strat, plain = [], []
    for t in range(args.draws):
        x01, x_labels = train.sample_per_class([ds.ipc] * k, step_generator(cfg.seed, 100 + t))
        x = features(to_uint8(x01))
        strat.append(stratified_scores(x, x_labels.numpy(), y, y_labels, t, bootstrap=0)["kid"])
        rng = np.random.default_rng(t)
        values = []
        for _ in range(20):
            idx = rng.choice(len(y), size=len(x), replace=False)
            k_xx, k_yy, k_xy = (
                kernel_poly(x, x),
                kernel_poly(y[idx], y[idx]),
                kernel_poly(x, y[idx]),
            )
            values.append(KID_SCALE * mmd2(k_xx, k_xy, k_yy))
        plain.append(float(np.mean(values)))
    se = lambda v: float(np.std(v) / np.sqrt(len(v)))  # noqa: E731
    out["kid_random_real"] = {
        "stratified": {"mean": float(np.mean(strat)), "se": se(strat)},
        "plain": {"mean": float(np.mean(plain)), "se": se(plain)},
        "draws": args.draws,
    }
    lines += [
        "",
        f"KID ×10³ of {args.draws} stratified random real subsets ({ds.ipc} per class) against "
        f"the test split: stratified estimate {np.mean(strat):.2f} ± {se(strat):.2f}; "
        f"uniformly random reference subsets (torch-fidelity's) {np.mean(plain):.2f} ± "
        f"{se(plain):.2f} (± one standard error over the draws).",
    ]

    # storage with and without the pixel residuals
    with_res = compression_section(train, ds)
    bare = copy.copy(ds)
    bare.residuals = None
    without = compression_section(train, bare)
    out["storage"] = {"with_residuals": with_res, "without_residuals": without}
    lines += [
        "",
        "| storage | bytes | × fewer than the training images |",
        "|---|---|---|",
        f"| uint8 images + labels | {with_res['image_bytes']} | "
        f"{with_res['image_bytes_ratio']:.1f} |",
    ]
    for name, comp in (("codes with residuals", with_res), ("codes without residuals", without)):
        if comp.get("code_bytes") is not None:
            lines.append(f"| {name} | {comp['code_bytes']} | {comp['latent_bytes_ratio']:.1f} |")
    if with_res.get("generator_bytes") is not None:
        lines.append(f"| generator weights (once) | {with_res['generator_bytes']} | – |")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
