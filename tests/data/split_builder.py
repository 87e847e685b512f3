"""Builds small split folders that follow ebert_modelzoo/contract/schema.py exactly (real h5py files,
a real vocab.txt, written by ebert_modelzoo/data/synthetic.py), and keeps the values written so
tests can check what comes back."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ebert_modelzoo.data.synthetic import TRACK_MEAN, TRACK_STD, write_synthetic_split  # noqa: F401
from ebert_modelzoo.tokenizer import DNATokenizer

N_ID = DNATokenizer.n_id
FIRST_KMER = DNATokenizer.first_kmer_id


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


def build_split(root: Path, **sizes: Any) -> Split:
    """Write a synthetic split (ebert_modelzoo/data/synthetic.py; ``sizes`` are its keywords) and
    keep the values written."""
    arrays = write_synthetic_split(root, **sizes)
    defaults = inspect.signature(write_synthetic_split).parameters
    get = lambda key: sizes.get(key, defaults[key].default)  # noqa: E731
    return Split(root, arrays["tokens"], arrays["states"], arrays["signal"], arrays["labels"], arrays["bin_labels"],
                 list(get("cell_types")), list(get("labels")), get("num_states"), get("tokens_per_bin"))
