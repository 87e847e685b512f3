"""Reading cstorch.save checkpoints without Cerebras packages (training/cstorch_format.py),
on a small real file written by cstorch.save (tests/fixtures/PROVENANCE.md)."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest
import torch

from ebert_modelzoo.errors import CheckpointError
from ebert_modelzoo.training.checkpoint import atomic_torch_save, read_checkpoint
from ebert_modelzoo.training.cstorch_format import is_cstorch_checkpoint, read_cstorch_checkpoint
from tests.training.cstorch_sample import sample_state

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "cstorch_checkpoint.mdl"


def assert_same(got, want, where="state"):
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and got.shape == want.shape, where
        assert torch.equal(got, want), where
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{where}.{i}")
    else:
        assert type(got) is type(want) and got == want, (where, got, want)


def test_reads_every_value_as_saved():
    assert is_cstorch_checkpoint(SAMPLE)
    assert_same(read_cstorch_checkpoint(SAMPLE), sample_state())


def test_read_checkpoint_dispatches_on_the_file_format(tmp_path):
    assert_same(read_checkpoint(SAMPLE), sample_state())
    plain = {"model": {"w": torch.ones(2)}, "step": 1}
    atomic_torch_save(plain, tmp_path / "checkpoint_1.mdl")
    assert not is_cstorch_checkpoint(tmp_path / "checkpoint_1.mdl")
    assert_same(read_checkpoint(tmp_path / "checkpoint_1.mdl"), plain)


def test_interrupted_save_is_refused(tmp_path):
    path = tmp_path / "checkpoint_3.mdl"
    shutil.copy(SAMPLE, path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["__SUCCESS__"] = False
    with pytest.raises(CheckpointError, match=r"checkpoint_3.mdl: incomplete cstorch checkpoint"):
        read_cstorch_checkpoint(path)


def test_other_hdf5_and_truncated_files_fail_with_one_line(tmp_path):
    other = tmp_path / "other.mdl"
    with h5py.File(other, "w") as handle:
        handle["x"] = [1, 2]
    with pytest.raises(CheckpointError, match=r"other.mdl: an HDF5 file but not a cstorch checkpoint"):
        read_checkpoint(other)
    truncated = tmp_path / "truncated.mdl"
    truncated.write_bytes(SAMPLE.read_bytes()[:4000])
    with pytest.raises(CheckpointError, match=r"truncated.mdl: not a readable cstorch checkpoint") as err:
        read_checkpoint(truncated)
    assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.mdl: checkpoint not found"):
        read_cstorch_checkpoint(tmp_path / "missing.mdl")


def test_corrupt_compressed_chunk_is_refused(tmp_path):
    path = tmp_path / "checkpoint_3.mdl"
    shutil.copy(SAMPLE, path)
    with h5py.File(path, "r+") as handle:
        dataset = handle["model.embeddings.word"]
        _, raw = dataset.id.read_direct_chunk((0, 0))
        dataset.id.write_direct_chunk((0, 0), raw[:-6] + b"\xff" * 6)
    with pytest.raises(CheckpointError, match=r"checkpoint_3.mdl: not a readable cstorch checkpoint \("):
        read_cstorch_checkpoint(path)
