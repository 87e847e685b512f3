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

from ebert_modelzoo.contract import schema
from ebert_modelzoo.tokenizer import kmer_size
from tests.data.split_builder import FIRST_KMER, build_split

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"
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


def data_for(params_file: str, root: Path, learnable: bool = False,
             shard_windows: Sequence[int] | None = None) -> dict[str, Path]:
    """Train and validation splits shaped like what ``params/<params_file>`` expects (k-mer size,
    tokens per bin, bins per window, states, signal tracks, cell types, labels), with enough
    samples for at least one batch of each dataloader; ``shard_windows`` sets the train split's
    shards (default: two shards of about 24 windows)."""
    params = yaml.safe_load((PARAMS / params_file).read_text())["trainer"]
    model, fit = params["init"]["model"], params["fit"]
    finetuning = model["name"] == "ebert_finetune"
    dirs = {}
    for seed, (split, loader) in enumerate((("train", fit["train_dataloader"]),
                                             ("validation", fit.get("val_dataloader") or fit["train_dataloader"]))):
        cells = loader.get("cell_types") or ["GM12878", "K562", "HepG2"]
        labels = (loader.get("labels") or [f"TF{i}" for i in range(model["num_labels"])]) if finetuning else ()
        windows = max(48, -(-loader["batch_size"] * 5 // 4 // len(cells)))
        path = root / params_file.removesuffix(".yaml") / split
        shards = (windows - windows // 2, windows // 2)
        if split == "train" and shard_windows is not None:
            shards = tuple(shard_windows)
        build_split(path, shard_windows=shards, cell_types=cells,
                    k=kmer_size(model["vocab_size"]), tokens_per_bin=model["tokens_per_bin"],
                    num_bins=(loader["max_sequence_length"] - 2) // model["tokens_per_bin"],
                    num_states=model.get("num_chromatin_states", 0),
                    tracks=tuple(loader.get("signal_tracks") or
                                 (f"track{i}" for i in range(model.get("num_signal_tracks", 0)))),
                    labels=labels, bin_labels=loader.get("label_level") == "bin", seed=seed)
        if learnable:
            make_learnable(path)
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
            if loader.get("motif_file"):  # shipped params name it from the repository root
                loader["motif_file"] = str(REPO / loader["motif_file"])
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


def dev_python() -> Path:
    """The dev venv's interpreter (plain torch, no Cerebras packages): $EBERT_DEV_PYTHON (set by
    `make test`), else the clone's .venv; skips the test without one."""
    import pytest

    found = Path(os.environ.get("EBERT_DEV_PYTHON") or REPO / ".venv" / "bin" / "python")
    if not found.is_file():
        pytest.skip(f"no dev venv python at {found} (set EBERT_DEV_PYTHON or run `make setup`)")
    return found


def run_dev(args: Sequence[Any], cwd: Path) -> subprocess.CompletedProcess:
    """run.py under the dev venv's python, as a user of the plain torch backend runs it."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([str(dev_python()), str(REPO / "run.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``result`` after asserting it exited 0 (else the tails of its output)."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def cszoo(args: Sequence[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``cszoo ARGS`` (the console script's module, run with this interpreter)."""
    return run_python(["-m", "ebert_modelzoo.cli.cszoo", *args], cwd, timeout)


def losses(output: str) -> dict[int, float]:
    """Training losses by step from run.py's console lines."""
    return {int(step): float(loss) for step, loss in STEP_LINE.findall(output)}
