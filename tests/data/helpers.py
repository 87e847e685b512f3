"""Shared helpers of the data-processor tests: configs and reading batches back into samples."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ebert_modelzoo.data.processors import EBertFinetuningDataProcessor, EBertPretrainingDataProcessor

from .split_builder import Split


def pretraining(split: Split, **overrides: Any) -> EBertPretrainingDataProcessor:
    config = dict(
        data_processor="EBertPretrainingDataProcessor",
        data_dir=str(split.path),
        batch_size=8,
        max_sequence_length=32,
        max_predictions_per_seq=6,
    )
    return EBertPretrainingDataProcessor({**config, **overrides})


def finetuning(split: Split, **overrides: Any) -> EBertFinetuningDataProcessor:
    config = dict(
        data_processor="EBertFinetuningDataProcessor",
        data_dir=str(split.path),
        batch_size=8,
        max_sequence_length=32,
    )
    return EBertFinetuningDataProcessor({**config, **overrides})


def original_ids(batch: dict[str, torch.Tensor]) -> np.ndarray:
    """input_ids with every masked position restored from labels (= the unmasked sequence)."""
    ids = batch["input_ids"].numpy().copy()
    if "masked_lm_positions" in batch:
        valid = batch["masked_lm_mask"].numpy() > 0
        rows = np.broadcast_to(np.arange(ids.shape[0])[:, None], valid.shape)
        ids[rows[valid], batch["masked_lm_positions"].numpy()[valid]] = batch["labels"].numpy()[valid]
    return ids


def sample_keys(split: Split, batch: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
    """(global window, cell index) of every sample of a batch that carries cell_type_ids."""
    n_tok = split.tokens.shape[1]
    ids = original_ids(batch)
    cells = batch["cell_type_ids"].numpy()
    return [(split.window_of(row[1 : 1 + n_tok]), int(c)) for row, c in zip(ids, cells)]


def as_numpy(batches: list[dict[str, torch.Tensor]]) -> list[dict[str, np.ndarray]]:
    return [{k: v.numpy().copy() for k, v in b.items()} for b in batches]


def assert_same_batches(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.keys() == y.keys(), i
        for key in x:
            assert torch.equal(x[key], y[key]), (i, key)
