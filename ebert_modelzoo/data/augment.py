"""Reverse-complement augmentation: a sample read from the other DNA strand.

A TF binds double-stranded DNA, so a window and its reverse complement carry the same labels;
showing the model both (as FactorNet and many DNA models since do) doubles the sequence it
learns from. With non-overlapping k-mer tokens over a whole number of bins, the other strand is
the token order reversed with every k-mer replaced by its reverse complement, and every per-bin
array (chromatin states, signal, bin labels) read in reverse bin order; window labels stay.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebert_modelzoo.contract import schema

PER_BIN = (schema.DATASET_STATES, schema.DATASET_SIGNAL, schema.DATASET_BIN_LABELS)
"""Shard arrays with a bin axis (axis 1) that the other strand reads backwards."""


@dataclass(frozen=True)
class ReverseComplement:
    """Flips each sample of a batch to the other strand with probability ``prob``."""

    table: np.ndarray
    """[vocab] id of each token's reverse complement (specials map to themselves)."""
    prob: float

    def __call__(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The rows of one batch as read from the shards, each flipped or not (one draw per row)."""
        tokens = arrays[schema.DATASET_TOKENS]
        flip = rng.random(tokens.shape[0]) < self.prob
        if not flip.any():
            return arrays
        out = dict(arrays)
        flipped = tokens.copy()
        flipped[flip] = self.table[tokens[flip, ::-1]].astype(tokens.dtype)
        out[schema.DATASET_TOKENS] = flipped
        for name in PER_BIN:
            if name in arrays:
                values = arrays[name].copy()
                values[flip] = values[flip, ::-1]
                out[name] = values
        return out
