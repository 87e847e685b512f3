"""The Cerebras edge: the only code of this package that imports Cerebras packages
(``cerebras.pytorch``, ``cerebras.appliance``, ``cerebras.modelzoo``); tests/test_cerebras_edge.py
enforces it.

- ``backend``: the cerebras.pytorch backend (CPU, GPU, CSX); imported only when cerebras.pytorch is.
- ``input_workers``: the input function CSX input workers import and call.
- ``registry``: registration into Model Zoo's registry; ``modelzoo_cli``: hand-over to its ``cszoo``.
- ``modelzoo_models`` / ``modelzoo_metrics``: the models Model Zoo's registry gets, reporting our
  eval metrics as cstorch ``Metric`` modules; ``modelzoo_runner``: run.py's CSX runs through
  Model Zoo's Trainer.

Importing this package imports no Cerebras package. May import the package root, ``contract``,
``data``, ``models`` and ``training`` (tests/test_import_rules.py).
"""
from __future__ import annotations

import importlib.util


def cstorch_installed() -> bool:
    """True when cerebras.pytorch can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("cerebras.pytorch") is not None
    except (ImportError, ValueError):
        return False
