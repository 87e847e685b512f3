"""The whole one-way flow on real fixture files: FASTA + bigWig + BED -> shards (real CLI) ->
processor -> batch dict -> EBERT -> loss, and the batch's signal traced back to pyBigWig."""
from __future__ import annotations

import h5py
import numpy as np
import pyBigWig
import pytest
import torch

from ebert_modelzoo.config.data import PretrainingDataProcessorConfig
from ebert_modelzoo.config.model import EBertPretrainConfig
from ebert_modelzoo.contract import schema
from ebert_modelzoo.contract.batch import check_batch
from ebert_modelzoo.data.processors import EBertPretrainingDataProcessor
from ebert_modelzoo.models.ebert import EBertForPreTrainingModel

from tests.preprocessing.conftest import DATA, make_config, run_cli


@pytest.fixture(scope="module")
def train_split(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flow")
    run_cli("pretraining", make_config(tmp))
    return tmp / "out" / "train"


def _processor(split, **overrides):
    config = dict(data_processor="EBertPretrainingDataProcessor", data_dir=str(split), batch_size=4,
                  max_sequence_length=256, max_predictions_per_seq=40, shuffle=False,
                  state_mask_rate=0.2, max_state_predictions=2, use_cell_type=True)
    config.update(overrides)
    return EBertPretrainingDataProcessor(PretrainingDataProcessorConfig(**config))


def test_one_training_step_from_real_files(train_split):
    processor = _processor(train_split)
    features = processor.features()
    batch = next(iter(processor.create_dataloader()))
    check_batch(batch, features.groups, features.dims)
    torch.manual_seed(0)
    model = EBertForPreTrainingModel(EBertPretrainConfig(
        name="ebert", vocab_size=features.vocab_size, hidden_size=32, num_hidden_layers=1, num_heads=2,
        filter_size=64, max_position_embeddings=256, tokens_per_bin=features.tokens_per_bin,
        num_chromatin_states=features.num_chromatin_states, num_signal_tracks=features.num_signal_tracks,
        num_cell_types=features.num_cell_types, state_mlm_loss_weight=0.5,
    ))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = model(batch)
    first.backward()
    optimizer.step()
    assert torch.isfinite(first)
    assert model(batch).item() < first.item()


def test_batch_signal_is_the_normalised_bigwig_mean(train_split):
    processor = _processor(train_split)
    params = processor.params
    dna_track = params.track_names.index("DNase")
    cell = params.cell_types.index("E003")
    bin_bp = params.raw["bin_size"]
    batch = next(iter(processor.create_dataloader()))
    starts = _window_starts(processor, batch)
    checked = 0
    with pyBigWig.open(str(DATA / "E003.DNase.bw")) as bw:
        for row, start in enumerate(starts):
            if batch["cell_type_ids"][row] != cell:
                continue
            for b in range(params.num_bins):
                value = bw.stats("chrX", start + b * bin_bp, start + (b + 1) * bin_bp, type="mean", exact=True)[0]
                got = batch["signal"][row, b, dna_track].item()
                if value is None:
                    assert batch["signal_mask"][row, b, dna_track] == 0
                    continue
                expected = (np.arcsinh(value) - params.track_mean[dna_track]) / params.track_std[dna_track]
                assert got == pytest.approx(expected, abs=2e-3 * max(1.0, abs(expected)))
                checked += 1
    assert checked >= 5, "the first batch should hold measured E003 DNase bins"


def _window_starts(processor, batch) -> list[int]:
    """Genome start of each sample's window, found by matching its stored tokens in the shards."""
    ids = batch["input_ids"].numpy().copy()
    labels = batch["labels"].numpy()
    positions = batch["masked_lm_positions"].numpy()
    weights = batch["masked_lm_mask"].numpy()
    for row in range(len(ids)):
        for p, label, w in zip(positions[row], labels[row], weights[row]):
            if w:
                ids[row, p] = label
    n_tok = processor.params.tokens_per_window
    starts = []
    for row in ids:
        for path in processor.params.shard_files:
            with h5py.File(path, "r") as f:
                hits = np.flatnonzero((f[schema.DATASET_TOKENS][:] == row[1 : n_tok + 1]).all(axis=1))
                if hits.size:
                    starts.append(int(f[schema.DATASET_WINDOW_START][hits[0]]))
                    break
    assert len(starts) == len(ids)
    return starts
