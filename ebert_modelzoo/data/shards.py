"""Reading a split folder: data_params.json, vocab.txt and block reads from the HDF5 shards.

Everything here checks the folder against ``schema.py`` and fails with one line naming the file
and what is wrong. ``ShardReader`` opens h5py files lazily, so each DataLoader worker opens its
own handles after the fork and nothing is shared between processes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ebert_modelzoo.config_base import ParamsError
from ebert_modelzoo.data import schema
from ebert_modelzoo.tokenizer import DNATokenizer


class DatasetError(ParamsError):
    """A split folder is inconsistent with its schema, or a config asks for what it does not hold."""


@dataclass(frozen=True)
class Vocab:
    """The token ids a processor needs, from the split's vocab.txt."""

    size: int
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    n_id: int
    kmer_ids: np.ndarray
    """Ids of the pure ACGT k-mers: the only tokens ever masked or drawn as random replacements."""


def load_vocab(path: str | Path) -> Vocab:
    """Read vocab.txt through the tokenizer, which checks it is exactly a valid k-mer vocabulary.

    Raises:
        FileNotFoundError: the file is missing.
        DatasetError: naming the file and line where it is not a valid vocabulary.
    """
    try:
        tokenizer = DNATokenizer.from_vocab_file(path)
    except ValueError as err:
        raise DatasetError(str(err)) from None
    return Vocab(
        size=tokenizer.vocab_size,
        pad_id=tokenizer.pad_id,
        cls_id=tokenizer.cls_id,
        sep_id=tokenizer.sep_id,
        mask_id=tokenizer.mask_id,
        n_id=tokenizer.n_id,
        kmer_ids=np.arange(tokenizer.first_kmer_id, tokenizer.vocab_size, dtype=np.int32),
    )


@dataclass(frozen=True)
class DataParams:
    """The parts of data_params.json the processors use, checked for consistency."""

    path: Path
    kind: str
    shard_files: tuple[Path, ...]
    shard_windows: tuple[int, ...]
    vocab_size: int
    tokens_per_window: int
    tokens_per_bin: int
    num_bins: int
    cell_types: tuple[str, ...]
    num_states: int
    """S of the segmentation model; 0 = the split has no chromatin states."""
    track_names: tuple[str, ...]
    track_mean: np.ndarray
    """Per-track mean of the transformed train-split signal (float32 [T])."""
    track_std: np.ndarray
    """Per-track std of the transformed train-split signal (float32 [T], > 0)."""
    label_names: tuple[str, ...]
    raw: dict[str, Any]


def _require(raw: dict[str, Any], key: str, path: Path) -> Any:
    if key not in raw:
        raise DatasetError(f"{path}: key {key!r} is missing")
    return raw[key]


def load_data_params(data_dir: str | Path) -> DataParams:
    """Read and check ``<data_dir>/data_params.json`` and that every listed shard exists.

    Raises:
        FileNotFoundError: data_dir, data_params.json or a shard is missing.
        DatasetError: a key is missing or values disagree (e.g. tokens per window vs bins).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data_dir not found")
    path = data_dir / schema.DATA_PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (is data_dir a split folder written by data_processing?)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    version = _require(raw, "schema_version", path)
    if version != schema.SCHEMA_VERSION:
        raise DatasetError(f"{path}: schema_version {version}, this reader reads {schema.SCHEMA_VERSION}")
    shards = _require(raw, "shards", path)
    if not shards:
        raise DatasetError(f"{path}: 'shards' is empty")
    files, windows = [], []
    for entry in shards:
        file = data_dir / entry["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{file}: shard listed in {path} not found")
        files.append(file)
        windows.append(int(entry["num_windows"]))
    tokenizer = _require(raw, "tokenizer", path)
    n_tok = int(_require(raw, "tokens_per_window", path))
    per_bin = int(_require(raw, "tokens_per_bin", path))
    num_bins = int(_require(raw, "num_bins", path))
    if per_bin * num_bins != n_tok:
        raise DatasetError(
            f"{path}: tokens_per_bin ({per_bin}) x num_bins ({num_bins}) != tokens_per_window ({n_tok})"
        )
    states = raw.get("chromatin_states")
    tracks = raw.get("tracks")
    labels = raw.get("labels")
    names = tuple(tracks["names"]) if tracks else ()
    mean = np.asarray(_require(tracks, "mean", path) if tracks else [], dtype=np.float32)
    std = np.asarray(_require(tracks, "std", path) if tracks else [], dtype=np.float32)
    if mean.shape != (len(names),) or std.shape != (len(names),):
        raise DatasetError(f"{path}: tracks.mean and tracks.std need one value per track ({len(names)})")
    if not (np.isfinite(std).all() and (std > 0).all() and np.isfinite(mean).all()):
        raise DatasetError(f"{path}: tracks.mean must be finite and tracks.std finite and > 0, got {std.tolist()}")
    return DataParams(
        path=path,
        kind=str(_require(raw, "kind", path)),
        shard_files=tuple(files),
        shard_windows=tuple(windows),
        vocab_size=int(_require(tokenizer, "vocab_size", path)),
        tokens_per_window=n_tok,
        tokens_per_bin=per_bin,
        num_bins=num_bins,
        cell_types=tuple(_require(raw, "cell_types", path)),
        num_states=int(states["num_states"]) if states else 0,
        track_names=names,
        track_mean=mean,
        track_std=std,
        label_names=tuple(labels["names"]) if labels else (),
        raw=raw,
    )


def load_split(data_dir: str | Path) -> tuple[DataParams, Vocab]:
    """data_params.json and vocab.txt of a split, checked against each other."""
    params = load_data_params(data_dir)
    vocab_path = Path(data_dir) / schema.VOCAB_FILE
    vocab = load_vocab(vocab_path)
    if vocab.size != params.vocab_size:
        raise DatasetError(
            f"{vocab_path}: {vocab.size} tokens, but {params.path} says tokenizer.vocab_size = "
            f"{params.vocab_size}"
        )
    return params, vocab


class ShardReader:
    """Reads contiguous window ranges of one cell type from the shards; one instance per worker."""

    def __init__(self, params: DataParams, fields: tuple[str, ...]) -> None:
        self._params = params
        self._fields = fields
        self._files: dict[int, h5py.File] = {}
        self._datasets: dict[tuple[int, str], h5py.Dataset] = {}

    def _dataset(self, shard: int, name: str) -> h5py.Dataset:
        key = (shard, name)
        if key not in self._datasets:
            if shard not in self._files:
                self._files[shard] = h5py.File(self._params.shard_files[shard], "r")
            file = self._files[shard]
            if name not in file:
                raise DatasetError(f"{self._params.shard_files[shard]}: dataset {name!r} is missing")
            self._datasets[key] = file[name]
        return self._datasets[key]

    def read(self, shard: int, start: int, stop: int, cell: int) -> dict[str, np.ndarray]:
        """Windows ``start:stop`` of ``shard`` for cell-type index ``cell``: one array per field.

        ``tokens`` is [n, n_tok]; the per-cell fields drop their leading C axis ([n, ...]).
        """
        out = {}
        for name in self._fields:
            dataset = self._dataset(shard, name)
            out[name] = dataset[start:stop] if name == schema.DATASET_TOKENS else dataset[cell, start:stop]
        return out

    def close(self) -> None:
        """Close every open file (safe to call twice)."""
        for file in self._files.values():
            file.close()
        self._files.clear()
        self._datasets.clear()


def check_shard_shapes(params: DataParams, fields: tuple[str, ...]) -> None:
    """Open each shard once and check the datasets the processor will read against data_params.

    Raises:
        DatasetError: naming the shard, dataset and the shape found versus expected.
    """
    n_cells, n_bins = len(params.cell_types), params.num_bins
    for file, windows in zip(params.shard_files, params.shard_windows):
        expected: dict[str, tuple[int, ...]] = {
            schema.DATASET_TOKENS: (windows, params.tokens_per_window),
            schema.DATASET_STATES: (n_cells, windows, n_bins),
            schema.DATASET_SIGNAL: (n_cells, windows, n_bins, len(params.track_names)),
            schema.DATASET_LABELS: (n_cells, windows, len(params.label_names)),
            schema.DATASET_BIN_LABELS: (n_cells, windows, n_bins, len(params.label_names)),
        }
        with h5py.File(file, "r") as handle:
            for name in fields:
                if name not in handle:
                    raise DatasetError(f"{file}: dataset {name!r} is missing")
                shape = handle[name].shape
                if shape != expected[name]:
                    raise DatasetError(f"{file}: dataset {name!r} has shape {shape}, expected {expected[name]}")


def shard_has_dataset(params: DataParams, name: str) -> bool:
    """Whether the first shard holds dataset ``name`` (the writer writes all shards alike)."""
    with h5py.File(params.shard_files[0], "r") as handle:
        return name in handle

