"""The benchmark: every method at every IPC under one time budget and one evaluation protocol.

For each IPC, method and seed, :func:`run_benchmark` builds a set (a coreset from
:mod:`gandistill.coreset`, or an optimised set from :class:`~gandistill.distillation.Distiller`
under a wall-clock budget of ``minutes``), scores it with one protocol (``quick``: at most 300
epochs without augmentation, ``eval.n_models`` networks; ``full``: the config's ``eval``
section, the DC protocol) and the classifier-feature FID against the test split, and appends one
JSON line to ``<out>/results.jsonl``; ``<out>/benchmark.md`` is re-rendered from that file after
every row. A finished row is skipped on the next call with the same ``out``, so a killed run
continues where it stopped. The optimised methods, with the config overrides that make each, and
the overrides every row starts from are the preset ``gandistill/presets/benchmark.yaml`` (read by
:mod:`~gandistill.pipelines.benchmark_settings`); the rows' keys and the table are in
:mod:`~gandistill.pipelines.benchmark_results`.

Time to accuracy: the distillation wall seconds (quick-check time excluded) of the first of the
Distiller's quick checks (every ``distill.eval_every`` iterations: one fresh network,
``distill.eval_epochs`` epochs, no augmentation) that reaches the accuracy of a random real
subset of the same IPC and seed trained the same way.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch

from gandistill.classifier import get_classifier, get_independent_network
from gandistill.config import (
    Config,
    EvalConfig,
    apply_overrides,
    from_dict,
    to_dict,
    uses_generator,
)
from gandistill.config.derived import resolve
from gandistill.coreset.baselines import METHODS as CORESET_METHODS
from gandistill.coreset.baselines import build_baseline
from gandistill.data import Splits, load_dataset, require_compatible
from gandistill.defaults import (
    BENCHMARK_IPCS,
    BENCHMARK_MINUTES,
    BENCHMARK_SEEDS,
    EVAL_PROFILE,
    SAMPLE_CANDIDATES,
    SAMPLE_SELECT,
)
from gandistill.distillation.loop import QUICK_CHECK_SEED, Distiller
from gandistill.distillation.sampled import default_latent_scale, sample_set, selection_of
from gandistill.errors import ConfigError, DataError, GandistillError
from gandistill.evaluation.fidelity import KEY_EXTRACTOR, KEY_FID, fidelity_metrics
from gandistill.evaluation.options import parse_archs
from gandistill.evaluation.sections import MATCHED_ARCH, full_bytes, image_cost, needed_bytes
from gandistill.files import (
    DistilledSet,
    GeneratorCheckpoint,
    atomic_write,
    load_generator_checkpoint,
)
from gandistill.fit import evaluate_set, train_and_test
from gandistill.locks import RunLock
from gandistill.pipelines.benchmark_results import (
    BASELINE,
    RESULT_KEYS,
    TIE_MARK,
    Z95,
    append_result,
    command_line,
    cross_arch_points,
    load_results,
    machine,
    plot_cross_arch,
    render_table,
    row_arch,
)
from gandistill.pipelines.benchmark_settings import (
    DISTILLED_GENERATOR,
    GENERATOR_SAMPLE,
    METHODS,
    OPTIMISED_METHODS,
    SAMPLED_METHODS,
    SPLITS,
    needs_generator,
    parse_ipcs,
    parse_methods,
    protocol,
)
from gandistill.runtime import format_seconds, resolve_device

RESULTS_FILE, TABLE_FILE, SETS_DIR, TB_DIR = "results.jsonl", "benchmark.md", "sets", "tb"
CROSS_ARCH_PLOT = "cross_arch.png"  # written beside the table when rows span unseen networks


def time_to_accuracy(history: list[dict], target: float) -> float | None:
    """Distillation seconds of the first quick check reaching ``target`` (None: never)."""
    for entry in history:
        if entry.get("accuracy", -1.0) >= target:
            return entry["seconds"]
    return None


def _caption(
    cfg: Config,
    profile: str,
    minutes: float,
    device: str,
    command: str,
    test_images: int,
    val_is_test: bool,
    archs: Sequence[str],
    split: str = "test",
) -> list[str]:
    ec, dc = protocol(cfg.eval, profile, archs[0]), cfg.distill
    val_name = "test (no validation split)" if val_is_test else "validation"
    return [
        f"Machine: {machine()}, device {device}. Date: {datetime.date.today().isoformat()}. "
        f"Command: `{command}`.",
        "",
        f"Protocol `{profile}` ({_PROFILE_KINDS[profile]}): accuracy is the mean ± std "
        f"{split}-split accuracy over seeds × {ec.n_models} fresh {ec.arch} networks"
        f"{_other_protocols(cfg, profile, archs)}, {ec.epochs} epochs {_augmentation(ec)}. FID: "
        f"torch-fidelity with the independent network's features (not the classifier that picks "
        f"coresets), set pixels against the {split} "
        f"split. Distillation time: wall time of the optimisation (budget {minutes:g} min, quick "
        f"checks excluded) or of the coreset selection. Time to random-real accuracy: "
        f"distillation time at the first quick check (every {dc.eval_every} iterations and at "
        f"the end: one network, {dc.eval_epochs} epochs, no augmentation, {val_name} split) "
        f"whose accuracy reaches that of a random real subset of the same IPC and seed trained "
        f"the same way (mean over the seeds that reach it; –: never reached; n/a: a coreset, or "
        f"no quick checks). Compression: training "
        f"images / set images.",
        "",
        f"Ties: differences within the 95% resolution are ties. Within each IPC the best mean "
        f"accuracy is bold, and a method whose mean falls short of it by less than {Z95} × the "
        f"resolution of the difference is marked {TIE_MARK} (tied with the best rather than "
        f"ranked below it). The resolution of the difference of two rows is √(se₁² + se₂²), "
        f"with se² = s²/n (s: sample std of the row's n accuracies, networks × seeds) + "
        f"p(1 − p)/N (binomial variance of a mean accuracy p on the N = {test_images} {split} "
        f"images; left out for rows that do not record N). vs best: the difference from the "
        f"best mean, ± {Z95} × its resolution, in percentage points.",
        "",
        f"IOR: improvement over random, as in DD-Ranking (Li et al. 2025, arXiv:2505.13300): the "
        f"mean accuracy minus that of `{BASELINE}`, a random real subset of the same IPC with "
        f"the same labels and protocol, over the seeds both have, in percentage points (ref.: "
        f"the {BASELINE} row itself; –: no {BASELINE} row at that IPC).",
    ]


_PROFILE_KINDS = {
    "quick": "a reduced CPU profile, not the DC protocol",
    "cpu": "the DC protocol where a 2-core CPU affords it, reduced for the costliest networks",
    "full": "the DC protocol",
}


def _augmentation(ec: EvalConfig) -> str:
    return "without augmentation" if ec.augment == "none" else f"with '{ec.augment}' augmentation"


def _other_protocols(cfg: Config, profile: str, archs: Sequence[str]) -> str:
    """The caption's words for the protocol of the networks after the first: the same, or (the
    ``cpu`` profile's costliest networks) their own epochs, augmentation and networks."""
    if len(archs) < 2:
        return ""
    first = asdict(protocol(cfg.eval, profile, archs[0]))
    same, own = [], []
    for arch in archs[1:]:
        ec = protocol(cfg.eval, profile, arch)
        if {**asdict(ec), "arch": archs[0]} == first:
            same.append(arch)
        else:
            own.append(f"{arch}: {ec.n_models} networks, {ec.epochs} epochs {_augmentation(ec)}")
    parts = [f"the same for {', '.join(same)}"] if same else []
    return f" (the cross-architecture table: {'; '.join([*parts, *own])})"


# eval settings that only score a finished set: the quick checks during its making train one
# network, without augmentation, for distill.eval_epochs
_SCORING_ONLY = {"n_models": 1, "epochs": 1, "augment": "none"}


def _made_alike(a: Config, b: Config) -> bool:
    """Whether configs ``a`` and ``b`` make the same set: equal but for the eval settings that
    only score it (another number of scoring networks does not remake a set)."""
    return replace(a, eval=replace(a.eval, **_SCORING_ONLY)) == replace(
        b, eval=replace(b.eval, **_SCORING_ONLY)
    )


class _Bench:
    """Shared state of one benchmark call: data, classifier, generator, random-real targets."""

    def __init__(
        self,
        cfg: Config,
        out: Path,
        minutes: float,
        profile: str,
        ckpt: GeneratorCheckpoint | None,
        data: Splits,
        distilled: GeneratorCheckpoint | None = None,
        split: str = "test",
    ) -> None:
        self.cfg, self.out, self.minutes, self.profile = cfg, out, minutes, profile
        self.split = split  # the split every accuracy and FID is measured on
        self.scored = data.val if split == "validation" else data.test
        self.device = resolve_device(cfg.device)
        self.data, self.ckpt, self.distilled = data, ckpt, distilled
        self.machine = f"{machine()}, {self.device}"
        self.targets: dict[tuple[int, int], float] = {}
        self.clf = get_classifier(
            cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, self.data, self.device, False
        )
        # FID in features of a network of its own, not the classifier that picks coresets
        self.fid_net = get_independent_network(
            cfg.data, cfg.classifier, cfg.seed, cfg.cache_dir, self.data, self.device, False
        )

    def row_config(self, method: str, ipc: int, seed: int) -> Config:
        overrides = [
            *OPTIMISED_METHODS.get(method, ()),
            f"seed={seed}",
            f"distill.ipc={ipc}",
            f"distill.max_minutes={self.minutes}",
        ]
        return from_dict(Config, apply_overrides(to_dict(self.cfg), overrides))

    def target(self, cfg: Config, ipc: int) -> float:
        """Quick-check accuracy of a random real subset on the validation split (the
        time-to-accuracy target, compared with the distillation's quick checks on that split)."""
        if (ipc, cfg.seed) not in self.targets:
            quiet = replace(cfg, distill=replace(cfg.distill, teacher_logits=False))
            ds = build_baseline(quiet, "random", ipc, data=self.data)
            val, info = self.data.val, self.data.info  # a stop rule's target: never the test split
            self.targets[ipc, cfg.seed] = train_and_test(
                ds.images_float, ds.labels, val, info, replace(cfg.eval, augment="none"),
                cfg.seed + QUICK_CHECK_SEED, self.device, epochs=cfg.distill.eval_epochs,
            )  # fmt: skip
        return self.targets[ipc, cfg.seed]

    def sample(self, cfg: Config, method: str, path: Path) -> DistilledSet:
        """A set drawn from the trained or the distilled generator and saved to ``path``, its
        history the seconds the draw took; a set whose scoring was killed is reused if it was
        drawn from the same generator with the same seed, IPC, selection and latent scale."""
        ckpt = self.ckpt if method == GENERATOR_SAMPLE else self.distilled
        select = (SAMPLE_SELECT, SAMPLE_CANDIDATES)
        psi = default_latent_scale(cfg.distill.ipc)
        if path.is_file():
            ds = DistilledSet.load(path)
            how = (selection_of(ds), ds.config.distill.latent_scale)
            same = (ds.generator_sha256, ds.config.seed, ds.ipc, how)
            if same == (ckpt.sha256, cfg.seed, cfg.distill.ipc, (select, psi)):
                return ds
        start = time.perf_counter()
        ds = sample_set(
            ckpt,
            cfg.distill.ipc,
            cfg.seed,
            self.device,
            select=select[0],
            candidates=select[1],
            data=self.data,
            latent_scale=psi,
        )
        ds.history = [{"seconds": time.perf_counter() - start}]
        ds.save(path)
        return ds

    def build(self, cfg: Config, method: str, path: Path) -> DistilledSet:
        if path.is_file():  # a set whose scoring was killed: reuse it if made the same way
            ds = DistilledSet.load(path)
            ckpt = self._generator(cfg, method)
            sha = None if ckpt is None else ckpt.sha256
            # an optimised set saves its config resolved (see gandistill.config.derived.resolve)
            made = (
                cfg if method in CORESET_METHODS else resolve(cfg, resolve_device(cfg.device).type)
            )
            if _made_alike(ds.config, made) and ds.generator_sha256 == sha:
                return ds
        if method in CORESET_METHODS:
            return build_baseline(cfg, method, cfg.distill.ipc, out=path, data=self.data)
        log_dir = self.out / TB_DIR / path.stem
        generator = self._generator(cfg, method)
        return Distiller(cfg, generator, out=path, data=self.data, log_dir=log_dir).run()

    def _generator(self, cfg: Config, method: str) -> GeneratorCheckpoint | None:
        """The generator a set of ``method`` is made with (None: made without)."""
        if method in CORESET_METHODS:
            return None
        if needs_generator(method) or uses_generator(cfg.distill):  # the row's own settings
            return self.ckpt
        return None

    def rows(self, method: str, ipc: int, seed: int, archs: Sequence[str]) -> list[dict]:
        """The rows of one set (built once) scored by fresh networks of each of ``archs``."""
        cfg = self.row_config(method, ipc, seed)
        path = self.out / SETS_DIR / f"ipc{ipc}_{method}_seed{seed}.pt"
        ds = (
            self.sample(cfg, method, path)
            if method in SAMPLED_METHODS
            else self.build(cfg, method, path)
        )
        train, test, info = self.data.train, self.scored, self.data.info
        fid = fidelity_metrics(
            ds.images_uint8,
            test.images,
            clf=self.fid_net,
            metrics=("fid",),
            device=str(self.device),
        )
        checks = [[h["seconds"], h["accuracy"]] for h in ds.history if "accuracy" in h]
        as_images, as_codes, generator_bytes = needed_bytes(ds)
        set_bytes = as_images if as_codes is None else as_codes  # as the set is stored
        equivalent = set_bytes / (image_cost(ds) * info.num_classes)
        optimised = method in OPTIMISED_METHODS
        target = self.target(cfg, ipc) if optimised and checks else None
        tta = None if target is None else time_to_accuracy(ds.history, target)
        out = []
        for arch in archs:
            prot = protocol(self.cfg.eval, self.profile, arch)
            start = datetime.datetime.now()
            res = evaluate_set(ds.images_float, ds.labels, test, info, prot, seed, self.device)
            row = {
                "ipc": ipc, "method": method, "seed": seed, "arch": arch, "profile": self.profile,
                "minutes": self.minutes, "protocol": {**asdict(prot), "split": self.split},
                "accuracies": res.accuracies, "mean": res.mean, "std": res.std,
                "test_images": len(test), "num_classes": info.num_classes,
                "fid": fid[KEY_FID], "fid_extractor": fid[KEY_EXTRACTOR],
                "distill_seconds": ds.history[-1]["seconds"] if ds.history else 0.0,
                "iterations": len(ds.history) if optimised else 0, "stop_reason": ds.stop_reason,
                "quick_checks": checks, "target_accuracy": target,
                "time_to_accuracy": tta,
                "compression": full_bytes(train) / set_bytes, "bytes": set_bytes,
                "generator_bytes": generator_bytes, "images_per_class_equivalent": equivalent,
                "set_file": str(path.relative_to(self.out)),
                "eval_seconds": (datetime.datetime.now() - start).total_seconds(),
                "machine": self.machine, "date": start.isoformat(timespec="seconds"),
            }  # fmt: skip
            assert tuple(row) == RESULT_KEYS
            out.append(row)
        return out


_ABSENT = object()  # a protocol key that one side lacks
# protocol keys added after rows were first written, and the value a row without the key was
# made with: rows before --split scored the test split, rows before eval.amp trained in float32
_BEFORE_KEY = {"split": "test", "amp": False}


def _show(value: object) -> str:
    """A setting's value in the one-line error of :func:`_check_settings`."""
    if value is _ABSENT:
        return "absent"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _differences(row: dict, profile: str, minutes: float, prot: dict) -> dict[str, list[str]]:
    """``{"profile" | "budget" | "protocol": ["key row-value vs call-value", ...]}`` for the
    settings in which ``row`` differs from this call (empty: none)."""
    found: dict[str, list[str]] = {}
    if row["profile"] != profile:
        found["profile"] = [f"profile {_show(row['profile'])} vs {_show(profile)}"]
    if row["minutes"] != minutes:
        found["budget"] = [f"minutes {_show(row['minutes'])} vs {_show(minutes)}"]
    old = row["protocol"]
    for key in [*prot, *(k for k in old if k not in prot)]:
        if key == "arch":  # rows of one folder may score their sets on several networks
            continue
        was, now = old.get(key, _BEFORE_KEY.get(key, _ABSENT)), prot.get(key, _ABSENT)
        if was != now:
            found.setdefault("protocol", []).append(f"{key} {_show(was)} vs {_show(now)}")
    return found


def _check_settings(
    rows: list[dict],
    path: Path,
    profile: str,
    minutes: float,
    prot_of: Callable[[str], dict],
) -> None:
    """Rows of one folder share profile, budget and protocol (``prot_of(arch)``: this call's
    protocol for a row scored by ``arch``), or their table would mislead: the first row that
    does not is a one-line error naming the settings that differ."""
    for r in rows:
        found = _differences(r, profile, minutes, prot_of(row_arch(r)))
        if found:
            what = " and ".join(found)
            diffs = ", ".join(d for items in found.values() for d in items)
            raise ConfigError(
                f"{path} holds rows made under another {what} than this call (differs in, the "
                f"rows' value first: {diffs}); use another --out"
            )


def _without_generators(
    methods: list[str],
    generator: str | Path | GeneratorCheckpoint | None,
    distilled: str | Path | GeneratorCheckpoint | None,
    say: Callable[[str], None],
) -> tuple[list[str], list[str]]:
    """``(methods to run, methods skipped)``: without a generator the latent methods and
    ``generator-sample`` go, without a distilled generator ``distilled-generator``."""
    skipped = []
    if generator is None:
        skipped += [m for m in methods if needs_generator(m)]
        if skipped:
            say(f"note: skipping {', '.join(skipped)} (they need --generator FILE)")
    if distilled is None and DISTILLED_GENERATOR in methods:
        skipped.append(DISTILLED_GENERATOR)
        say(f"note: skipping {DISTILLED_GENERATOR} (it needs --distilled-generator FILE)")
    return [m for m in methods if m not in skipped], skipped


def _distilled_generator(
    distilled: str | Path | GeneratorCheckpoint | None, device: torch.device
) -> GeneratorCheckpoint | None:
    """The ``distilled-generator`` row's generator, refused unless it was distilled into."""
    if distilled is None:
        return None
    if not isinstance(distilled, GeneratorCheckpoint):
        distilled = load_generator_checkpoint(distilled, device=device)
    if not distilled.distilled:
        raise ConfigError(
            f"{distilled.path} was not distilled into (make one with gandistill "
            "distill-generator); pass it as --generator for the generator-sample row"
        )
    return distilled


def _load_data(cfg: Config, ipcs: list[int]) -> Splits:
    """The dataset, checked to hold at least the largest IPC in every class of its training
    split (what is left once the validation split is carved out)."""
    data = load_dataset(cfg.data)
    counts = data.train.class_counts()
    c = min(range(len(counts)), key=counts.__getitem__)
    if max(ipcs) > counts[c]:
        raise DataError(
            f"ipc {max(ipcs)} exceeds the {counts[c]} training images of class {c} "
            f"('{data.info.class_names[c]}')"
        )
    return data


def _write_table(
    out: Path, rows: list[dict], caption: list[str], this_machine: str, main_arch: str
) -> None:
    """Re-render ``<out>/benchmark.md`` from all rows, naming the machines of earlier runs."""
    elsewhere = sorted({r["machine"] for r in rows} - {this_machine})
    note = ["", f"Rows from earlier runs on: {'; '.join(elsewhere)}."] if elsewhere else []
    text = render_table(rows, [*caption, *note], main_arch)
    points = cross_arch_points(rows)
    if points:  # the cross-architecture table as a picture
        atomic_write(out / CROSS_ARCH_PLOT, lambda fh: plot_cross_arch(points, fh))
        text += (
            f"\n![{MATCHED_ARCH} accuracy against the mean over the unseen networks, a point per "
            f"method and IPC, ± standard errors]({CROSS_ARCH_PLOT})\n"
        )
    atomic_write(out / TABLE_FILE, lambda fh: fh.write(text.encode()))


def _row_line(row: dict) -> str:
    """The progress line's tail for a finished row: accuracy, FID, build time, time to target."""
    tta = row["time_to_accuracy"]
    reached = "" if tta is None else f", random-real accuracy at {format_seconds(tta)}"
    return (
        f"{100 * row['mean']:.2f}%, FID {row['fid']:.2f}, "
        f"built in {format_seconds(row['distill_seconds'])}{reached}"
    )


def run_benchmark(
    cfg: Config,
    out: str | Path,
    ipcs: Sequence[int] = BENCHMARK_IPCS,
    methods: Sequence[str] = METHODS,
    seeds: int = BENCHMARK_SEEDS,
    minutes: float = BENCHMARK_MINUTES,
    profile: str = EVAL_PROFILE,
    generator: str | Path | GeneratorCheckpoint | None = None,
    command: str | None = None,
    say: Callable[[str], None] = print,
    distilled_generator: str | Path | GeneratorCheckpoint | None = None,
    archs: Sequence[str] | None = None,
    split: str = "test",
) -> list[dict]:
    """Build and score every (IPC, method, seed) not yet in ``<out>/results.jsonl``.

    Args:
        cfg: the base config (data, classifier, distillation and eval settings); row ``s`` of
            ``range(seeds)`` runs with seed ``cfg.seed + s``.
        out: output folder: ``results.jsonl``, ``benchmark.md``, ``sets/``, ``tb/``.
        ipcs: images per class.
        methods: a subset of :data:`METHODS`; latent ones are skipped (with a note) without
            ``generator``.
        seeds: seeds per (IPC, method).
        minutes: wall-clock budget of each optimised set (``distill.max_minutes``).
        profile: evaluation protocol of every row (see :func:`protocol`).
        generator: generator checkpoint (path or loaded) for the latent methods and
            ``generator-sample``.
        command: the command line for the caption (default: ``sys.argv``).
        say: where progress lines go.
        distilled_generator: a generator made by ``distill-generator`` (path or loaded), for
            ``distilled-generator``.
        archs: the networks each set is scored with, one row each (default: ``cfg.eval.arch``);
            the table shows the first, and a cross-architecture table all of them.
        split: what accuracy and FID are measured on, ``test`` (reported results) or
            ``validation`` (choosing settings without reading the test split); recorded in
            each row's protocol, so that one folder holds one.

    Returns:
        All rows of ``results.jsonl`` (keys :data:`RESULT_KEYS`).

    Raises:
        ConfigError: ``distilled_generator`` was not distilled into, or bad arguments.
    """
    methods = parse_methods(",".join(methods))
    ipcs = parse_ipcs(",".join(map(str, ipcs)))
    archs = parse_archs(",".join(archs or [cfg.eval.arch]))
    if seeds < 1 or minutes <= 0:
        raise ConfigError(f"need seeds >= 1 and minutes > 0, got {seeds} and {minutes}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")

    def prot_of(arch: str) -> dict:
        return {**asdict(protocol(cfg.eval, profile, arch or None)), "split": split}

    out = Path(out)
    with RunLock(out, folder=True):  # one benchmark appends to a results file at a time
        results_path = out / RESULTS_FILE
        rows = load_results(results_path)
        _check_settings(rows, results_path, profile, minutes, prot_of)
        methods, skipped = _without_generators(methods, generator, distilled_generator, say)
        device = resolve_device(cfg.device)
        if isinstance(generator, (str, Path)):
            generator = load_generator_checkpoint(generator, device=device)
        distilled = _distilled_generator(distilled_generator, device)
        data = _load_data(cfg, ipcs)
        if split == "validation" and data.val_is_test:
            raise ConfigError("--split validation needs a validation split (data.val_fraction > 0)")
        for ckpt, what in ((generator, "the generator"), (distilled, "the distilled generator")):
            if ckpt is not None:
                require_compatible(ckpt.info, data.info, what)
        bench = _Bench(cfg, out, minutes, profile, generator, data, distilled, split)
        command = command or command_line()
        caption = _caption(
            cfg,
            profile,
            minutes,
            str(bench.device),
            command,
            len(bench.scored),
            bench.data.val_is_test,
            archs,
            split,
        )
        if skipped:
            caption += ["", f"Not run: {', '.join(skipped)} (no generator given)."]
        if any(m in SAMPLED_METHODS for m in methods):
            caption += [
                "",
                f"{GENERATOR_SAMPLE}, {DISTILLED_GENERATOR}: a static set drawn once from the "
                "generator's EMA weights (the distilled one made by `gandistill "
                "distill-generator`); distillation time is the draw's, not the generator's "
                "training; stored: the set's latents, plus the generator's weights they are "
                "decoded through.",
            ]

        done = {(r["ipc"], r["method"], r["seed"], row_arch(r)) for r in rows}
        todo = [(i, m, cfg.seed + s) for i in ipcs for m in methods for s in range(seeds)]
        for n, (ipc, method, seed) in enumerate(todo, 1):
            where = f"[{n}/{len(todo)}] IPC {ipc} {method} seed {seed}"
            missing = [a for a in archs if (ipc, method, seed, a) not in done]
            if not missing:
                say(f"{where}: done earlier, skipped")
                continue
            try:
                new_rows = bench.rows(method, ipc, seed, missing)
            except GandistillError as exc:
                raise type(exc)(f"IPC {ipc} {method} seed {seed}: {exc}") from None
            for row in new_rows:
                append_result(results_path, row)
                rows.append(row)
                say(f"{where} {row['arch']}: {_row_line(row)}")
            _write_table(out, rows, caption, bench.machine, archs[0])
        _write_table(out, rows, caption, bench.machine, archs[0])
        return rows
