"""Crash-safe, byte-deterministic writing of shards, their sidecars and data_params.json.

A shard is written under a hidden tmp name, read back (every dataset present with its shape) and
hashed, fsynced and renamed, and the file under the final name is checked to be the one hashed;
then its sidecar (``.shard-00000.json``: windows, sha256 of the shard, train statistics) is
written the same way. A shard counts as finished only when its sidecar exists and the checksum
matches, so a run killed at any point leaves nothing that a rerun or a reader mistakes for complete,
and a shard that does not read back stops the run instead of being recorded. Datasets carry no
timestamps (``track_times=False``), so the same inputs give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import h5py
import numpy as np

from ebert_modelzoo.atomic import atomic_path, atomic_write_text
from ebert_modelzoo.contract.schema import SHARD_PATTERN

SIDECAR_PATTERN = ".shard-{index:05d}.json"


def sha256_file(path: str | Path, block: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _filter_args(compression: str) -> dict[str, Any]:
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    return {}


def write_shard(split_dir: Path, index: int, arrays: Mapping[str, np.ndarray], window_axis: Mapping[str, int],
                compression: str, chunk_windows: int) -> str:
    """Write one shard (datasets in ``arrays``, window axis per dataset in ``window_axis``) and
    return its sha256. Chunks span ``chunk_windows`` windows and one cell type.

    Raises:
        OSError: the shard does not read back as written, or another process replaced it.
    """
    final = split_dir / SHARD_PATTERN.format(index=index)
    filters = _filter_args(compression)
    with atomic_path(final) as tmp:
        with h5py.File(tmp, "w", libver="earliest") as f:
            for name, data in arrays.items():
                axis = window_axis[name]
                chunks = tuple(
                    max(1, min(chunk_windows, n)) if d == axis else (1 if d < axis else max(n, 1))
                    for d, n in enumerate(data.shape)
                )
                if data.shape[axis] == 0:
                    f.create_dataset(name, data=data, track_times=False)
                else:
                    f.create_dataset(name, data=data, chunks=chunks, track_times=False, **filters)
        _check_shard(tmp, {name: data.shape for name, data in arrays.items()})
        checksum = sha256_file(tmp)
        written = os.stat(tmp)
    now = os.stat(final)
    if (now.st_ino, now.st_dev, now.st_size) != (written.st_ino, written.st_dev, written.st_size):
        raise OSError(f"{final}: replaced by another process while this run wrote it")
    return checksum


def _check_shard(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise OSError unless the HDF5 file at ``path`` holds every dataset with its shape."""
    with h5py.File(path, "r") as f:
        for name, shape in shapes.items():
            if name not in f or f[name].shape != tuple(shape):
                found = f[name].shape if name in f else "missing"
                raise OSError(f"{path}: dataset {name!r} does not read back as written ({found}, expected {shape})")


def write_sidecar(split_dir: Path, index: int, record: Mapping[str, Any]) -> None:
    atomic_write_json(split_dir / SIDECAR_PATTERN.format(index=index), dict(record))


def finished_sidecar(split_dir: Path, index: int, fingerprint: str) -> Optional[dict[str, Any]]:
    """The sidecar of shard ``index`` if the shard is complete, checksum-verified and was built from
    the same config (``fingerprint``); None if it must be (re)built."""
    sidecar = split_dir / SIDECAR_PATTERN.format(index=index)
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return None
    if record.get("fingerprint") != fingerprint:
        return None
    if record["num_windows"] == 0:
        return record
    shard = split_dir / record["file"]
    if not shard.is_file() or sha256_file(shard) != record["sha256"]:
        return None
    return record
