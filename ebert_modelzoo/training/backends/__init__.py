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
            "target CSX needs cerebras.pytorch, which is not importable here: install the cerebras extra "
            "(pip install -e '.[cerebras]') in its own Python 3.11 virtual environment and run from there"
        )
    from ebert_modelzoo.training.backends.torch import TorchBackend

    return TorchBackend(options)


__all__ = ["Backend", "BackendOptions", "select_backend"]
