"""Trainer parts in-process: schedules, parameter groups, the step function (clipping, loss
scaling), checkpoint files (atomic writes, pruning, RNG, weight loading), the torch backend's
batch stream, and mixed precision with the real model."""
from __future__ import annotations

import os
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ebert_modelzoo.config.model import EBertPretrainConfig
from ebert_modelzoo.config.params import LinearLRConfig, PrecisionConfig, params_from_dict
from ebert_modelzoo.errors import CheckpointError
from ebert_modelzoo.models.ebert import EBertForPreTrainingModel
from ebert_modelzoo.training.backends import BackendOptions
from ebert_modelzoo.training.backends.torch import TorchBackend
from ebert_modelzoo.training.checkpoint import atomic_torch_save, capture_rng, checkpoint_path, from_modelzoo, list_checkpoints, load_model_weights, prune_checkpoints, restore_rng, torch_load
from ebert_modelzoo.training.loop import Trainer
from ebert_modelzoo.training.optim import param_groups
from ebert_modelzoo.training.schedules import PhasedLinearLR, learning_rate_at
from ebert_modelzoo.training.step import make_train_step

from .fixtures import encoder, pretrain_params

PHASES = [LinearLRConfig(initial_learning_rate=0.0, end_learning_rate=1.0, total_iters=4),
          LinearLRConfig(initial_learning_rate=1.0, end_learning_rate=0.2, total_iters=8)]


def test_phased_schedule_follows_the_phases_and_resumes():
    assert [learning_rate_at(s, PHASES) for s in (0, 2, 4, 8, 12, 50)] == pytest.approx([0, 0.5, 1.0, 0.6, 0.2, 0.2])
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.0)
    sched = PhasedLinearLR(opt, PHASES)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([learning_rate_at(s, PHASES) for s in range(6)])
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    sched2 = PhasedLinearLR(opt2, PHASES)
    sched2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(learning_rate_at(6, PHASES))


def test_no_weight_decay_on_biases_and_layernorm():
    model = EBertForPreTrainingModel(EBertPretrainConfig(name="ebert", **encoder()))
    decay, no_decay = param_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    for name, param in model.named_parameters():
        is_norm_or_bias = name.endswith(".bias") or "norm" in name.lower()
        assert (id(param) in ids) == is_norm_or_bias, name
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


class _Doubler(torch.nn.Module):
    """A test double for loop mechanics only: loss = sum((w * x)^2)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((4,), 10.0))

    def forward(self, batch):
        return ((self.w * batch["x"]) ** 2).sum()


@pytest.mark.parametrize("precision", [
    PrecisionConfig(max_gradient_norm=0.5),
    PrecisionConfig(enabled=True, fp16_type="float16", loss_scaling_factor="dynamic", max_gradient_norm=0.5),
    PrecisionConfig(enabled=True, fp16_type="float16", loss_scaling_factor=128.0, max_gradient_norm=0.5),
])
def test_train_step_clips_unscaled_gradients(precision):
    backend = TorchBackend(BackendOptions())
    model = _Doubler()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    norms = []
    opt.register_step_pre_hook(lambda o, a, k: norms.append(float(torch.linalg.vector_norm(model.w.grad))))
    scaler = backend.make_grad_scaler(precision)
    assert (scaler is None) == (not precision.enabled)
    step = make_train_step(backend, model, opt, [], scaler, precision)
    before = model.w.detach().clone()
    loss = step({"x": torch.ones(4)})
    assert float(loss.detach()) == pytest.approx(400.0, rel=1e-2)
    assert norms and norms[0] <= 0.5 + 1e-4  # unscaled, then clipped
    assert float(torch.linalg.vector_norm(before - model.w.detach())) == pytest.approx(0.05, rel=1e-2)
    assert model.w.grad is None or not model.w.grad.any()


def test_atomic_save_never_leaves_a_partial_checkpoint(tmp_path, monkeypatch):
    good = checkpoint_path(tmp_path, 5)
    atomic_torch_save({"model": {"w": torch.ones(2)}}, good)

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"model": {}}, checkpoint_path(tmp_path, 10))
    assert not checkpoint_path(tmp_path, 10).exists()
    assert len(list(tmp_path.glob(".checkpoint_10.mdl.*.tmp"))) == 1  # what a crash leaves: ignored below
    assert list_checkpoints(tmp_path) == [(5, good)]
    assert torch.equal(torch_load(good)["model"]["w"], torch.ones(2))
    prune_checkpoints(tmp_path, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_5.mdl", "checkpoint_5.mdl.xxh128"]


def test_prune_keeps_the_newest(tmp_path):
    for step in (1, 20, 3, 100):
        atomic_torch_save({"model": {}}, checkpoint_path(tmp_path, step))
    (tmp_path / "checkpoint_7.mdl.bak").write_text("")
    prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [20, 100]
    prune_checkpoints(tmp_path, None)
    assert len(list_checkpoints(tmp_path)) == 2


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    atomic_torch_save({"model": {}, "rng": capture_rng()}, tmp_path / "c.mdl")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng(torch_load(tmp_path / "c.mdl")["rng"])  # weights_only load
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_weight_loading_reports_mismatches():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    extra = {**weights, "head.weight": torch.zeros(1)}
    del extra["1.bias"]
    with pytest.raises(CheckpointError, match=r"c.mdl: .*missing from the checkpoint: 1.bias; not in the model: head.weight"):
        load_model_weights(model, extra, strict=True, source="c.mdl")
    assert load_model_weights(model, extra, strict=False, source="c.mdl") == (["1.bias"], ["head.weight"])
    with pytest.raises(CheckpointError, match=r"shapes differ: 0.weight \(3, 3\) vs model \(3, 2\)"):
        load_model_weights(model, {**weights, "0.weight": torch.zeros(3, 3)}, strict=False, source="c.mdl")
    with pytest.raises(CheckpointError, match="no weight names in common"):
        load_model_weights(model, {"x": torch.zeros(1)}, strict=False, source="c.mdl")


def test_batch_stream_spans_epochs_and_a_loader_resumed_at_an_epoch_end():
    backend = TorchBackend(BackendOptions())
    epochs = iter([[], [{"a": torch.tensor([1])}, {"a": torch.tensor([2])}], [{"a": torch.tensor([3])}]])
    got = [int(b["a"]) for b in backend.batches(SimpleNamespace(next_epoch=lambda: next(epochs)), 3)]
    assert got == [1, 2, 3]
    with pytest.raises(ValueError, match="produced no batch"):
        list(backend.batches(SimpleNamespace(next_epoch=lambda: []), 1))


@pytest.mark.parametrize("precision", [
    {"enabled": True, "fp16_type": "bfloat16"},
    {"enabled": True, "fp16_type": "float16", "loss_scaling_factor": "dynamic", "max_gradient_norm": 1.0},
])
def test_mixed_precision_trains_and_checkpoints_the_scaler(tmp_path, data, precision):
    params = params_from_dict(pretrain_params(data, tmp_path, max_steps=6, precision=precision,
                                              loop={"max_steps": 3}))
    trainer = Trainer(params, TorchBackend(BackendOptions()), "test", tmp_path)
    trainer.fit()
    state = torch_load(checkpoint_path(tmp_path, 3))
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert (state["grad_scaler"] is not None) == (precision["fp16_type"] == "float16")
    assert state["data_state"] == {"epoch": 0, "batch": 3}


@pytest.mark.parametrize("runs_steps", [True, False])
def test_evaluation_metrics_only_from_steps_that_ran(tmp_path, data, runs_steps):
    """A backend that only lowers its steps (CSX validate_only/compile_only) computes no metrics:
    the loop must not write them (they would be NaN)."""
    params = params_from_dict(pretrain_params(data, tmp_path, max_steps=6, loop={"max_steps": 2, "eval_steps": 1}))
    backend = TorchBackend(BackendOptions())
    backend.runs_steps = runs_steps
    trainer = Trainer(params, backend, "test", tmp_path)
    trainer.fit(evaluate_during=True)
    trainer.validate(params.trainer.validate_.val_dataloader, name="validate")
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/metrics_step_*.json"))
    assert written == (["eval/metrics_step_2.json", "validate/metrics_step_2.json"] if runs_steps else [])


def test_checkpoint_file_writes_a_matching_checksum_and_prune_takes_it_along(tmp_path):
    import xxhash

    from ebert_modelzoo.training.checkpoint import checksum_path, verify_checkpoint

    for step in (1, 2, 3):
        atomic_torch_save({"model": {"w": torch.full((3,), float(step))}}, checkpoint_path(tmp_path, step))
    path = checkpoint_path(tmp_path, 3)
    # hashed while torch.save streamed it: the digest is that of the bytes on disk
    digest, name = checksum_path(path).read_text().split()
    assert name == path.name and digest == xxhash.xxh3_128(path.read_bytes()).hexdigest()
    assert verify_checkpoint(path)
    prune_checkpoints(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_3.mdl", "checkpoint_3.mdl.xxh128"]


def test_a_modelzoo_checkpoint_reads_with_our_names_and_ours_is_left_alone():
    """Cerebras Model Zoo's Trainer names the step global_step and the data position dataloader,
    keeps the params in __metadata__ and uses cstorch's optimizer classes."""
    params = {"trainer": {"init": {"model": {"name": "ebert"}}}}
    theirs = {"model": {}, "global_step": 4, "dataloader": {"epoch": 0, "batch": 4},
              "__metadata__": [{"version": "2.10.0", "params": params}]}
    read = from_modelzoo(theirs)
    assert (read["step"], read["data_state"], read["params"], read["backend"]) == (
        4, {"epoch": 0, "batch": 4}, params, "cstorch")
    ours = {"model": {}, "step": 3, "global_step": 3, "backend": "torch", "data_state": {"epoch": 1, "batch": 0}}
    assert from_modelzoo(ours) is ours


def test_checkpoint_file_hashes_what_a_path_writer_wrote(tmp_path):
    """The cstorch backend's route: a writer that needs a path and seeks (HDF5, as cstorch.save)."""
    import h5py
    import xxhash

    from ebert_modelzoo.training.checkpoint import checkpoint_file, checksum_path, verify_checkpoint

    path = checkpoint_path(tmp_path, 4)
    with checkpoint_file(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("w", data=np.arange(1000.0), chunks=(100,), compression="gzip")
            f.attrs["done"] = True  # written after the data: the header is rewritten in place
    assert checksum_path(path).read_text() == f"{xxhash.xxh3_128(path.read_bytes()).hexdigest()}  {path.name}\n"
    assert verify_checkpoint(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt: its checksum differs from the one recorded in checkpoint_4.mdl.xxh128"):
        verify_checkpoint(path)


def test_chunks_hashed_on_the_worker_while_written_give_the_files_hash(tmp_path):
    """Tensors of 1 MiB and more are hashed on the worker thread while they are written, the
    small records gathered by the buffer and hashed in line; the digest is still that of the
    bytes on disk, in order. The zip
    records carry no CRC-32 (the XXH3 covers the file), torch.load reads them, and torch's
    setting is left as it was."""
    import zipfile

    import xxhash

    from ebert_modelzoo.training import checkpoint as ck

    torch.manual_seed(0)
    big = {"a": torch.randn(3 * 2**18), "b": torch.randn(2**18), "c": torch.randn(5), "d": torch.randn(2**20)}
    assert min(t.numel() * 4 for k, t in big.items() if k != "c") >= ck._OVERLAP_BYTES
    path = checkpoint_path(tmp_path, 1)
    atomic_torch_save({"model": big}, path)
    assert ck.checksum_path(path).read_text() == f"{xxhash.xxh3_128(path.read_bytes()).hexdigest()}  {path.name}\n"
    assert ck.verify_checkpoint(path)
    assert all(torch.equal(torch_load(path)["model"][k], t) for k, t in big.items())
    if hasattr(torch.serialization, "set_crc32_options"):
        assert {info.CRC for info in zipfile.ZipFile(path).infolist()} == {0}
        assert torch.serialization.get_crc32_options()


def test_a_save_killed_at_the_checkpoints_fsync_leaves_the_previous_one_in_place(tmp_path, monkeypatch):
    """Killed while the checkpoint is fsynced (its checksum file staged under a temporary name on
    the worker): the step's previous checkpoint and checksum file are untouched and verify, the
    temporaries go at the next prune, and the next save works."""
    import threading

    from ebert_modelzoo.training import checkpoint as ck

    path = checkpoint_path(tmp_path, 5)
    atomic_torch_save({"model": {"w": torch.zeros(2**19)}}, path)
    recorded = ck.checksum_path(path).read_text()
    real_fsync = os.fsync

    def fsync(fd):
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt("killed")
        real_fsync(fd)

    monkeypatch.setattr(ck.os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"model": {"w": torch.ones(2**19)}}, path)
    monkeypatch.setattr(ck.os, "fsync", real_fsync)
    assert ck.checksum_path(path).read_text() == recorded and ck.verify_checkpoint(path)
    assert torch.equal(torch_load(path)["model"]["w"], torch.zeros(2**19))
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]) == 2  # checkpoint and checksum file
    prune_checkpoints(tmp_path, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_5.mdl", "checkpoint_5.mdl.xxh128"]
    atomic_torch_save({"model": {"w": torch.ones(2**19)}}, path)
    assert ck.verify_checkpoint(path) and torch.equal(torch_load(path)["model"]["w"], torch.ones(2**19))


def _save_in_child(state: dict, path: Path) -> None:
    atomic_torch_save(state, path)


def test_a_forked_child_saves_with_its_own_worker_thread(tmp_path):
    """The parent's worker thread does not exist in a forked child (a DataLoader worker, say):
    the child starts its own instead of waiting forever on the parent's."""
    import multiprocessing

    from ebert_modelzoo.training.checkpoint import verify_checkpoint

    state = {"model": {"w": torch.zeros(2**19)}}  # made here: torch's own threads may not survive a fork either
    atomic_torch_save(state, checkpoint_path(tmp_path, 1))
    child = multiprocessing.get_context("fork").Process(target=_save_in_child, args=(state, checkpoint_path(tmp_path, 2)))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0 and verify_checkpoint(checkpoint_path(tmp_path, 2))


def test_sha256_checksum_files_of_older_runs_still_verify(tmp_path):
    import hashlib

    from ebert_modelzoo.training.checkpoint import checksum_path, verify_checkpoint

    path = checkpoint_path(tmp_path, 2)
    atomic_torch_save({"model": {"w": torch.ones(3)}}, path)
    checksum_path(path).unlink()
    legacy = checksum_path(path, ".sha256")
    legacy.write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    assert verify_checkpoint(path)
    legacy.write_text(f"{hashlib.sha256(b'other').hexdigest()}  {path.name}\n")
    with pytest.raises(CheckpointError, match="corrupt: .* recorded in checkpoint_2.mdl.sha256"):
        verify_checkpoint(path)
    for unreadable in (b"\xff", b"", b"\n"):
        legacy.write_bytes(unreadable)
        with pytest.raises(CheckpointError, match="unreadable checksum file"):
            verify_checkpoint(path)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("killed_after_renames", [1, 2])
def test_saving_a_step_again_keeps_a_checkpoint_that_verifies_at_every_kill_point(tmp_path, monkeypatch, legacy,
                                                                                  killed_after_renames):
    """A kill between the checksum file's rename and the checkpoint's (1), or before the old hash
    is dropped (2), leaves the old or the new checkpoint, and it verifies; the run that completes
    leaves one checksum file listing one hash."""
    import hashlib

    from ebert_modelzoo.training import checkpoint as ck

    path = checkpoint_path(tmp_path, 7)
    atomic_torch_save({"model": {"w": torch.zeros(4)}}, path)
    if legacy:  # written by an older version: a .sha256 file only
        ck.checksum_path(path).unlink()
        ck.checksum_path(path, ".sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    real_replace, renames = os.replace, []

    def replace(src, dst):
        if len(renames) == killed_after_renames:
            raise KeyboardInterrupt("killed")
        renames.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"model": {"w": torch.ones(4)}}, path)
    monkeypatch.setattr(ck.os, "replace", real_replace)
    assert ck.verify_checkpoint(path)
    expected = torch.zeros(4) if killed_after_renames == 1 else torch.ones(4)
    assert torch.equal(torch_load(path)["model"]["w"], expected)
    atomic_torch_save({"model": {"w": torch.full((4,), 2.0)}}, path)
    assert ck.verify_checkpoint(path) and torch.equal(torch_load(path)["model"]["w"], torch.full((4,), 2.0))
    assert len(ck.checksum_path(path).read_text().splitlines()) == 1
    assert not ck.checksum_path(path, ".sha256").exists()
