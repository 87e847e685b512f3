"""Backends run the one step function on a device: plain torch (CPU, CUDA, torchrun) or
cerebras.pytorch (CPU, GPU, CSX). ``select_backend`` picks one."""
from __future__ import annotations

import importlib.util

from ebert_modelzoo.training.backends.base import Backend, BackendOptions


def cerebras_available() -> bool:
    """True when cerebras.pytorch can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("cerebras.pytorch") is not None
    except (ImportError, ValueError):
        return False


def select_backend(options: BackendOptions) -> Backend:
    """The cstorch backend whenever cerebras.pytorch is importable, else plain torch.

    Raises:
        RuntimeError: CSX was asked for but cerebras.pytorch is not installed.
    """
    if cerebras_available():
        from ebert_modelzoo.training.backends.cstorch import CstorchBackend

        return CstorchBackend(options)
    if options.target == "CSX":
        raise RuntimeError(
            "target CSX needs cerebras.pytorch, which this Python cannot import (it pins torch 2.4, so it lives in "
            "its own venv): run `tools/cerebras_venv.sh ensure` once, then `tools/cerebras_venv.sh run python run.py "
            "CSX ...` (README, \"Cerebras\")"
        )
    from ebert_modelzoo.training.backends.torch import TorchBackend

    return TorchBackend(options)


__all__ = ["Backend", "BackendOptions", "cerebras_available", "select_backend"]
