"""Builds small split folders that follow ebert_modelzoo/data/schema.py exactly (real h5py files,
a real vocab.txt), and keeps the values written so tests can check what comes back."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import h5py
import numpy as np

from ebert_modelzoo.data import schema
from ebert_modelzoo.tokenizer import DNATokenizer

N_ID = DNATokenizer.n_id
FIRST_KMER = DNATokenizer.first_kmer_id
TRACK_MEAN = [0.5, -1.0, 2.0, 0.0]
TRACK_STD = [2.0, 0.5, 1.0, 3.0]


@dataclass
class Split:
    """A written split and the values in it (window axis = all shards' windows concatenated)."""

    path: Path
    tokens: np.ndarray  # [W, n_tok]
    states: Optional[np.ndarray]  # [C, W, N]
    signal: Optional[np.ndarray]  # [C, W, N, T]
    labels: Optional[np.ndarray]  # [C, W, K]
    bin_labels: Optional[np.ndarray]  # [C, W, N, K]
    cell_types: list[str]
    label_names: list[str]
    num_states: int
    tokens_per_bin: int

    def window_of(self, tokens: np.ndarray) -> int:
        """Global window index whose stored tokens are ``tokens`` (windows are unique by construction)."""
        if not hasattr(self, "_index"):
            self._index = {row.tobytes(): i for i, row in enumerate(self.tokens)}
        return self._index[np.asarray(tokens, dtype=np.uint16).tobytes()]


def build_split(
    root: Path,
    *,
    shard_windows: Sequence[int] = (20, 13, 7),
    cell_types: Sequence[str] = ("GM12878", "K562", "HepG2"),
    k: int = 1,
    tokens_per_bin: int = 4,
    num_bins: int = 6,
    num_states: int = 5,
    tracks: Sequence[str] = ("DNase", "H3K27ac"),
    labels: Sequence[str] = (),
    bin_labels: bool = False,
    n_fraction: float = 0.05,
    seed: int = 0,
    compression: Optional[str] = None,
) -> Split:
    """Write ``root/data_params.json``, ``vocab.txt`` and one shard per entry of ``shard_windows``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n_tok, n_cells, total = tokens_per_bin * num_bins, len(cell_types), sum(shard_windows)
    vocab = DNATokenizer(k).tokens
    tokens = rng.integers(FIRST_KMER, len(vocab), (total, n_tok)).astype(np.uint16)
    tokens[rng.random(tokens.shape) < n_fraction] = N_ID
    states = rng.integers(0, num_states + 1, (n_cells, total, num_bins)).astype(np.uint8) if num_states else None
    signal = None
    if tracks:
        signal = rng.normal(size=(n_cells, total, num_bins, len(tracks))).astype(np.float16)
        signal[rng.random(signal.shape) < 0.1] = np.nan
    label_arr = rng.integers(-1, 2, (n_cells, total, len(labels))).astype(np.int8) if labels else None
    bin_arr = rng.integers(-1, 2, (n_cells, total, num_bins, len(labels))).astype(np.int8) if bin_labels else None
    shards, offset = [], 0
    for index, windows in enumerate(shard_windows):
        name = schema.SHARD_PATTERN.format(index=index)
        sl = slice(offset, offset + windows)
        with h5py.File(root / name, "w") as f:
            f.create_dataset(schema.DATASET_WINDOW_CHROM, data=np.zeros(windows, np.int32))
            f.create_dataset(schema.DATASET_WINDOW_START, data=np.arange(offset, offset + windows, dtype=np.int64) * n_tok * k)
            f.create_dataset(schema.DATASET_TOKENS, data=tokens[sl], compression=compression)
            if states is not None:
                f.create_dataset(schema.DATASET_STATES, data=states[:, sl], compression=compression)
            if signal is not None:
                f.create_dataset(schema.DATASET_SIGNAL, data=signal[:, sl], compression=compression)
            if label_arr is not None:
                f.create_dataset(schema.DATASET_LABELS, data=label_arr[:, sl])
            if bin_arr is not None:
                f.create_dataset(schema.DATASET_BIN_LABELS, data=bin_arr[:, sl])
        shards.append({"file": name, "num_windows": windows, "sha256": ""})
        offset += windows
    (root / schema.VOCAB_FILE).write_text("\n".join(vocab) + "\n")
    params = {
        "schema_version": schema.SCHEMA_VERSION,
        "kind": "finetuning" if labels else "pretraining",
        "split": "train",
        "num_windows": total,
        "shards": shards,
        "contigs": ["chrTest"],
        "window_length": n_tok * k,
        "stride": n_tok * k,
        "bin_size": tokens_per_bin * k,
        "tokenizer": {"k": k, "vocab_size": len(vocab)},
        "tokens_per_window": n_tok,
        "tokens_per_bin": tokens_per_bin,
        "num_bins": num_bins,
        "cell_types": list(cell_types),
        "chromatin_states": {"num_states": num_states, "names": [f"E{i + 1}" for i in range(num_states)]} if num_states else None,
        "tracks": {"names": list(tracks), "transform": "arcsinh", "mean": TRACK_MEAN[: len(tracks)], "std": TRACK_STD[: len(tracks)]} if tracks else None,
        "labels": {"names": list(labels)} if labels else None,
        "provenance": {},
    }
    (root / schema.DATA_PARAMS_FILE).write_text(json.dumps(params, indent=1))
    return Split(root, tokens, states, signal, label_arr, bin_arr, list(cell_types), list(labels), num_states, tokens_per_bin)
