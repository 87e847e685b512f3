"""A throwaway ``cerebras.modelzoo`` written into a temporary folder, for the code paths that run
only when Model Zoo is installed (it cannot be installed here: it is not on the package registry).

Shaped like Release 2.10.0: ``cerebras.modelzoo.registry.registry`` with ``get_model_names()`` and
``register_model(*, name, path, data_processor_paths)``, and ``cerebras.modelzoo.cli.main.main()``.
``cerebras`` itself stays a namespace package, as in the real install.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

RECORDING_REGISTRY = """
    class _Registry:
        def __init__(self):
            self.names = ["bert"]
            self.calls = []

        def get_model_names(self):
            return sorted(self.names)

        def register_model(self, *, name, path, data_processor_paths):
            if name in self.names:
                raise RuntimeError(f"Found duplicate model names: {name}")
            self.names.append(name)
            self.calls.append({"name": name, "path": path,
                               "data_processor_paths": list(data_processor_paths)})

    registry = _Registry()
"""

# Model Zoo's CLI entry point, reporting what it was handed.
REPORTING_CLI = """
    import json, sys

    def main():
        from cerebras.modelzoo.registry import registry
        print(json.dumps({"argv": sys.argv[1:], "models": registry.get_model_names()}))
"""


def write_fake_registry(root: Path, body: str, cli: str | None = None) -> Path:
    """``root/cerebras/modelzoo/registry/__init__.py`` holding ``body`` (and ``cli/main.py``
    holding ``cli`` when given); returns ``root`` for PYTHONPATH."""
    modelzoo = root / "cerebras" / "modelzoo"
    (modelzoo / "registry").mkdir(parents=True)
    (modelzoo / "__init__.py").write_text("")
    (modelzoo / "registry" / "__init__.py").write_text(textwrap.dedent(body))
    if cli is not None:
        (modelzoo / "cli").mkdir()
        (modelzoo / "cli" / "__init__.py").write_text("")
        (modelzoo / "cli" / "main.py").write_text(textwrap.dedent(cli))
    return root
