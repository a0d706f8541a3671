"""The package's layout rules (scripts/layout.py): no import cycle between its parts, and no
stage importing another stage."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "layout.py"


def _layout():
    spec = importlib.util.spec_from_file_location("layout", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_the_package_keeps_its_layout_rules():
    layout = _layout()
    graph = layout.part_graph(layout.modules())
    assert layout.violations(graph) == []
    assert {"gan", "distillation", "coreset", "evaluation"} <= set(graph)  # the stages exist
    out = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_a_stage_importing_another_and_a_cycle_are_reported(tmp_path):
    layout = _layout()
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "",
            "files.py": "from pkg import fit\n",
            "fit.py": "import pkg.files\n",
            "gan/__init__.py": "",
            "gan/trainer.py": "from pkg.distillation.loop import Distiller\n",
            "distillation/__init__.py": "",
            "distillation/loop.py": "def f():\n    from pkg import files\n",
        },
    )
    graph = layout.part_graph(layout.modules(pkg))
    assert graph["gan"] == {"distillation"}
    assert graph["distillation"] == {"files"}  # an import inside a function counts
    found = layout.violations(graph)
    assert "gan -> distillation (a stage imports another stage)" in found
    assert "files -> fit -> files (import cycle)" in found
    assert len(found) == 2
