"""The package's layout in text: modules with line counts, the longest functions and classes,
and the import graph between its parts (sub-packages and shared top-level modules).

Reads the source with :mod:`ast` only; nothing is imported or run. Exit status 1 when a rule of
the layout is broken: an import cycle between parts, or a stage importing another stage.

    python scripts/layout.py                 # the whole report
    python scripts/layout.py --check         # only the rule check (exit 1 on a violation)
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gandistill"
# The stages meet only through artifact files and the shared modules; pipelines and the CLI
# chain them and may import any of them.
STAGES = ("gan", "distillation", "coreset", "evaluation")


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules that ``path`` (module ``name``) imports, at any depth of the file."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                pkg = name.split(".")[: -node.level] if path.stem != "__init__" else name.split(".")
                base = ".".join(pkg + ([base] if base else []))
            # `from pkg import module` names a module; `from module import name` does not
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def part(module: str) -> str:
    """The part a module belongs to: its sub-package, or itself for a top-level module."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def part_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    known = set(mods)
    root = min(known, key=len)  # the package itself
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        if name == root:  # the curated API re-exports every stage by design
            continue
        src = part(name)
        for target in imported(path, name, known):
            if target != root and part(target) != src:
                graph[src].add(part(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's members, found by a depth-first search from each node."""
    found = []
    seen = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = [" -> ".join(c) + " (import cycle)" for c in cycles(graph)]
    for stage in STAGES:
        for other in sorted(graph.get(stage, set()) & set(STAGES)):
            found.append(f"{stage} -> {other} (a stage imports another stage)")
    return found


def definitions(mods: dict[str, Path]) -> list[tuple[int, str, str]]:
    """(lines, kind, qualified name) of every function, method and class."""
    out = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        stack = [(tree, name)]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    qual = f"{prefix}.{child.name}"
                    kind = "class" if isinstance(child, ast.ClassDef) else "def"
                    out.append((child.end_lineno - child.lineno + 1, kind, qual))
                    stack.append((child, qual))
    return sorted(out, reverse=True)


def report(mods: dict[str, Path], top: int) -> str:
    lines = ["## Modules (lines)"]
    for path in mods.values():
        lines.append(f"{len(path.read_text().splitlines()):5d}  {path.relative_to(PACKAGE.parent)}")
    defs = definitions(mods)
    for kind, title in (("class", "classes"), ("def", "functions and methods")):
        lines += ["", f"## Longest {title}"]
        lines += [f"{n:5d}  {qual}" for n, k, qual in defs if k == kind][:top]
    graph = part_graph(mods)
    lines += ["", "## Imports between parts (sub-packages and top-level modules)"]
    lines += [f"{src:>13} -> {', '.join(sorted(graph[src]))}" for src in sorted(graph)]
    found = violations(graph)
    lines += ["", "## Rules", *(found or ["no cycle between parts; no stage imports another"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check the layout's rules")
    ap.add_argument("--top", type=int, default=10, help="how many of the longest to list")
    args = ap.parse_args(argv)
    mods = modules()
    if args.check:
        found = violations(part_graph(mods))
        print("\n".join(found) or "layout rules hold")
    else:
        print(report(mods, args.top))
        found = violations(part_graph(mods))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
