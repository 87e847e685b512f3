"""Both processors against the batch contract, and the values they return against what was stored."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from ebert_modelzoo.contract.batch import check_batch

from .helpers import finetuning, original_ids, pretraining, sample_keys
from .split_builder import TRACK_MEAN, TRACK_STD, build_split


@pytest.fixture(scope="module")
def pt_split(tmp_path_factory):
    return build_split(tmp_path_factory.mktemp("pt"))


@pytest.fixture(scope="module")
def ft_split(tmp_path_factory):
    return build_split(tmp_path_factory.mktemp("ft"), labels=("CTCF", "REST", "JUND"), bin_labels=True)


def _check_values(split, batch, use_states, use_signal):
    """Every sample's epigenome, tokens and cell id equal the stored ones of its (window, cell)."""
    n_tok = split.tokens.shape[1]
    ids = original_ids(batch)
    assert (ids[:, 0] == 2).all() and (ids[:, n_tok + 1] == 3).all() and (ids[:, n_tok + 2 :] == 0).all()
    assert (batch["attention_mask"].numpy() == (np.arange(ids.shape[1]) < n_tok + 2)).all()
    for row, (window, cell) in enumerate(sample_keys(split, batch)):
        if use_states:
            states = batch["chromatin_states"][row].numpy()
            stored = split.states[cell, window].astype(np.int32)
            if "masked_state_positions" in batch:
                valid = batch["masked_state_mask"][row].numpy() > 0
                pos = batch["masked_state_positions"][row].numpy()[valid]
                assert (states[pos] == split.num_states + 1).all()
                assert (batch["masked_state_labels"][row].numpy()[valid] == stored[pos]).all()
                assert (stored[pos] > 0).all()
                states = states.copy()
                states[pos] = stored[pos]
            assert (states == stored).all()
        if use_signal:
            tracks = split.signal.shape[-1]
            mean, std = np.array(TRACK_MEAN[:tracks], np.float32), np.array(TRACK_STD[:tracks], np.float32)
            stored = (split.signal[cell, window].astype(np.float32) - mean) / std
            measured = ~np.isnan(stored)
            assert (batch["signal_mask"][row].numpy() == measured).all()
            got = batch["signal"][row].numpy()
            assert (got[~measured] == 0).all() and (got[measured] == stored[measured]).all()


@pytest.mark.parametrize(
    "use_states,use_signal,use_cell_type,state_mask_rate",
    [c for c in itertools.product([True, False], [True, False], [True, False], [0.0, 0.3]) if c[0] or not c[3]],
)
def test_pretraining_contract(pt_split, use_states, use_signal, use_cell_type, state_mask_rate):
    processor = pretraining(
        pt_split,
        use_chromatin_states=use_states,
        use_signal=use_signal,
        use_cell_type=True,  # needed to identify samples; dropped below when not asked for
        state_mask_rate=state_mask_rate,
        max_state_predictions=3 if state_mask_rate else 0,
    )
    features = processor.features()
    assert features.num_chromatin_states == (5 if use_states else 0)
    assert features.num_signal_tracks == (2 if use_signal else 0)
    assert features.vocab_size == 10 and features.tokens_per_bin == 4 and features.num_bins == 6
    batches = list(processor.create_dataloader())
    assert len(batches) == 120 // 8
    for batch in batches:
        check_batch(batch, features.groups, features.dims)
        _check_values(pt_split, batch, use_states, use_signal)
    if not use_cell_type:
        processor = pretraining(pt_split, use_chromatin_states=use_states, use_signal=use_signal,
                                state_mask_rate=state_mask_rate, max_state_predictions=3 if state_mask_rate else 0)
        features = processor.features()
        batch = next(iter(processor.create_dataloader()))
        check_batch(batch, features.groups, features.dims)
        assert "cell_type_ids" not in batch and features.num_cell_types == 0


@pytest.mark.parametrize("label_level", ["sequence", "bin"])
@pytest.mark.parametrize("use_states,use_signal", [(True, True), (False, True), (True, False), (False, False)])
def test_finetuning_contract_and_labels(ft_split, label_level, use_states, use_signal):
    processor = finetuning(ft_split, labels=["JUND", "CTCF"], label_level=label_level, use_cell_type=True,
                           use_chromatin_states=use_states, use_signal=use_signal, cell_types=["HepG2", "GM12878"])
    features = processor.features()
    assert features.label_names == ("JUND", "CTCF") and features.num_labels == 2
    assert features.num_cell_types == 3  # ids index the data's full cell-type list
    batches = list(processor.create_dataloader())
    assert len(batches) == 80 // 8
    for batch in batches:
        check_batch(batch, features.groups, features.dims)
        _check_values(ft_split, batch, use_states, use_signal)
        assert "masked_lm_positions" not in batch
        keys = sample_keys(ft_split, batch)
        assert {c for _, c in keys} <= {0, 2}
        stored = ft_split.labels if label_level == "sequence" else ft_split.bin_labels
        prefix = "seq" if label_level == "sequence" else "bin"
        for row, (window, cell) in enumerate(keys):
            raw = stored[cell, window][..., [2, 0]]
            assert (batch[f"{prefix}_labels"][row].numpy() == (raw == 1)).all()
            assert (batch[f"{prefix}_label_weights"][row].numpy() == (raw != -1)).all()


def test_data_without_states_or_signal_yields_dna_only(tmp_path):
    split = build_split(tmp_path, num_states=0, tracks=())
    processor = pretraining(split)  # use_chromatin_states / use_signal default to True
    features = processor.features()
    assert features.groups == ("dna", "mlm") and features.num_chromatin_states == 0
    batch = next(iter(processor.create_dataloader()))
    check_batch(batch, features.groups, features.dims)
    assert set(batch) == {"input_ids", "attention_mask", "masked_lm_positions", "labels", "masked_lm_mask"}


def test_drop_last_false_keeps_every_sample(pt_split):
    processor = pretraining(pt_split, batch_size=7, drop_last=False, use_cell_type=True)
    batches = list(processor.create_dataloader())
    assert [len(b["input_ids"]) for b in batches] == [7] * 17 + [1]
    keys = [k for b in batches for k in sample_keys(pt_split, b)]
    assert sorted(keys) == [(w, c) for w in range(40) for c in range(3)]


def test_use_dna_false_hides_the_sequence_but_keeps_the_epigenome(ft_split):
    processor = finetuning(ft_split, use_dna=False)
    batch = next(iter(processor.create_dataloader()))
    check_batch(batch, processor.features().groups, processor.features().dims)
    n_tok = ft_split.tokens.shape[1]
    ids = batch["input_ids"].numpy()
    assert (ids[:, 1 : n_tok + 1] == processor.vocab.n_id).all()
    assert ids[0, 0] == processor.vocab.cls_id and ids[0, n_tok + 1] == processor.vocab.sep_id
    assert "chromatin_states" in batch and "signal" in batch


def test_use_dna_false_is_refused_for_pretraining(pt_split):
    with pytest.raises(ValueError, match="use_dna"):
        pretraining(pt_split, use_dna=False)
