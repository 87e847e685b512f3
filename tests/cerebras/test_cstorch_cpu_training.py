"""The cstorch backend on cstorch's CPU device: run.py trains ebert_tiny with a falling loss, and
a run resumed from a cstorch checkpoint ends bit-identical to an uninterrupted one."""
from __future__ import annotations

import re

import pytest

cstorch = pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

import h5py  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from tests.run_cases import data_for, losses, run_py, write_params  # noqa: E402

# A schedule of its own (warmup 5, decay over the 40 steps), so the falling-loss check does not
# depend on the shipped params' schedule, which is tuned for the demo's 1,500 steps.
SCHEDULE = [{"SequentialLR": {"schedulers": [
    {"LinearLR": {"initial_learning_rate": 0.0, "end_learning_rate": 2.0e-3, "total_iters": 5}},
    {"LinearLR": {"initial_learning_rate": 2.0e-3, "end_learning_rate": 0.0, "total_iters": 35}},
]}}]
SETTINGS = {"logging": {"log_steps": 5}, "checkpoint": {"steps": 20}, "schedulers": SCHEDULE}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    # Two shards of 16 windows: 10 batches an epoch, so the resumed run starts at an epoch's end.
    return data_for("ebert_tiny.yaml", tmp_path_factory.mktemp("tiny"), learnable=True, shard_windows=(16, 16))


def mlm_only_params(dest, data, model_dir):
    """ebert_tiny with the masked-state objective off: the learnable data makes only the tokens
    predictable, so the falling-loss check reads the MLM loss alone."""
    path = write_params("ebert_tiny.yaml", dest, data, model_dir, SETTINGS)
    params = yaml.safe_load(path.read_text())
    params["trainer"]["init"]["model"]["state_mlm_loss_weight"] = 0.0
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def train(params, cwd, max_steps):
    result = run_py(["CPU", "-p", str(params), "-m", "train", "--max_steps", str(max_steps)], cwd=cwd)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_cpu_training_loss_falls_and_a_resumed_run_matches(tiny_data, tmp_path):
    straight = mlm_only_params(tmp_path / "straight.yaml", tiny_data, tmp_path / "straight")
    result = train(straight, tmp_path, 40)
    assert "on CPU (cstorch backend)" in result.stdout
    seen = losses(result.stdout)
    assert sorted(seen) == list(range(5, 41, 5))
    # Each window repeats one of 8 tokens: far below ln(262) = 5.57 once the model learns that.
    assert seen[40] < 0.6 * seen[5], seen

    checkpoints = sorted(p.name for p in (tmp_path / "straight").iterdir() if p.suffix == ".mdl")
    assert checkpoints == ["checkpoint_20.mdl", "checkpoint_40.mdl"]
    assert h5py.is_hdf5(tmp_path / "straight" / "checkpoint_40.mdl")  # cstorch.save's format
    assert not list((tmp_path / "straight").glob(".*.tmp"))

    resumed = mlm_only_params(tmp_path / "resumed.yaml", tiny_data, tmp_path / "resumed")
    train(resumed, tmp_path, 20)
    second = train(resumed, tmp_path, 40)
    assert "checkpoint_20.mdl (checkpoint of step 20;" in second.stdout
    assert losses(second.stdout) == {step: seen[step] for step in range(25, 41, 5)}

    a = cstorch.load(str(tmp_path / "straight" / "checkpoint_40.mdl"))
    b = cstorch.load(str(tmp_path / "resumed" / "checkpoint_40.mdl"))
    assert a["step"] == b["step"] == 40
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(torch.as_tensor(a["model"][key]), torch.as_tensor(b["model"][key])), key


LR_LINE = re.compile(r"step (\d+), loss [-+.\deE]+, lr ([-+.\deE]+)")


def test_resuming_the_schedule_without_the_optimizer_keeps_the_learning_rate(tiny_data, tmp_path):
    """A run resumed with its schedule position but a fresh optimizer (``--load_checkpoint_states``
    without ``optimizer``) uses the schedule's learning rate from its first step, as the
    uninterrupted run does (cstorch's CPU scheduler sets the groups' rate only when it steps)."""
    settings = {**SETTINGS, "logging": {"log_steps": 1}}
    straight = write_params("ebert_tiny.yaml", tmp_path / "straight.yaml", tiny_data, tmp_path / "straight", settings)
    expected = dict(LR_LINE.findall(train(straight, tmp_path, 24).stdout))
    resumed = write_params("ebert_tiny.yaml", tmp_path / "resumed.yaml", tiny_data, tmp_path / "resumed", settings)
    train(resumed, tmp_path, 20)
    result = run_py(["CPU", "-p", str(resumed), "-m", "train", "--max_steps", "24",
                     "--load_checkpoint_states", "model,schedulers,step,dataloader,rng"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    seen = dict(LR_LINE.findall(result.stdout))
    assert sorted(seen, key=int) == ["21", "22", "23", "24"]
    assert {step: float(lr) for step, lr in seen.items()} == pytest.approx(
        {step: float(expected[step]) for step in seen}, rel=1e-4)
