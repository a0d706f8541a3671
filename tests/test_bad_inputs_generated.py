"""Bad input generated from the config schema and the command-line parser, so that a key or a
flag added later is covered without anyone writing its case (``test_bad_inputs`` holds the
hand-written table; its rules apply here too).

Every case must end in exit status 2 and one ``gandistill: error: ...`` line naming what was
wrong, with no traceback and nothing written: no ``out`` in the case's folder, no ``.*.tmp``, and
every file that was in the folder (or among the module's shared files) untouched. The cases share
interpreters (see ``cli_batch``).

The tables that cannot be read off the parser (which string flag is a path, and of what kind;
the lower bound of a number checked further down) are kept here, and a test fails when a flag is
in neither, so a new flag has to be classified before the suite passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cli_batch import run_cli_many

from gandistill.cli.parser import build_parser
from gandistill.config.schema import Config

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
ERROR_PREFIX = "gandistill: error: "
WORKERS = max(1, min(2, os.cpu_count() or 1))
ABSURD = 1_000_000_000  # a size no run of this package could hold in memory or finish

Builder = Callable[[SimpleNamespace, Path], list]


@dataclass
class Case:
    id: str
    argv: Builder  # (shared files, the case's folder) -> the command line after `gandistill`
    fragment: str  # what the error line must name
    setup: Callable[[Path], None] | None = None  # makes the case's own files in its folder


# --- the shared inputs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A tiny generator and a tiny pixel-space set (both built in one batch), and a tensor file
    that is no gandistill file; shared by the cases that need a valid input to get as far as the
    flag under test."""
    root = tmp_path_factory.mktemp("generated_inputs")
    f = SimpleNamespace(root=root, cache=root / "cache")
    f.generator = root / "run" / "generator.pt"
    f.distilled = root / "set.pt"
    cheap = [
        *["--set", "train.eval_samples_per_class=0", "--set", "distill.teacher_logits=false"],
        *["--set", "distill.eval_every=0", "--set", f"cache_dir={f.cache}"],
    ]
    built = run_cli_many(
        [
            (
                ["train", "--config", SMOKE, "--run-dir", f.generator.parent, *cheap]
                + ["--set", "train.iterations=2"],
                root,
            ),
            (
                ["distill", "--config", SMOKE, "--space", "pixel", "--out", f.distilled, *cheap]
                + ["--set", "distill.max_iterations=1"],
                root,
            ),
        ],
        workers=WORKERS,
        env={"OMP_NUM_THREADS": "1"},
    )
    for proc in built:
        assert proc.returncode == 0, proc.stderr
    f.plain = root / "plain.pt"  # a torch file, but no gandistill one
    torch.save(torch.zeros(3, 4), f.plain)
    return f


# --- cases from the config schema -----------------------------------------------------------------


def schema_keys() -> list[tuple[str, type, typing.Mapping]]:
    """(dotted key, type, metadata) of every leaf of :class:`Config`."""
    keys = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for fld in dataclasses.fields(cls):
            tp = hints[fld.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{fld.name}.")
            else:
                keys.append((prefix + fld.name, tp, fld.metadata))

    walk(Config, "")
    return keys


def sections() -> list[str]:
    hints = typing.get_type_hints(Config)
    return [f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(hints[f.name])]


WRONG_TYPE = {int: "abc", float: "abc", bool: "maybe", str: "[1]"}


def _number(value: float, tp: type) -> str:
    return str(int(value)) if tp is int else repr(float(value))


def bad_values(tp: type, meta: typing.Mapping) -> list[tuple[str, str]]:
    """(kind, raw ``--set`` value) of every mistake the key's type and metadata define."""
    assert tp in WRONG_TYPE, f"no wrong-type value for {tp}: add one"
    values = [("wrong-type", WRONG_TYPE[tp])]
    if tp is int:
        values.append(("float-for-int", "1.5"))
        values.append(("beyond-int64", str(2**63)))
    if tp is float:
        values += [("nan", ".nan"), ("infinite", ".inf"), ("huge", "1" + "0" * 400)]
    low, high = meta.get("min"), meta.get("max")
    if low is not None:
        step = 1 if tp is int else max(1.0, abs(low))
        values.append(("below-min", _number(low - step, tp)))
    if high is not None:
        values.append(("above-max", _number(high + 1 if tp is int else high * 2 + 1, tp)))
    if meta.get("below") is not None:
        values.append(("not-below", _number(meta["below"], tp)))
    choices = meta.get("choices")
    if choices is not None:
        bad = max(choices) + 1 if tp is int else "bogus"
        assert bad not in choices
        values.append(("invalid-choice", str(bad)))
    return values


def _train_with(*overrides: str) -> Builder:
    """A cheap command that loads (and checks) the whole config before anything else."""

    def argv(f: SimpleNamespace, d: Path) -> list:
        sets = [a for o in overrides for a in ("--set", o)]
        if any(o.startswith("run_dir=") for o in overrides):
            return ["train", "--config", SMOKE, *sets]  # --run-dir would override the value
        return ["train", "--config", SMOKE, "--run-dir", d / "out", *sets]

    return argv


def schema_cases() -> list[Case]:
    cases = []
    for key, tp, meta in schema_keys():
        for kind, raw in bad_values(tp, meta):
            cases.append(Case(f"schema-{key}-{kind}", _train_with(f"{key}={raw}"), f"'{key}'"))
    for section in sections():
        cases.append(
            Case(
                f"schema-{section}-unknown-key",
                _train_with(f"{section}.no_such_key=1"),
                f"'{section}.no_such_key'",
            )
        )
        cases.append(
            Case(f"schema-{section}-not-a-mapping", _train_with(f"{section}=3"), f"'{section}'")
        )
    return cases


# --- cases from the command-line parser -----------------------------------------------------------

# (command, flag) -> what the path names: an input file ("config", "generator", "distilled",
# "weights"), an output file ("out-file"), an output folder ("out-dir")
PATH_FLAGS = {
    ("train", "--config"): "config",
    ("train", "--run-dir"): "out-dir",
    ("distill", "--config"): "config",
    ("distill", "--generator"): "generator",
    ("distill", "--out"): "out-file",
    ("baseline", "--config"): "config",
    ("baseline", "--out"): "out-file",
    ("evaluate", "--config"): "config",
    ("evaluate", "--distilled"): "distilled",
    ("evaluate", "--generator"): "generator",
    ("evaluate", "--out"): "out-dir",
    ("evaluate", "--inception-weights"): "weights",
    ("quickstart", "--config"): "config",
    ("quickstart", "--run-dir"): "out-dir",
    ("compare", "--out"): "out-file",
    ("benchmark", "--config"): "config",
    ("benchmark", "--generator"): "generator",
    ("benchmark", "--out"): "out-dir",
    ("sample", "--generator"): "generator",
    ("sample", "--distilled"): "distilled",
    ("sample", "--out"): "out-file",
    ("distill-generator", "--config"): "config",
    ("distill-generator", "--generator"): "generator",
    ("distill-generator", "--run-dir"): "out-dir",
    ("benchmark", "--distilled-generator"): "generator",
}

# string flags that are not paths: (command, flag) -> (bad value, what the message names)
TEXT_FLAGS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("baseline", "--method"): (("bogus", "'bogus'"),),
    ("evaluate", "--feature-extractor"): (("bogus", "'bogus'"),),
    ("evaluate", "--archs"): (("bogus", "bogus"), ("convnet,bogus", "bogus")),
    ("benchmark", "--archs"): (("bogus", "bogus"), ("convnet,convnet", "repeated")),
    ("benchmark", "--ipc"): (
        ("x", "'x'"),
        ("0", "'0'"),
        ("-1", "'-1'"),
        ("1,1", "'1,1'"),
        ("1,,2", "'1,,2'"),
        (str(ABSURD), f"ipc {ABSURD}"),
    ),
    ("benchmark", "--methods"): (("bogus", "bogus"), ("random,random", "--methods")),
}
MALFORMED_SETS = (
    ("iterations", "not of the form section.key=value"),
    ("=3", "not of the form section.key=value"),
    ("train.iterations.x=1", "'iterations' is not a section"),
    ("model=[1]", "section 'model' must be a mapping"),
)
FREE_TEXT = {"--master-addr"}  # read only by a run on several nodes, which needs --nnodes > 1
DEVICES = ("cuda", "cuda:7", "tpu", "cpu:x", "mps", "meta")  # none of them usable on a CPU box

# numbers the parser takes as they come and a later check bounds: (command, flag) -> (lowest
# valid value, what the message names); None: every value is valid
CHECKED_LATER: dict[tuple[str, str], tuple[int, str] | None] = {
    ("distill", "--ipc"): (1, "'distill.ipc'"),
    ("baseline", "--ipc"): (1, "ipc"),
    ("evaluate", "--kid-subset-size"): (2, "KID subset size"),
    ("sample", "--n-per-class"): (1, "--n-per-class"),
    ("sample", "--seed"): None,
}

# sizes that would exhaust memory or run for ages: refused up front, with one line
ABSURD_FLAGS = {
    ("distill", "--ipc"): "ipc",
    ("baseline", "--ipc"): "ipc",
    ("sample", "--n-per-class"): "--n-per-class",
    ("train", "--nproc-per-node"): "--nproc-per-node",
    ("distill", "--nproc-per-node"): "--nproc-per-node",
    ("distill-generator", "--nproc-per-node"): "--nproc-per-node",
    ("benchmark", "--seeds"): "--seeds",
}


def _base(command: str, f: SimpleNamespace, d: Path) -> list:
    """A command line that runs (cheaply) as it is, for the flag under test to be put into."""
    out = d / "out"
    return {
        "train": ["train", "--config", SMOKE, "--run-dir", out],
        "distill": ["distill", "--config", SMOKE, "--space", "pixel", "--out", out],
        "baseline": ["baseline", "--config", SMOKE, "--method", "random", "--ipc", 1, "--out", out],
        "evaluate": ["evaluate", "--distilled", f.distilled, "--out", out],
        "quickstart": ["quickstart", "--config", SMOKE, "--run-dir", out],
        "compare": ["compare", d / "a", d / "b", "--out", out],
        "benchmark": [
            *["benchmark", "--config", SMOKE, "--methods", "random", "--ipc", 1],
            *["--minutes", 0.01, "--out", out],
        ],
        "sample": ["sample", "--generator", f.generator, "--out", out / "g.png"],
        "distill-generator": [
            *["distill-generator", "--generator", f.generator, "--run-dir", out],
            *["--set", "match.iterations=2", "--set", "match.net_width=8"],
        ],
    }[command]


EXCLUSIVE = {"--distilled": "--generator", "--generator": "--distilled"}


def _with(
    command: str, flag: str, value: object = None, extra: tuple = (), overwrite: bool = False
) -> Builder:
    """The base command line of ``command`` with ``flag value`` in place of its own (and
    without the flag it excludes), plus ``extra``; ``value`` may take (files, folder)."""

    def argv(f: SimpleNamespace, d: Path) -> list:
        base = _base(command, f, d)
        drop = {flag, EXCLUSIVE.get(flag) if command in ("evaluate", "sample") else None}
        args, i = [base[0]], 1
        while i < len(base):
            if base[i] in drop:
                i += 2
                continue
            args.append(base[i])
            i += 1
        v = value(f, d) if callable(value) else value
        args += [flag] if v is None else [flag, v]
        return [*args, *extra, *(["--overwrite"] if overwrite else [])]

    return argv


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The optional actions that take a value (not --help, switches or --set)."""
    return [
        a
        for a in parser._actions
        if a.option_strings
        and a.nargs != 0
        and not isinstance(a, argparse._AppendAction | argparse._HelpAction)
    ]


def _numeric(action: argparse.Action) -> type | None:
    kind = getattr(action.type, "kind", action.type)  # a bounded type names its kind
    return kind if kind in (int, float) else None


def _write(name: str, content: bytes | None) -> Callable[[Path], None]:
    """Setup making ``name`` in the case's folder: a file, or a folder when ``content`` is None."""

    def setup(d: Path) -> None:
        if content is None:
            (d / name).mkdir(parents=True)
        else:
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(content)

    return setup


def _path_cases(command: str, flag: str, kind: str, has_overwrite: bool) -> list[Case]:
    cid = f"cli-{command}-{flag.lstrip('-')}"
    cases = []
    if kind in ("config", "generator", "distilled", "weights"):
        extra = ("--feature-extractor", "inception-v3-compat") if kind == "weights" else ()
        inputs = [
            ("missing", "missing.pt", None, False),
            ("folder", "a_folder", None, True),
            ("text-file", "notes.txt", b"hello, not a gandistill file\n", True),
        ]
        if kind != "config":  # an empty YAML file is an empty config: the defaults
            inputs.append(("empty-file", "empty.pt", b"", True))
        for what, name, content, make in inputs:
            cases.append(
                Case(
                    f"{cid}-{what}",
                    _with(command, flag, lambda f, d, n=name: d / n, extra),
                    name,
                    _write(name, content) if make else None,
                )
            )
        plain = "plain.pt"  # a torch file, but no gandistill one (binary, for YAML)
        cases.append(
            Case(f"{cid}-torch-file", _with(command, flag, lambda f, d: f.plain, extra), plain)
        )
    elif kind == "out-file":
        suffix = ".png" if command == "sample" else ".pt"
        cases.append(
            Case(
                f"{cid}-parent-is-a-file",
                _with(command, flag, lambda f, d: d / "blocker" / f"x{suffix}"),
                "blocker",
                _write("blocker", b""),
            )
        )
        name = f"a_folder{suffix}"
        cases.append(
            Case(
                f"{cid}-is-a-folder",
                _with(command, flag, lambda f, d: d / name),
                name,
                _write(name, None),
            )
        )
        if has_overwrite:
            cases.append(
                Case(
                    f"{cid}-is-a-folder-overwrite",
                    _with(command, flag, lambda f, d: d / name, overwrite=True),
                    name,
                    _write(name, None),
                )
            )
    else:  # out-dir
        cases.append(
            Case(
                f"{cid}-parent-is-a-file",
                _with(command, flag, lambda f, d: d / "blocker" / "x"),
                "blocker",
                _write("blocker", b""),
            )
        )
        cases.append(
            Case(
                f"{cid}-is-a-file",
                _with(command, flag, lambda f, d: d / "blocker"),
                "blocker",
                _write("blocker", b""),
            )
        )
        if has_overwrite:
            cases.append(
                Case(
                    f"{cid}-is-a-file-overwrite",
                    _with(command, flag, lambda f, d: d / "blocker", overwrite=True),
                    "blocker",
                    _write("blocker", b"keep me"),
                )
            )
    return cases


def number_bounds(command: str, action: argparse.Action) -> tuple:
    """(inclusive low, exclusive low, inclusive high, what the message names) of a numeric
    flag: read off its bounded type (parser), else from :data:`CHECKED_LATER`; all None when
    neither bounds it."""
    flag = action.option_strings[-1]
    if (command, flag) in CHECKED_LATER:
        bound = CHECKED_LATER[command, flag]
        return (None, None, None, None) if bound is None else (bound[0], None, None, bound[1])
    low, above, high = (getattr(action.type, a, None) for a in ("low", "above", "high"))
    return low, above, high, f"argument {flag}"


def _number_cases(command: str, action: argparse.Action) -> list[Case]:
    flag = action.option_strings[-1]
    cid = f"cli-{command}-{flag.lstrip('-')}"
    kind = _numeric(action)
    cases = [Case(f"{cid}-not-a-number", _with(command, flag, "abc"), f"argument {flag}")]
    if kind is int:
        cases.append(Case(f"{cid}-fraction", _with(command, flag, "1.5"), f"argument {flag}"))
    else:
        cases.append(Case(f"{cid}-nan", _with(command, flag, "nan"), f"argument {flag}"))
    low, above, high, fragment = number_bounds(command, action)
    if high is not None:
        big = high + 1 if kind is int else high * 2
        cases.append(Case(f"{cid}-above-max", _with(command, flag, big), fragment))
    below = set()
    if low is not None:
        below = {v for v in (low - 1, -1) if v < low}
    if above is not None:
        below = {v for v in (above, -1) if v <= above}
    for value in sorted(below):
        value = kind(value)
        cases.append(Case(f"{cid}-{value}", _with(command, flag, value), fragment))
    if (command, flag) in ABSURD_FLAGS:
        cases.append(
            Case(f"{cid}-absurd", _with(command, flag, ABSURD), ABSURD_FLAGS[command, flag])
        )
    return cases


def cli_cases() -> list[Case]:
    cases = []
    for command, parser in subcommands().items():
        flags = {a.option_strings[-1] for a in parser._actions if a.option_strings}
        has_overwrite = "--overwrite" in flags
        for action in options(parser):
            flag = action.option_strings[-1]
            cid = f"cli-{command}-{flag.lstrip('-')}"
            if action.choices is not None:
                cases.append(
                    Case(f"{cid}-invalid-choice", _with(command, flag, "bogus"), "invalid choice")
                )
            elif _numeric(action):
                cases += _number_cases(command, action)
            elif flag == "--device":
                for device in DEVICES:
                    cases.append(
                        Case(f"{cid}-{device}", _with(command, flag, device), f"'{device}'")
                    )
            elif (command, flag) in PATH_FLAGS:
                cases += _path_cases(command, flag, PATH_FLAGS[command, flag], has_overwrite)
            elif (command, flag) in TEXT_FLAGS:
                for i, (value, fragment) in enumerate(TEXT_FLAGS[command, flag]):
                    cases.append(Case(f"{cid}-bad{i}", _with(command, flag, value), fragment))
        if "--set" in flags:
            for i, (item, fragment) in enumerate(MALFORMED_SETS):
                cases.append(
                    Case(f"cli-{command}-set-malformed{i}", _with(command, "--set", item), fragment)
                )
    return cases


def absurd_config_cases() -> list[Case]:
    """Sizes in the config that would exhaust memory: refused when the config is loaded (the
    schema's ``max``) or, where the bound depends on the data, before any work."""
    keys = {
        "train.batch_size": ABSURD,
        "classifier.batch_size": ABSURD,
        "eval.batch_size": ABSURD,
        "distill.batch_train": ABSURD,
        "distill.real_batch": ABSURD,
        "distill.init_candidates": ABSURD,
        "model.latent_dim": ABSURD,
        "model.g_width": 100_000,
        "model.d_width": 100_000,
        "classifier.width": 100_000,
        "classifier.depth": 1000,
        "distill.net_width": 100_000,
        "distill.net_depth": 1000,
        "data.image_size": 100_000,
        "train.eval_samples_per_class": ABSURD,
    }
    return [
        Case(f"absurd-{key}", _train_with(f"{key}={value}"), f"'{key}'")
        for key, value in keys.items()
    ]


CASES = [*schema_cases(), *cli_cases(), *absurd_config_cases()]
CASE_TEST = "test_generated_bad_input_is_one_line_and_writes_nothing"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: files by (size, mtime), folders by their existence."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else ()
        for p in root.rglob("*")
    }


@pytest.fixture(scope="module")
def outcomes(files, request, tmp_path_factory) -> SimpleNamespace:
    """Run the selected cases in ``WORKERS`` interpreters, each in its own folder (also its
    working directory, so that relative paths in a config land there): for each id the
    finished command, the folder and the folder's snapshot before the run."""
    wanted = {
        item.callspec.id
        for item in request.session.items
        if getattr(item, "originalname", None) == CASE_TEST
    }
    jobs = []
    base = tmp_path_factory.mktemp("generated_cases")
    for case in CASES:
        if case.id not in wanted:
            continue
        folder = base / case.id
        folder.mkdir()
        if case.setup is not None:
            case.setup(folder)
        jobs.append((case, folder, snapshot(folder)))
    shared = snapshot(files.root)
    procs = run_cli_many(
        [(case.argv(files, folder), folder) for case, folder, _ in jobs],
        workers=WORKERS,
        env={"OMP_NUM_THREADS": "1"},
    )
    results = {
        case.id: (proc, folder, before)
        for (case, folder, before), proc in zip(jobs, procs, strict=True)
    }
    return SimpleNamespace(results=results, shared=shared, shared_after=snapshot(files.root))


@pytest.mark.parametrize(
    ("case_id", "fragment"), [(c.id, c.fragment) for c in CASES], ids=[c.id for c in CASES]
)
def test_generated_bad_input_is_one_line_and_writes_nothing(outcomes, case_id, fragment):
    proc, folder, before = outcomes.results[case_id]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    assert fragment in lines[0], lines[0]
    assert not (folder / "out").exists()
    assert snapshot(folder) == before
    assert not list(folder.rglob(".*.tmp"))


def test_shared_inputs_untouched(files, outcomes):
    assert outcomes.shared_after == outcomes.shared


def test_cases_cover_every_key_and_flag():
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES), "case ids must be unique"
    for key, _, _ in schema_keys():
        assert f"schema-{key}-wrong-type" in ids
    for command, parser in subcommands().items():
        for action in options(parser):
            flag = action.option_strings[-1]
            if flag in FREE_TEXT:
                continue
            if _numeric(action) and (command, flag) not in CHECKED_LATER:
                low, above, _, _ = number_bounds(command, action)
                assert low is not None or above is not None, (
                    f"{command} {flag}: give it a bounded type (parser) or list it in CHECKED_LATER"
                )
            assert any(i.startswith(f"cli-{command}-{flag.lstrip('-')}-") for i in ids), (
                f"{command} {flag}: no generated case; classify it in PATH_FLAGS, TEXT_FLAGS, "
                "FREE_TEXT or CHECKED_LATER, or give it a choices list or a bounded type"
            )
    assert len(CASES) > 300


def test_numbers_in_the_schema_are_bounded():
    """Every int and float key has a lower bound and every size a finite upper one, so a typo
    of a few digits is refused instead of attempted."""
    for key, tp, meta in schema_keys():
        if tp in (int, float) and key not in ("seed", "data.split_seed"):
            assert meta.get("min") is not None or meta.get("choices") is not None, key
        high = meta.get("max")
        assert high is None or math.isfinite(high), key
