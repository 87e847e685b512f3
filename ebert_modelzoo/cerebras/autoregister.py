"""EBERT in Model Zoo's registry in every process that uses the registry, including Model Zoo's
own ``cszoo``, which never imports this package.

Model Zoo has no plugin discovery, and its ``cszoo`` and ours are one console script name
(whichever package was installed last owns it). So the installed package ships a ``.pth`` file
(``ebert_modelzoo-modelzoo.pth``, see setup.py) that imports ``ebert_modelzoo`` at interpreter
start; that calls :func:`install`, which registers at once if Model Zoo's registry is already
imported, and otherwise adds an import hook that registers right after
``cerebras.modelzoo.registry`` is first imported. Nothing of Model Zoo is imported before the
process asks for it, and nothing at all where Model Zoo is not installed.
"""
from __future__ import annotations

import importlib.abc
import sys
from typing import Any, Optional, Sequence

from ebert_modelzoo.cerebras.registry import modelzoo_installed, register_with_modelzoo

REGISTRY_MODULE = "cerebras.modelzoo.registry"


class RegisterOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of Model Zoo's registry module so that EBERT is
    registered as soon as that module has run."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Any = None) -> Any:
        if fullname != REGISTRY_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader, hook = spec.loader, self
        run_module = loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            if hook in sys.meta_path:
                sys.meta_path.remove(hook)
            register_with_modelzoo()

        loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register now if Model Zoo's registry is loaded, else when it is; nothing without Model Zoo."""
    if REGISTRY_MODULE in sys.modules:
        register_with_modelzoo()
    elif modelzoo_installed() and not any(isinstance(f, RegisterOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, RegisterOnImport())
