"""Clear one-line errors when the folder is broken or the config asks for what the data lacks."""
from __future__ import annotations

import json

import h5py
import pytest

from ebert_modelzoo.config.data import PretrainingDataProcessorConfig
from ebert_modelzoo.data.processors import PROCESSORS, create_processor
from ebert_modelzoo.errors import DatasetError, ParamsError
from ebert_modelzoo.tokenizer import DNATokenizer

from .helpers import finetuning, pretraining
from .split_builder import build_split


@pytest.fixture
def split(tmp_path):
    return build_split(tmp_path / "train", labels=("CTCF", "REST"))


def test_missing_data_dir(split, tmp_path):
    split.path = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere: data_dir not found"):
        pretraining(split)


def test_missing_data_params(split):
    (split.path / "data_params.json").unlink()
    with pytest.raises(FileNotFoundError, match="data_params.json: not found"):
        pretraining(split)


def test_missing_shard_and_vocab(split):
    (split.path / "vocab.txt").unlink()
    with pytest.raises(FileNotFoundError, match="vocab.txt: vocabulary file not found"):
        pretraining(split)
    (split.path / "shard-00001.h5").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00001.h5: shard listed in"):
        pretraining(split)


def test_vocab_size_mismatch(split):
    DNATokenizer(2).save_vocab(split.path / "vocab.txt")
    with pytest.raises(DatasetError, match=r"vocab.txt: 22 tokens, but .*vocab_size = 10"):
        pretraining(split)


def test_vocab_with_a_stray_line(split):
    with open(split.path / "vocab.txt", "a") as f:
        f.write("EXTRA\n")
    with pytest.raises(DatasetError, match=r"vocab.txt: 11 lines is not a k-mer vocabulary size"):
        pretraining(split)


def test_vocab_without_special(split):
    path = split.path / "vocab.txt"
    path.write_text(path.read_text().replace("[MASK]", "[MSK]"))
    with pytest.raises(DatasetError, match=r"vocab.txt:5: expected token '\[MASK\]', found '\[MSK\]'"):
        pretraining(split)


def test_broken_data_params(split):
    path = split.path / "data_params.json"
    params = json.loads(path.read_text())
    del params["num_bins"]
    path.write_text(json.dumps(params))
    with pytest.raises(DatasetError, match="key 'num_bins' is missing"):
        pretraining(split)
    path.write_text("{\n  broken")
    with pytest.raises(DatasetError, match=r"data_params.json:2: invalid JSON"):
        pretraining(split)


def test_shard_shape_mismatch(split):
    with h5py.File(split.path / "shard-00002.h5", "a") as f:
        del f["states"]
        f.create_dataset("states", data=[[[1]]])
    with pytest.raises(DatasetError, match=r"shard-00002.h5: dataset 'states' has shape \(1, 1, 1\)"):
        pretraining(split).create_dataloader()


def test_unknown_cell_type_and_label(split):
    with pytest.raises(DatasetError, match=r"cell_types: \['HeLa'\] not in .*data_params.json"):
        _one_line_raise(lambda: pretraining(split, cell_types=["K562", "HeLa"]))
    with pytest.raises(DatasetError, match=r"labels: \['MAX'\] not in .*has \['CTCF', 'REST'\]"):
        finetuning(split, labels=["MAX"])


def _one_line_raise(fn):
    try:
        fn()
    except Exception as err:
        assert "\n" not in str(err)
        raise


def test_config_asks_for_missing_features(tmp_path):
    plain = build_split(tmp_path / "plain", num_states=0)
    with pytest.raises(DatasetError, match="state_mask_rate > 0 needs chromatin states, but .* has none"):
        pretraining(plain, state_mask_rate=0.2, max_state_predictions=2)
    with pytest.raises(DatasetError, match="no labels .*fine-tuning needs a fine-tuning split"):
        finetuning(plain)
    labelled = build_split(tmp_path / "labelled", labels=("CTCF",))
    with pytest.raises(DatasetError, match="label_level is 'bin' but .* has no bin_labels dataset"):
        finetuning(labelled, label_level="bin")
    with pytest.raises(DatasetError, match=r"max_sequence_length 20 is shorter than tokens_per_window 24"):
        pretraining(labelled, max_sequence_length=20)


def test_bad_config_is_params_error(split):
    with pytest.raises(ParamsError, match="dataloader.mask_rte: unknown key"):
        pretraining(split, mask_rte=0.1)


def test_registry_matches_discriminators(split):
    assert set(PROCESSORS) == {"EBertPretrainingDataProcessor", "EBertFinetuningDataProcessor"}
    config = PretrainingDataProcessorConfig(
        data_processor="EBertPretrainingDataProcessor", data_dir=str(split.path), batch_size=4, max_sequence_length=32
    )
    assert type(create_processor(config)).__name__ == config.data_processor
