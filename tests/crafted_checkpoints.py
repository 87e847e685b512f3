"""Checkpoint files crafted to run code when unpickled (a torch.save file, and a pre-0.5 cstorch
HDF5 file whose spec is a pickle, as cstorch's legacy reader unpickles it with dill): loading
them must refuse, and the marker file their code would create must not appear."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import torch


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_checkpoints(folder: Path) -> tuple[list[Path], Path]:
    """The crafted files in ``folder`` and the marker path their code would create."""
    marker = folder / "code_ran"
    torch_file = folder / "crafted_torch.mdl"
    torch.save({"model": {"w": torch.ones(1)}, "extra": _RunsCode(marker)}, torch_file)
    legacy = folder / "crafted_legacy.mdl"
    with h5py.File(legacy, "w") as f:
        f.attrs["__version__"] = 0.4
        f.attrs["__spec__"] = pickle.dumps(_RunsCode(marker)).hex()
    return [torch_file, legacy], marker
