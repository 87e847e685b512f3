"""Shared by the CLI tests (run.py, cszoo) in both venvs: data splits shaped like the shipped
params, those params pointed at the splits, and real CLI subprocesses (each run its own process,
as cstorch allows one backend per process)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np
import yaml

from ebert_modelzoo.data import schema
from tests.data_processors.split_builder import FIRST_KMER, build_split

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"
TFS = ("CTCF", "E2F1", "EGR1", "FOXA1", "FOXA2", "GABPA", "HNF4A", "JUND", "MAX", "NANOG", "REST", "TAF1")
STEP_LINE = re.compile(r"step (\d+), loss ([0-9.eE+-]+|nan|inf)")


def make_learnable(split_dir: Path, distinct: int = 8) -> None:
    """Give every window one repeated 4-mer out of ``distinct``, so masked tokens are predictable
    from their neighbours and the MLM loss has far to fall from ln(vocab)."""
    offset = 0
    for shard in sorted(split_dir.glob("*.h5")):
        with h5py.File(shard, "r+") as f:
            tokens = f[schema.DATASET_TOKENS]
            windows, length = tokens.shape
            values = FIRST_KMER + (offset + np.arange(windows)) % distinct
            tokens[...] = np.repeat(values[:, None], length, axis=1).astype(tokens.dtype)
            offset += windows


def tiny_pretraining_data(root: Path) -> dict[str, Path]:
    """Train and validation splits for params/ebert_tiny.yaml (4-mers, 5 bins of 50 tokens,
    15 states, 2 signal tracks)."""
    dirs = {}
    for split, windows, seed in (("train", (24, 24), 0), ("validation", (16,), 1)):
        path = root / "pretraining" / split
        build_split(path, shard_windows=windows, k=4, tokens_per_bin=50, num_bins=5, num_states=15,
                    tracks=("DNase", "H3K27ac"), seed=seed)
        make_learnable(path)
        dirs[split] = path
    return dirs


def base_data(root: Path, finetuning: bool) -> dict[str, Path]:
    """Splits for the full-size params (2 kb windows: 10 bins of 50 tokens, 15 states, no signal);
    enough samples for one full-size batch (256 pre-training, 32 fine-tuning)."""
    kind = "finetuning" if finetuning else "pretraining"
    dirs = {}
    for split, seed in (("train", 0), ("validation", 1)):
        path = root / kind / split
        build_split(path, shard_windows=(90,), k=4, tokens_per_bin=50, num_bins=10, num_states=15,
                    tracks=(), labels=TFS if finetuning else (), seed=seed)
        dirs[split] = path
    return dirs


def _loaders(trainer: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(split, section) of every dataloader section of a trainer-form params dict."""
    fit = trainer.get("fit") or {}
    yield "train", fit.get("train_dataloader")
    yield "validation", fit.get("val_dataloader")
    yield "validation", (trainer.get("validate") or {}).get("val_dataloader")
    every = (trainer.get("validate_all") or {}).get("val_dataloaders")
    for loader in every if isinstance(every, list) else [every]:
        yield "validation", loader


def write_params(source: str, dest: Path, data: dict[str, Path], model_dir: Path,
                 init: dict[str, Any] | None = None) -> Path:
    """A shipped params file with its dataloaders pointed at ``data`` and its model_dir moved;
    ``init`` entries replace sections of trainer.init. The fit's starting checkpoint is dropped."""
    params = yaml.safe_load((PARAMS / source).read_text())
    trainer = params["trainer"]
    trainer["init"]["model_dir"] = str(model_dir)
    trainer["init"].update(init or {})
    (trainer.get("fit") or {}).pop("ckpt_path", None)
    for split, loader in _loaders(trainer):
        if loader:
            loader["data_dir"] = str(data[split])
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def run_python(args: Sequence[str], cwd: Path, timeout: int = 600,
               path: str | None = None) -> subprocess.CompletedProcess:
    """``python ARGS`` with this interpreter and this checkout importable; PATH is ``path`` or
    the current one with the venv's bin/ first (as an activated venv has it)."""
    env = dict(os.environ)
    env["PATH"] = path or os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_py(args: Sequence[str], cwd: Path, timeout: int = 600,
           path: str | None = None) -> subprocess.CompletedProcess:
    """``python run.py ARGS``."""
    return run_python([REPO / "run.py", *args], cwd, timeout, path)


def cszoo(args: Sequence[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``cszoo ARGS`` (the console script's module, run with this interpreter)."""
    return run_python(["-m", "ebert_modelzoo.cli.cszoo", *args], cwd, timeout)


def losses(output: str) -> dict[int, float]:
    """Training losses by step from run.py's console lines."""
    return {int(step): float(loss) for step, loss in STEP_LINE.findall(output)}
