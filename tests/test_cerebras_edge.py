"""The Cerebras edge: ebert_modelzoo/cerebras/ is the only code that imports Cerebras packages
(``cerebras.pytorch``, ``cerebras.appliance``, ``cerebras.modelzoo``), by an import statement or
by a module name given to importlib."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "ebert_modelzoo" / "cerebras"
IMPORTERS = {"import_module", "find_spec", "__import__"}


def _is_cerebras(name: str | None) -> bool:
    return name is not None and (name == "cerebras" or name.startswith("cerebras."))


def cerebras_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a Cerebras package in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if _is_cerebras(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_cerebras(node.module):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if name in IMPORTERS and isinstance(first, ast.Constant) and isinstance(first.value, str) \
                    and _is_cerebras(first.value):
                found.append((node.lineno, first.value))
    return found


def project_sources() -> list[Path]:
    files = [ROOT / "run.py"]
    for folder in ("ebert_modelzoo", "bench", "data_processing"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def test_the_checker_finds_every_form_of_import():
    source = ("import cerebras.pytorch as cstorch\nfrom cerebras.modelzoo.registry import registry\n"
              "import importlib\nimportlib.import_module('cerebras.appliance')\n"
              "importlib.util.find_spec('cerebras.pytorch')\nfrom . import cerebras\nimport cerebrasx\n")
    assert [line for line, _ in cerebras_imports(source)] == [1, 2, 4, 5]


def test_only_the_cerebras_subpackage_imports_cerebras_packages():
    outside = {
        f"{path.relative_to(ROOT)}:{line} {module}"
        for path in project_sources() if EDGE not in path.parents
        for line, module in cerebras_imports(path.read_text())
    }
    assert not outside, f"Cerebras packages imported outside ebert_modelzoo/cerebras/: {sorted(outside)}"
    inside = [found for path in EDGE.rglob("*.py") for found in cerebras_imports(path.read_text())]
    assert inside, "the checker sees no import in the edge itself"


def test_the_package_and_its_plain_torch_path_import_no_cerebras_module():
    """Importing the package, the CLI, the plain torch backend and the edge's Cerebras-free parts
    (cstorch checkpoint reader, optimizer-state mapping, registration) loads no Cerebras module."""
    code = ("import sys, ebert_modelzoo, ebert_modelzoo.cli.run, ebert_modelzoo.cli.cszoo, "
            "ebert_modelzoo.training.backends.torch, ebert_modelzoo.training.cstorch_format, "
            "ebert_modelzoo.training.optimizer_state, ebert_modelzoo.cerebras.input_workers\n"
            "print(sorted(m for m in sys.modules if m.startswith('cerebras.')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
