"""Dynamic masking: counts, 80/10/10 proportions, never specials, labels = original tokens."""
from __future__ import annotations

import numpy as np
import pytest

from ebert_modelzoo.data.masking import StateMasking, TokenMasking, select_positions

from .helpers import pretraining, sample_keys
from .split_builder import FIRST_KMER, N_ID, build_split

MASK_ID = 4


def _masking(rate=0.15, p=20, k=3):
    kmer_ids = np.arange(FIRST_KMER, FIRST_KMER + 4**k, dtype=np.int32)
    is_target = np.zeros(FIRST_KMER + 4**k, dtype=bool)
    is_target[kmer_ids] = True
    return TokenMasking(rate, 0.8, 0.1, p, MASK_ID, kmer_ids, is_target)


def test_token_masking_statistics():
    rng = np.random.default_rng(1)
    rows, n_tok, seq_len = 4000, 100, 110
    ids = np.zeros((rows, seq_len), dtype=np.int32)
    ids[:, 0], ids[:, n_tok + 1] = 2, 3
    ids[:, 1 : n_tok + 1] = rng.integers(FIRST_KMER, FIRST_KMER + 64, (rows, n_tok))
    ids[:, 1 : n_tok + 1][rng.random((rows, n_tok)) < 0.1] = N_ID
    ids[:50, 1 : n_tok + 1] = N_ID  # windows made only of [N]: no targets at all
    original = ids.copy()
    out = _masking().apply(ids, n_tok, np.random.default_rng(2))
    pos, labels, valid = out["masked_lm_positions"], out["labels"], out["masked_lm_mask"] > 0

    n_cand = ((original[:, 1 : n_tok + 1] >= FIRST_KMER)).sum(1)
    expected = np.minimum(np.where(n_cand > 0, np.maximum(1, np.rint(0.15 * n_cand)), 0), 20)
    assert (valid.sum(1) == expected).all()
    assert not valid[:50].any()
    assert (valid[:, :-1] >= valid[:, 1:]).all(), "real slots come first"
    assert (pos[~valid] == 0).all() and (labels[~valid] == 0).all()
    real_pos = np.where(valid, pos, 10**6)
    assert (np.diff(real_pos, axis=1)[valid[:, 1:]] > 0).all(), "ascending, no repeats"

    rows_idx = np.broadcast_to(np.arange(rows)[:, None], pos.shape)
    assert (labels[valid] == original[rows_idx[valid], pos[valid]]).all()
    assert (labels[valid] >= FIRST_KMER).all(), "only ACGT k-mers are targets (never [N] or specials)"
    assert ((pos[valid] >= 1) & (pos[valid] <= n_tok)).all()

    now = ids[rows_idx[valid], pos[valid]]
    frac_mask = (now == MASK_ID).mean()
    frac_keep = (now == labels[valid]).mean()
    frac_random = ((now != MASK_ID) & (now != labels[valid])).mean()
    assert abs(frac_mask - 0.8) < 0.01
    assert abs(frac_keep - (0.1 + 0.1 / 64)) < 0.01
    assert abs(frac_random - 0.1 * 63 / 64) < 0.01
    assert (now[now != MASK_ID] >= FIRST_KMER).all()
    untouched = np.ones_like(ids, dtype=bool)
    untouched[rows_idx[valid], pos[valid]] = False
    assert (ids[untouched] == original[untouched]).all()


def test_capacity_above_sequence_pads():
    cand = np.ones((3, 5), dtype=bool)
    pos, valid = select_positions(cand, 0.99, 8, np.random.default_rng(0))
    assert pos.shape == (3, 8) and (valid.sum(1) == 5).all()
    assert (pos[:, :5] == np.arange(5)).all() and (pos[:, 5:] == 0).all()


def test_state_masking_never_selects_unknown():
    rng = np.random.default_rng(3)
    states = rng.integers(0, 16, (2000, 25)).astype(np.int32)
    original = states.copy()
    out = StateMasking(0.2, 4, 16).apply(states, np.random.default_rng(4))
    valid = out["masked_state_mask"] > 0
    n_known = (original > 0).sum(1)
    assert (valid.sum(1) == np.minimum(np.maximum(1, np.rint(0.2 * n_known)), 4)).all()
    rows = np.broadcast_to(np.arange(2000)[:, None], valid.shape)
    pos = out["masked_state_positions"]
    assert (out["masked_state_labels"][valid] == original[rows[valid], pos[valid]]).all()
    assert (out["masked_state_labels"][valid] >= 1).all()
    assert (states[rows[valid], pos[valid]] == 16).all()
    changed = states != original
    assert changed.sum() == valid.sum()


def test_processor_masks_at_rate_and_redraws_each_epoch(tmp_path):
    split = build_split(tmp_path, k=3, tokens_per_bin=10, num_bins=10, shard_windows=(30, 30))
    processor = pretraining(split, max_sequence_length=128, max_predictions_per_seq=20, batch_size=10, use_cell_type=True)
    loader = processor.create_dataloader()
    first, second = list(loader), list(loader)
    masked = sum(float(b["masked_lm_mask"].sum()) for b in first)
    candidates = sum(int((b["input_ids"][:, 1:101] >= FIRST_KMER).sum() + (b["input_ids"][:, 1:101] == MASK_ID).sum())
                     for b in first)
    assert masked / candidates == pytest.approx(0.15, abs=0.01)
    assert loader.state_dict() == {"epoch": 2, "batch": 0}
    # same sample, new epoch: new masks
    by_sample = {}
    for epoch, batches in enumerate((first, second)):
        for b in batches:
            for row, key in enumerate(sample_keys(split, b)):
                by_sample.setdefault(key, []).append(tuple(b["masked_lm_positions"][row].tolist()))
    assert len(by_sample) == 180 and all(len(v) == 2 for v in by_sample.values())
    assert sum(v[0] != v[1] for v in by_sample.values()) > 170
