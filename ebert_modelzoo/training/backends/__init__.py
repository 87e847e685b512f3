"""Backends run the one step function on a device: plain torch (CPU, CUDA, torchrun) or
cerebras.pytorch (CPU, GPU, CSX). ``select_backend`` picks one."""
from __future__ import annotations

from ebert_modelzoo.cerebras import cstorch_installed
from ebert_modelzoo.training.backends.base import Backend, BackendOptions


def select_backend(options: BackendOptions) -> Backend:
    """The cstorch backend whenever cerebras.pytorch is importable, else plain torch.

    Raises:
        RuntimeError: CSX was asked for but cerebras.pytorch is not installed.
    """
    if cstorch_installed():
        from ebert_modelzoo.cerebras.backend import CstorchBackend

        return CstorchBackend(options)
    if options.target == "CSX":
        raise RuntimeError(
            "target CSX needs cerebras.pytorch, which this Python cannot import (it pins torch 2.4, so it lives in "
            "its own venv): run `tools/cerebras_venv.sh ensure` once, then `tools/cerebras_venv.sh run python run.py "
            "CSX ...` (README, \"Cerebras\")"
        )
    from ebert_modelzoo.training.backends.torch import TorchBackend

    return TorchBackend(options)


__all__ = ["Backend", "BackendOptions", "select_backend"]
