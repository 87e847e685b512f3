"""Sanity floors for the fine-tuned EBERT variants: logistic regressions on the same inputs.

    epigenome   the per-bin signal tracks (normalised as the processors do, 0 where missing),
                their presence masks and the one-hot chromatin states of every bin of the window:
                what EBERT epigenome-only reads.
    kmer        the counts of every k-mer (the tokenizer's k, both strands folded together: a k-mer
                and its reverse complement share one column) over the window's DNA: what
                DNA-only EBERT reads, as a bag of words.

One L2 logistic regression per TF (``baselines.fit_logistic``, standardised features) is fitted
on the training split's cell types and scores the evaluation split, like the motif +
accessibility baseline. A model that cannot beat these has not learnt more than a linear reading
of its own inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np

from ebert_modelzoo.contract import schema
from ebert_modelzoo.data.shards import ShardReader, check_shard_shapes, load_split
from ebert_modelzoo.errors import DatasetError
from ebert_modelzoo.evaluation.baselines import fit_logistic
from ebert_modelzoo.evaluation.sample_scores import SampleScores
from ebert_modelzoo.tokenizer import DNATokenizer

Inputs = Literal["epigenome", "kmer"]


@dataclass(frozen=True)
class FloorFeatures:
    """Features and labels of one split: ``features`` [C, W, F] (or [1, W, F] when they do not
    depend on the cell type), ``labels`` [C, W, K] int8 (1 bound, 0 unbound, -1 ambiguous)."""

    label_names: tuple[str, ...]
    cell_types: tuple[str, ...]
    features: np.ndarray
    labels: np.ndarray


def _kmer_columns(tokenizer: DNATokenizer) -> np.ndarray:
    """[4^k] column of each k-mer index (lexicographic ACGT digits) with reverse complements merged."""
    first = tokenizer.first_kmer_id
    index = np.arange(4**tokenizer.k)
    rc = tokenizer.reverse_complement_ids()[first:] - first
    _, columns = np.unique(np.minimum(index, rc), return_inverse=True)
    return columns


def read_floor_features(data_dir: str | Path, inputs: Inputs, cell_types: Sequence[str],
                        tracks: Optional[Sequence[str]] = None) -> FloorFeatures:
    """Read one split's ``inputs`` features for ``cell_types`` (``tracks``: the signal tracks the
    epigenome features use, default all).

    Raises:
        FileNotFoundError / DatasetError: the split is incomplete, has no labels, or lacks a cell
            type, a track or (for ``epigenome``) any epigenome.
    """
    params, _ = load_split(data_dir)
    if not params.label_names:
        raise DatasetError(f"{params.path}: no labels (the floors need a fine-tuning split)")
    unknown = [c for c in cell_types if c not in params.cell_types]
    if unknown:
        raise DatasetError(f"{params.path}: cell types {unknown} not in the split (has {list(params.cell_types)})")
    track_names = tuple(params.track_names if tracks is None else tracks)
    missing = [t for t in track_names if t not in params.track_names]
    if missing:
        raise DatasetError(f"{params.path}: signal tracks {missing} not in the split (has {list(params.track_names)})")
    track_index = [params.track_names.index(t) for t in track_names]
    tokenizer = DNATokenizer.from_vocab_file(Path(data_dir) / schema.VOCAB_FILE)
    fields = [schema.DATASET_LABELS]
    if inputs == "kmer":
        fields.append(schema.DATASET_TOKENS)
    else:
        if track_index:
            fields.append(schema.DATASET_SIGNAL)
        if params.num_states:
            fields.append(schema.DATASET_STATES)
        if len(fields) == 1:
            raise DatasetError(f"{params.path}: no signal tracks or chromatin states for epigenome features")
    check_shard_shapes(params, tuple(fields))
    reader = ShardReader(params, tuple(fields))
    columns = _kmer_columns(tokenizer)
    features, labels = [], []
    try:
        for shard, windows in enumerate(params.shard_windows):
            if inputs == "kmer":
                tokens = reader.read(shard, 0, windows, 0)[schema.DATASET_TOKENS].astype(np.int64)
                is_kmer = tokens >= tokenizer.first_kmer_id
                counts = np.zeros((windows, columns.max() + 1), dtype=np.float32)
                rows = np.broadcast_to(np.arange(windows)[:, None], tokens.shape)[is_kmer]
                np.add.at(counts, (rows, columns[tokens[is_kmer] - tokenizer.first_kmer_id]), 1.0)
                features.append(counts[None])
            per_cell, cell_labels = [], []
            for cell in cell_types:
                arrays = reader.read(shard, 0, windows, params.cell_types.index(cell))
                cell_labels.append(arrays[schema.DATASET_LABELS])
                if inputs == "epigenome":
                    parts = []
                    if schema.DATASET_SIGNAL in arrays:
                        signal = arrays[schema.DATASET_SIGNAL][..., track_index].astype(np.float32)
                        signal = (signal - params.track_mean[track_index]) / params.track_std[track_index]
                        present = ~np.isnan(signal)
                        parts += [np.where(present, signal, 0.0), present.astype(np.float32)]
                    if schema.DATASET_STATES in arrays:
                        parts.append(np.eye(params.num_states + 1, dtype=np.float32)[arrays[schema.DATASET_STATES]])
                    per_cell.append(np.concatenate([p.reshape(windows, -1) for p in parts], axis=1))
            if inputs == "epigenome":
                features.append(np.stack(per_cell))
            labels.append(np.stack(cell_labels))
    finally:
        reader.close()
    return FloorFeatures(params.label_names, tuple(cell_types), np.concatenate(features, axis=1),
                         np.concatenate(labels, axis=1).astype(np.int8))


def run_floor(train_dir: str | Path, eval_dir: str | Path, inputs: Inputs, train_cell_types: Sequence[str],
              eval_cell_types: Sequence[str], tracks: Optional[Sequence[str]] = None,
              l2: float = 1e-3) -> SampleScores:
    """Fit the ``inputs`` logistic regressions on ``train_dir`` and score ``eval_dir`` ([C, W, K]).

    Raises:
        DatasetError: as ``read_floor_features``; the two splits' labels differ.
    """
    train = read_floor_features(train_dir, inputs, train_cell_types, tracks)
    test = read_floor_features(eval_dir, inputs, eval_cell_types, tracks)
    if train.label_names != test.label_names:
        raise DatasetError(f"{eval_dir}: labels {list(test.label_names)} differ from training's {list(train.label_names)}")
    n_cells, n_windows, n_labels = train.labels.shape
    width = train.features.shape[-1]
    x_test = np.broadcast_to(test.features, test.labels.shape[:2] + (width,)).reshape(-1, width)
    scores = np.zeros(test.labels.shape, dtype=np.float32)
    for k in range(n_labels):
        labels = train.labels[..., k]
        if train.features.shape[0] == 1:
            # features shared by every cell type: one bound and one unbound row per window, weighted by
            # how many cell types have that label (the same likelihood as one row per sample, fewer rows)
            x = np.concatenate([train.features[0], train.features[0]])
            y = np.r_[np.ones(n_windows), np.zeros(n_windows)]
            w = np.r_[(labels == 1).sum(axis=0), (labels == 0).sum(axis=0)].astype(np.float64)
        else:
            x, y = train.features.reshape(n_cells * n_windows, width), np.clip(labels, 0, 1).reshape(-1)
            w = (labels >= 0).reshape(-1).astype(np.float64)
        model = fit_logistic(x, y, w, l2=l2)
        scores[..., k] = model.predict_proba(x_test).reshape(test.labels.shape[:2])
    return SampleScores(label_names=test.label_names, cell_types=test.cell_types, scores=scores,
                        labels=np.clip(test.labels, 0, 1).astype(np.int8),
                        weights=(test.labels >= 0).astype(np.float32))
