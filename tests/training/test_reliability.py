"""run.py against faults (real subprocesses, real model, real shards): a second run into a
model_dir in use, a lock left by a killed run, corrupt and empty checkpoints (fallback to the
newest intact one), diverging training (nothing non-finite saved), non-finite params."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ebert_modelzoo.training.checkpoint import checksum_path, list_checkpoints

from .fixtures import REPO, pretrain_params, run_py, schedule, write_params


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data) -> Path:
    """10 steps, checkpoints at 5 and 10 (each with its .sha256)."""
    root = tmp_path_factory.mktemp("trained")
    params = write_params(root / "p.yaml", pretrain_params(data, root / "model", max_steps=10))
    run_py("CPU", "--params", str(params), "--mode", "train")
    return root


def copy_run(trained: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the trained model_dir and params pointing at it."""
    model = tmp_path / "model"
    subprocess.run(["cp", "-r", str(trained / "model"), str(model)], check=True)
    params = (trained / "p.yaml").read_text().replace(str(trained / "model"), str(model))
    (tmp_path / "p.yaml").write_text(params)
    return model, tmp_path / "p.yaml"


def flip_bytes(path: Path, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    for i in range(count):
        data[len(data) // 3 + 97 * i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_checkpoints_carry_checksums(trained):
    found = list_checkpoints(trained / "model")
    assert [s for s, _ in found] == [5, 10]
    for _, path in found:
        digest, name = checksum_path(path).read_text().split()
        assert name == path.name and len(digest) == 64


@pytest.mark.parametrize("damage", ["flipped", "empty"])
def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path, trained, damage):
    model, params = copy_run(trained, tmp_path)
    newest = model / "checkpoint_10.mdl"
    flip_bytes(newest) if damage == "flipped" else newest.write_bytes(b"")
    done = run_py("CPU", "--params", str(params), "--mode", "eval")
    assert f"{newest}: " in done.stdout and "falling back to the previous checkpoint" in done.stdout
    assert "loaded " + str(model / "checkpoint_5.mdl") in done.stdout
    assert (model / "eval" / "metrics_step_5.json").is_file()
    # the explicit path is not replaced: one line naming it, exit 1
    bad = run_py("CPU", "--params", str(params), "--mode", "eval", "--checkpoint_path", str(newest), check=1)
    assert bad.stderr.startswith(f"error: {newest}: ") and bad.stderr.count("\n") == 1
    assert ("sha256 differs" if damage == "flipped" else "empty file") in bad.stderr
    # eval_all scores the intact one and reports the other
    every = run_py("CPU", "--params", str(params), "--mode", "eval_all", check=1)
    assert "1 of 2 checkpoints skipped" in every.stderr
    # resuming trains on from step 5
    resumed = run_py("CPU", "--params", str(params), "--mode", "train")
    assert "training steps 6..10" in resumed.stdout
    assert checksum_path(newest).read_text().split()[1] == newest.name and newest.stat().st_size > 0


def test_every_checkpoint_corrupt_is_an_error(tmp_path, trained):
    model, params = copy_run(trained, tmp_path)
    for _, path in list_checkpoints(model):
        flip_bytes(path)
    done = run_py("CPU", "--params", str(params), "--mode", "train", check=1)
    assert "no older checkpoint" in done.stderr and done.stderr.count("\n") == 1


def test_diverging_training_stops_and_keeps_the_last_good_checkpoint(tmp_path, trained):
    """Learning rate 1e38 from step 5 on: the weights at the step-10 checkpoint are not finite
    (the loss is logged only every 100 steps, so the checkpoint guard is what stops it)."""
    model, _ = copy_run(trained, tmp_path)
    (model / "checkpoint_10.mdl").unlink()
    params = pretrain_params({k: Path(v) for k, v in make_paths(trained).items()}, model, max_steps=20,
                             schedulers=schedule(1e38, 1, 20), logging={"log_steps": 100})
    done = run_py("CPU", "--params", str(write_params(tmp_path / "p2.yaml", params)), "--mode", "train", check=1)
    assert "step 10: weights are NaN or infinite" in done.stderr
    assert f"the newest checkpoint stays {model / 'checkpoint_5.mdl'}" in done.stderr
    assert [s for s, _ in list_checkpoints(model)] == [5]


def make_paths(trained: Path) -> dict[str, str]:
    import yaml
    fit = yaml.safe_load((trained / "p.yaml").read_text())["trainer"]["fit"]
    return {"pre_train": fit["train_dataloader"]["data_dir"], "pre_val": fit["val_dataloader"]["data_dir"]}


def test_non_finite_learning_rate_is_refused(tmp_path, data):
    params = pretrain_params(data, tmp_path / "model", max_steps=2, schedulers=None)
    params["trainer"]["init"]["optimizer"]["AdamW"]["learning_rate"] = float("nan")
    done = run_py("CPU", "--params", str(write_params(tmp_path / "p.yaml", params)), check=2)
    assert "learning_rate" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "model").exists()


def test_one_run_per_model_dir_and_a_killed_runs_lock_is_taken_over(tmp_path, data):
    params = write_params(tmp_path / "p.yaml", pretrain_params(data, tmp_path / "model", max_steps=400))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, str(REPO / "run.py"), "CPU", "--params", str(params)], cwd=REPO,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / "model" / ".lock"
        deadline = time.time() + 120
        while not (lock.is_file() and lock.read_text().startswith(f"{first.pid} ")):
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.2)
        second = run_py("CPU", "--params", str(params), check=1)
        assert second.stderr == (f"error: {tmp_path / 'model'}: in use by another run (pid {first.pid} on "
                                 f"{os.uname().nodename}); wait for it to end or use another folder\n")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the lock file stays, its lock died with the process
    run_py("CPU", "--params", str(params), "--max_steps", "2")


def test_loading_a_crafted_checkpoint_never_runs_its_code(tmp_path, trained):
    from tests.crafted_checkpoints import crafted_checkpoints

    files, marker = crafted_checkpoints(tmp_path)
    _, params = copy_run(trained, tmp_path)
    for path in files:
        done = run_py("CPU", "--params", str(params), "--mode", "eval", "--checkpoint_path", str(path), check=1)
        assert done.stderr.startswith(f"error: {path}: ") and done.stderr.count("\n") == 1
        assert not marker.exists()


def test_a_run_that_fails_before_writing_leaves_no_model_dir(tmp_path, data):
    params = pretrain_params(data, tmp_path / "model", max_steps=2)
    params["trainer"]["fit"]["train_dataloader"]["data_dir"] = str(tmp_path / "no_such_data")
    done = run_py("CPU", "--params", str(write_params(tmp_path / "p.yaml", params)), check=None)
    assert done.returncode in (1, 2) and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "model").exists()
