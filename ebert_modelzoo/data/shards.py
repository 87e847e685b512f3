"""Reading a split folder: data_params.json, vocab.txt and block reads from the HDF5 shards.

Everything here checks the folder against ``contract/`` (data_params.py reads data_params.json) and fails with one line naming the file
and what is wrong. ``ShardReader`` opens h5py files lazily, so each DataLoader worker opens its
own handles after the fork and nothing is shared between processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ebert_modelzoo.contract import schema
from ebert_modelzoo.contract.data_params import DataParams, load_data_params
from ebert_modelzoo.errors import DatasetError
from ebert_modelzoo.tokenizer import DNATokenizer


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
    reverse_complement: np.ndarray
    """[size] id of each token's reverse complement (``DNATokenizer.reverse_complement_ids``)."""


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
        reverse_complement=tokenizer.reverse_complement_ids(),
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

