"""The import rules of the package, read from the code: data flows one way (files -> preprocessing
-> shards -> data -> batch -> model -> training -> evaluation -> interpret), preprocessing and
data meet only in ``contract/``, the model imports torch and the contract's torch/pure-Python
modules, preprocessing loads no torch. (The Cerebras edge has its own test: test_cerebras_edge.py.)

Every import statement counts, at module level or inside a function.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ebert_modelzoo"
EVERYTHING = {"*"}

# Where a module lives -> the parts of the package it may import. A part is "root" (the modules
# at the package root), a subpackage, or one module of a subpackage ("contract.layout").
ALLOWED: dict[str, set[str]] = {
    "root": {"root", "cerebras.autoregister"},
    # The params schema: section bases are Model Zoo's config classes when it is installed.
    "config": {"root", "config", "cerebras.config_bases"},
    "contract": {"root", "contract"},
    "preprocessing": {"root", "config.base", "contract", "preprocessing"},
    "data": {"root", "config", "contract", "data"},
    "models": {"root", "config.model", "contract.batch", "contract.layout", "models"},
    # Of the Cerebras edge, training reaches only for the cstorch backend (select_backend).
    "training": {"root", "config", "contract", "data", "models", "training", "evaluation.metrics",
                 "cerebras.__init__", "cerebras.backend"},
    # evaluation.metrics as training has it: Model Zoo's Trainer reports our metrics through
    # cerebras/modelzoo_metrics.py.
    "cerebras": {"root", "config", "contract", "data", "models", "training", "evaluation.metrics", "cerebras"},
    "evaluation": {"root", "config", "contract", "data", "models", "training", "evaluation"},
    "interpret": {"root", "config", "contract", "data", "models", "training", "evaluation", "interpret"},
    "demo": EVERYTHING,
    "cli": EVERYTHING,
}
# Outside libraries a part may import besides the standard library.
THIRD_PARTY: dict[str, set[str]] = {
    "config": {"pydantic", "yaml"},
    "contract": {"numpy", "torch"},
    "models": {"torch"},
}


def internal_imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name below ebert_modelzoo) of every import of the package's own modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import; the package uses absolute ones")
            module = node.module or ""
            names = [f"{module}.{alias.name}" if _is_module(f"{module}.{alias.name}") else module
                     for alias in node.names]
        else:
            continue
        found += [(node.lineno, name[len("ebert_modelzoo."):]) for name in names
                  if name.startswith("ebert_modelzoo.")]
    return sorted(set(found))


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` (``ebert_modelzoo.x.y``) names a module or subpackage of the package."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def outside_imports(path: Path) -> set[str]:
    """Top-level names of every non-package, non-standard-library module ``path`` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n != "ebert_modelzoo" and n not in sys.stdlib_module_names and n != "__future__"}


def part_of(dotted: str) -> str:
    """The part a module belongs to: its subpackage, or "root" for a module at the package root."""
    first = dotted.split(".")[0]
    return first if (PACKAGE / first).is_dir() else "root"


def allows(rules: set[str], target: str) -> bool:
    if rules is EVERYTHING:
        return True
    part = part_of(target)
    return (part in rules or any(target == r or target.startswith(r + ".") for r in rules)
            or (target == part and f"{part}.__init__" in rules))  # "x.__init__": the package x itself


def modules() -> list[tuple[Path, str]]:
    return [(path, ".".join(path.relative_to(PACKAGE).with_suffix("").parts)) for path in sorted(PACKAGE.rglob("*.py"))]


def test_every_part_of_the_package_has_rules():
    parts = {part_of(name) for _, name in modules()}
    assert parts == set(ALLOWED), f"parts without rules: {parts - set(ALLOWED)}; rules for no part: {set(ALLOWED) - parts}"


def test_the_checker_sees_a_backward_import(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("import numpy\ndef f():\n    from ebert_modelzoo.data.shards import load_split\n"
                      "from ebert_modelzoo import tokenizer\n")
    found = internal_imports(source)
    assert found == [(3, "data.shards"), (4, "tokenizer")]
    assert not allows(ALLOWED["preprocessing"], "data.shards")
    assert allows(ALLOWED["preprocessing"], "tokenizer")
    assert not allows(ALLOWED["models"], "contract.schema") and allows(ALLOWED["models"], "contract.layout")
    assert allows(ALLOWED["training"], "cerebras") and not allows(ALLOWED["training"], "cerebras.registry")
    assert outside_imports(source) == {"numpy"}


def test_no_module_imports_against_the_data_flow():
    broken = [f"ebert_modelzoo/{path.relative_to(PACKAGE)}:{line} imports ebert_modelzoo.{target}"
              for path, name in modules() for line, target in internal_imports(path)
              if not allows(ALLOWED[part_of(name)], target)]
    assert not broken, "imports against tests/test_import_rules.py's rules:\n" + "\n".join(broken)


@pytest.mark.parametrize("part", sorted(THIRD_PARTY))
def test_outside_libraries_of_the_model_and_the_contract(part):
    extra = {f"{path.relative_to(PACKAGE)}: {sorted(outside_imports(path) - THIRD_PARTY[part])}"
             for path in sorted((PACKAGE / part).rglob("*.py")) if outside_imports(path) - THIRD_PARTY[part]}
    assert not extra, f"{part} imports more than {sorted(THIRD_PARTY[part])}: {sorted(extra)}"


def test_layout_is_pure_python():
    assert outside_imports(PACKAGE / "contract" / "layout.py") == set()


def test_preprocessing_loads_no_torch():
    """Every preprocessing module (and through them the contract's schema), imported for real."""
    names = sorted(name for _, name in modules() if part_of(name) == "preprocessing")
    code = (f"import sys\nfor name in {names!r}:\n    __import__('ebert_modelzoo.' + name)\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_training_reaches_the_cerebras_edge_only_to_pick_the_cstorch_backend():
    """The edge builds on training; training's one way back is select_backend (cstorch_installed,
    and the cstorch backend imported lazily), so the cycle is that one deliberate edge."""
    found = {(str(path.relative_to(PACKAGE)), target) for path, name in modules() if part_of(name) == "training"
             for _, target in internal_imports(path) if part_of(target) == "cerebras"}
    assert found == {("training/backends/__init__.py", "cerebras"), ("training/backends/__init__.py", "cerebras.backend")}
