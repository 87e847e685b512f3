"""Synthetic splits: random windows written in the on-disk layout of contract/schema.py (real h5py
shards, data_params.json, vocab.txt), shaped by given sizes or by a params file's model and
dataloader sections. They let ``run.py CSX --validate_only`` trace and lower a step without the
real genome data (the lowered program depends on shapes only), and tests build their splits
with them."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import h5py
import numpy as np

from ebert_modelzoo.contract import schema
from ebert_modelzoo.tokenizer import DNATokenizer, kmer_size

TRACK_MEAN = [0.5, -1.0, 2.0, 0.0]
TRACK_STD = [2.0, 0.5, 1.0, 3.0]


def write_synthetic_split(
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
) -> dict[str, Optional[np.ndarray]]:
    """Write ``root/data_params.json``, ``vocab.txt`` and one shard per entry of ``shard_windows``
    with random values; returns the arrays written (window axis = all shards concatenated):
    ``tokens`` [W, n_tok], ``states`` [C, W, N], ``signal`` [C, W, N, T], ``labels`` [C, W, K],
    ``bin_labels`` [C, W, N, K] (None where absent)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n_tok, n_cells, total = tokens_per_bin * num_bins, len(cell_types), sum(shard_windows)
    vocab = DNATokenizer(k).tokens
    tokens = rng.integers(DNATokenizer.first_kmer_id, len(vocab), (total, n_tok)).astype(np.uint16)
    tokens[rng.random(tokens.shape) < n_fraction] = DNATokenizer.n_id
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
    return {"tokens": tokens, "states": states, "signal": signal, "labels": label_arr, "bin_labels": bin_arr}


def write_split_for(root: Path, model: Any, loader: Any) -> Path:
    """A synthetic split with the shapes a model section and a dataloader section expect
    (vocabulary, tokens per bin, bins, states, tracks, cell types, labels), holding one batch
    per cell type and then some. Returns ``root``."""
    num_bins = getattr(model, "num_bins", None) or (loader.max_sequence_length - 2) // model.tokens_per_bin
    cells = loader.cell_types or [f"cell{i}" for i in range(max(model.num_cell_types, 1))]
    labels: Sequence[str] = ()
    if model.name == "ebert_finetune":
        labels = loader.labels or model.label_names or [f"label{i}" for i in range(model.num_labels)]
    windows = math.ceil(loader.batch_size / len(cells)) + 1
    k = kmer_size(model.vocab_size)
    if k is None:
        raise ValueError(f"vocab_size {model.vocab_size} is no k-mer tokenizer's vocabulary size")
    write_synthetic_split(
        root, shard_windows=(windows,), cell_types=cells, k=k,
        tokens_per_bin=model.tokens_per_bin, num_bins=num_bins, num_states=model.num_chromatin_states,
        tracks=list(loader.signal_tracks or (f"track{i}" for i in range(model.num_signal_tracks))), labels=labels,
        bin_labels=getattr(loader, "label_level", "sequence") == "bin",
    )
    return root
