"""Reverse-complement augmentation (data/augment.py) through the fine-tuning processor and run.py."""
from __future__ import annotations

import numpy as np
import pytest

from ebert_modelzoo.contract import layout
from ebert_modelzoo.errors import ParamsError
from ebert_modelzoo.tokenizer import DNATokenizer
from tests.data.helpers import finetuning, original_ids, pretraining
from tests.data.split_builder import build_split
from tests.training.fixtures import finetune_params, logged_losses, make_data, run_py, write_params


def _batches(processor) -> list[dict]:
    return [{key: value.numpy() for key, value in batch.items()} for batch in processor.create_dataloader()]


@pytest.mark.parametrize("label_level", ["sequence", "bin"])
def test_every_flipped_sample_is_the_other_strand_of_its_window(tmp_path, label_level):
    split = build_split(tmp_path / "s", k=2, labels=("A", "B"), bin_labels=label_level == "bin", seed=4)
    n = split.tokens.shape[1]
    table = DNATokenizer(2).reverse_complement_ids()
    kwargs = dict(shuffle=False, drop_last=False, label_level=label_level, max_sequence_length=n + 2)
    forward = _batches(finetuning(split, **kwargs))
    flipped = _batches(finetuning(split, reverse_complement_prob=1.0, **kwargs))
    again = _batches(finetuning(split, reverse_complement_prob=0.5, **kwargs))
    half = _batches(finetuning(split, reverse_complement_prob=0.5, **kwargs))
    dna = layout.dna_positions(n)
    label = "bin_labels" if label_level == "bin" else "seq_labels"
    flips = 0
    for fwd, rc, a, b in zip(forward, flipped, again, half, strict=True):
        np.testing.assert_array_equal(rc["input_ids"][:, dna], table[fwd["input_ids"][:, dna][:, ::-1]])
        for key in ("chromatin_states", "signal", "signal_mask"):
            np.testing.assert_array_equal(rc[key], fwd[key][:, ::-1])
        expected = fwd[label][:, ::-1] if label_level == "bin" else fwd[label]
        np.testing.assert_array_equal(rc[label], expected)
        np.testing.assert_array_equal(rc["attention_mask"], fwd["attention_mask"])
        for key in a:  # the same seed draws the same flips
            np.testing.assert_array_equal(a[key], b[key])
        is_rc = (a["input_ids"] == rc["input_ids"]).all(axis=1)
        assert (is_rc | (a["input_ids"] == fwd["input_ids"]).all(axis=1)).all()
        np.testing.assert_array_equal(a["signal"][is_rc], rc["signal"][is_rc])
        flips += int(is_rc.sum())
    total = sum(len(batch["input_ids"]) for batch in forward)
    assert 0.3 * total < flips < 0.7 * total


def test_pre_training_masks_the_flipped_strand(tmp_path):
    split = build_split(tmp_path / "s", k=2, seed=6)
    n = split.tokens.shape[1]
    table = DNATokenizer(2).reverse_complement_ids()
    kwargs = dict(shuffle=False, drop_last=False, max_sequence_length=n + 2, state_mask_rate=0.2, max_state_predictions=2)
    forward = list(pretraining(split, **kwargs).create_dataloader())
    flipped = list(pretraining(split, reverse_complement_prob=1.0, **kwargs).create_dataloader())
    dna = layout.dna_positions(n)
    for fwd, rc in zip(forward, flipped, strict=True):
        np.testing.assert_array_equal(original_ids(rc)[:, dna], table[original_ids(fwd)[:, dna][:, ::-1]])
        assert rc["masked_lm_mask"].sum() > 0


def test_probability_outside_zero_one_names_the_key(tmp_path):
    split = build_split(tmp_path / "s", labels=("A",))
    with pytest.raises(ParamsError, match="reverse_complement_prob"):
        finetuning(split, reverse_complement_prob=1.5)


def test_run_py_fine_tunes_on_the_other_strand(tmp_path):
    data = make_data(tmp_path / "data")
    losses = {}
    for prob in (0.0, 1.0):
        params = finetune_params(data, tmp_path / f"run_{prob}")
        params["trainer"]["fit"]["train_dataloader"]["reverse_complement_prob"] = prob
        run_py("CPU", "-p", str(write_params(tmp_path / f"p_{prob}.yaml", params)), "-m", "train")
        losses[prob] = logged_losses(tmp_path / f"run_{prob}")
    assert losses[0.0].keys() == losses[1.0].keys() and len(losses[0.0]) == 6
    assert losses[0.0] != losses[1.0]  # the same weights and samples, read from the other strand
