"""What a CSX run relies on, checked with the real cstorch CPU backend: checkpoints are written in
a ``cstorch.checkpoint_closure`` at the DataExecutor's checkpoint steps (aligned to the run's
global steps on a resumed run, bit-exact with an uninterrupted one), and the input function and
its arguments survive cstorch's own serialization and give, in a fresh interpreter (a stand-in
for an input worker), the batches the in-process loader gives."""
from __future__ import annotations

import pytest

cstorch = pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

import pickle  # noqa: E402

import torch  # noqa: E402
from cerebras.appliance.appliance_client import fw_user_serialize  # noqa: E402

from ebert_modelzoo.cerebras.backend import CstorchBackend  # noqa: E402
from ebert_modelzoo.cerebras.input_workers import input_fn, worker_config  # noqa: E402
from ebert_modelzoo.config.params import load_params  # noqa: E402
from ebert_modelzoo.training.backends.base import BackendOptions  # noqa: E402
from ebert_modelzoo.training.tasks import DataSource  # noqa: E402
from tests.run_cases import data_for, losses, run_py, run_python, write_params  # noqa: E402

# What an input worker does with the run request (cerebras/pytorch/utils/data/streamer/
# cs_streamer_app.py and pytorch_generator.py): deserialize the function and its arguments, call
# it once, check the restartable protocol, and iterate it again whenever an epoch ends.
WORKER = """
import sys, torch
from cerebras.appliance.appliance_client import fw_user_deserialize
from cerebras.pytorch.utils.data import RestartableDataLoader
fn = fw_user_deserialize(open(sys.argv[1]).read(), name="DataLoader function")
args, kwargs = fw_user_deserialize(open(sys.argv[2]).read(), name="DataLoader args/kwargs")
loader = fn(*args, **kwargs)
assert isinstance(loader, RestartableDataLoader), type(loader)
batches, epoch = [], iter(loader)
while len(batches) < int(sys.argv[3]):
    try:
        batches.append(next(epoch))
    except StopIteration:
        epoch = iter(loader)
torch.save({"batches": batches, "state": loader.aggregate_state_dict([loader.state_dict()])}, sys.argv[4])
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    data = data_for("ebert_tiny.yaml", root / "data", learnable=True, shard_windows=(16, 16))
    return root, data


def test_input_fn_rebuilt_in_a_fresh_interpreter_gives_the_in_process_batches(tiny, tmp_path):
    _, data = tiny
    params = load_params(write_params("ebert_tiny.yaml", tmp_path / "tiny.yaml", data, tmp_path / "md"))
    source = DataSource(params.trainer.fit.train_dataloader)
    per_epoch = source.num_batches()
    position = {"epoch": 0, "batch": per_epoch - 2}  # two batches before an epoch's end
    source.load_state_dict(position)
    expected = []
    while len(expected) < 4:
        expected.extend(source.next_epoch())
    expected = expected[:4]

    args = ((worker_config(source.config), position), {})
    assert pickle.loads(pickle.dumps(args)) == args  # plain values only
    function, arguments = tmp_path / "fn.hex", tmp_path / "args.hex"
    # Serialized exactly as cstorch's CSX backend serializes them into the run request.
    function.write_text(fw_user_serialize(input_fn, name="DataLoader function", recurse=True))
    arguments.write_text(fw_user_serialize(args, name="DataLoader input arguments", recurse=True))
    out = tmp_path / "worker.pt"
    # From another folder: the relative data_dir of a params file must not matter to a worker.
    elsewhere = tmp_path / "worker_cwd"
    elsewhere.mkdir()
    result = run_python(["-c", WORKER, function, arguments, 4, out], cwd=elsewhere, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    got = torch.load(out, weights_only=True)
    assert len(got["batches"]) == 4
    for want, have in zip(expected, got["batches"]):
        assert want.keys() == have.keys()
        for key in want:
            assert torch.equal(want[key], have[key]), key
    # Two batches of epoch 0, two of epoch 1: the position the worker reports for a checkpoint.
    assert got["state"] == {"epoch": 1, "batch": 2}


def test_checkpoint_closure_runs_only_at_the_executor_checkpoint_steps(tiny, tmp_path):
    _, data = tiny
    params = load_params(write_params("ebert_tiny.yaml", tmp_path / "tiny.yaml", data, tmp_path / "md"))
    source = DataSource(params.trainer.fit.train_dataloader)
    source.load_state_dict({"epoch": 0, "batch": 1})
    backend = CstorchBackend(BackendOptions(target="CPU", model_dir=tmp_path / "md"))
    seen = []

    @backend.on_checkpoint
    def save(step: int) -> None:
        seen.append((step, backend.data_position(source)))

    for step, _ in enumerate(backend.batches(source, 5, checkpoint_steps=[2, 5]), start=1):
        save(step)  # asked at every step; cstorch runs it only at steps 2 and 5
    assert seen == [(2, {"epoch": 0, "batch": 3}), (5, {"epoch": 0, "batch": 6})]


def test_checkpoints_at_global_steps_and_a_resumed_run_matches(tiny, tmp_path):
    _, data = tiny
    # No KeepNCheckpoints callback: every checkpoint is kept.
    settings = {"logging": {"log_steps": 1}, "checkpoint": {"steps": 3}, "callbacks": []}

    def train(name, max_steps):
        params = write_params("ebert_tiny.yaml", tmp_path / f"{name}.yaml", data, tmp_path / name, settings)
        result = run_py(["CPU", "-p", params, "-m", "train", "--max_steps", max_steps], cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result

    def saved(name):
        return sorted(int(p.stem.split("_")[1]) for p in (tmp_path / name).glob("checkpoint_*.mdl"))

    straight = train("straight", 11)
    assert saved("straight") == [3, 6, 9, 11]
    train("resumed", 8)
    assert saved("resumed") == [3, 6, 8]
    # The second run's executor starts at step 9: its checkpoint steps 1 and 3 are global 9 and 11.
    second = train("resumed", 11)
    assert saved("resumed") == [3, 6, 8, 9, 11]
    assert losses(second.stdout) == {step: losses(straight.stdout)[step] for step in (9, 10, 11)}
    for step in (9, 11):
        a = cstorch.load(str(tmp_path / "straight" / f"checkpoint_{step}.mdl"))
        b = cstorch.load(str(tmp_path / "resumed" / f"checkpoint_{step}.mdl"))
        assert a["step"] == b["step"] == step
        assert dict(a["data_state"]) == dict(b["data_state"])
        for key in a["model"]:
            assert torch.equal(torch.as_tensor(a["model"][key]), torch.as_tensor(b["model"][key])), key


def test_more_than_one_system_is_refused_with_one_line(tiny, tmp_path):
    _, data = tiny
    params = write_params("ebert_tiny.yaml", tmp_path / "tiny.yaml", data, tmp_path / "md")
    result = run_py(["CSX", "-p", params, "-m", "train", "--num_csx", 2, "--mgmt_address", "host:1234"],
                    cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: --num_csx 2: training on more than one CS system is not supported yet" in result.stderr
