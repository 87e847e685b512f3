"""Dynamic masking, vectorised over a whole batch (numpy): DNA tokens and chromatin states.

DNA tokens (BERT): per sample, ``max(1, round(rate * n))`` of the ``n`` candidate tokens are
selected, at most ``max_predictions``. Candidates are the pure ACGT k-mers only: [CLS], [SEP],
[PAD] and [N] (a k-mer holding an ambiguous base) are never selected, so the model is never asked
to predict an unknown base; a window made only of [N] has no targets (all masked_lm_mask = 0).
Each selected token independently becomes [MASK] with ``mask_prob``, a random ACGT k-mer with
``random_prob``, and stays itself otherwise. Positions are returned ascending, padded with
position 0 / label 0 / mask 0 up to the fixed P.

Chromatin states: the same selection over bins whose state is known (1..S; 0 = unknown is never
a target); every selected bin's input becomes the [MASK] state S + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebert_modelzoo.contract import layout


def select_positions(
    candidates: np.ndarray, rate: float, capacity: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``min(capacity, max(1, round(rate * n)), n)`` random candidates per row.

    Args:
        candidates: bool [B, M], True where a position may be selected.
        rate: fraction of each row's candidates to select.
        capacity: fixed number of output slots per row.

    Returns:
        positions int64 [B, capacity] (ascending column indices; 0 in padding slots) and
        valid bool [B, capacity] (True for real selections, which come first).
    """
    rows, width = candidates.shape
    n_cand = candidates.sum(axis=1)
    n_pick = np.minimum(np.minimum(np.maximum(1, np.rint(n_cand * rate)), capacity), n_cand).astype(np.int64)
    keys = rng.random((rows, width), dtype=np.float32)
    keys[~candidates] = 2.0  # non-candidates sort after every candidate
    take = min(capacity, width)
    if take < width:
        picked = np.argpartition(keys, take - 1, axis=1)[:, :take]
        ranked = np.take_along_axis(picked, np.argsort(np.take_along_axis(keys, picked, 1), axis=1), 1)
    else:
        ranked = np.argsort(keys, axis=1)
    valid = np.arange(take) < n_pick[:, None]
    positions = np.sort(np.where(valid, ranked, width), axis=1)  # valid ones first, ascending
    positions[~valid] = 0
    if take < capacity:
        pad = np.zeros((rows, capacity - take), dtype=positions.dtype)
        positions = np.concatenate([positions, pad], axis=1)
        valid = np.concatenate([valid, pad.astype(bool)], axis=1)
    return positions, valid


@dataclass(frozen=True)
class TokenMasking:
    """Settings of DNA-token masking, with the vocabulary facts it needs."""

    rate: float
    mask_prob: float
    random_prob: float
    max_predictions: int
    mask_id: int
    kmer_ids: np.ndarray
    is_target: np.ndarray
    """bool [vocab_size]: True for the ids that may be selected (pure ACGT k-mers)."""

    def apply(self, input_ids: np.ndarray, num_tokens: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Mask ``input_ids`` [B, L] in place (DNA at columns 1..num_tokens) and return the MLM fields."""
        rows = input_ids.shape[0]
        dna = input_ids[:, layout.dna_positions(num_tokens)]
        positions, valid = select_positions(self.is_target[dna], self.rate, self.max_predictions, rng)
        row_index = np.arange(rows)[:, None]
        labels = np.where(valid, dna[row_index, positions], 0)
        draw = rng.random(valid.shape, dtype=np.float32)
        to_mask = valid & (draw < self.mask_prob)
        to_random = valid & (draw >= self.mask_prob) & (draw < self.mask_prob + self.random_prob)
        random_ids = self.kmer_ids[rng.integers(0, self.kmer_ids.size, valid.shape)]
        replaced = np.where(to_mask, self.mask_id, np.where(to_random, random_ids, labels))
        token_pos = np.where(valid, layout.token_position(positions), 0)
        input_ids[np.broadcast_to(row_index, valid.shape)[valid], token_pos[valid]] = replaced[valid]
        return {
            "masked_lm_positions": token_pos.astype(np.int32),
            "labels": labels.astype(np.int32),
            "masked_lm_mask": valid.astype(np.float32),
        }


@dataclass(frozen=True)
class StateMasking:
    """Settings of chromatin-state masking."""

    rate: float
    max_predictions: int
    mask_state: int
    """S + 1, the [MASK] state id."""

    def apply(self, states: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Mask ``states`` [B, N] in place and return the masked-state fields."""
        positions, valid = select_positions(states > 0, self.rate, self.max_predictions, rng)
        row_index = np.arange(states.shape[0])[:, None]
        labels = np.where(valid, states[row_index, positions], 0)
        states[np.broadcast_to(row_index, valid.shape)[valid], positions[valid]] = self.mask_state
        return {
            "masked_state_positions": positions.astype(np.int32),
            "masked_state_labels": labels.astype(np.int32),
            "masked_state_mask": valid.astype(np.float32),
        }
