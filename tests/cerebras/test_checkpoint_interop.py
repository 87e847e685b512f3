"""A checkpoint of one backend is usable by the other: the plain torch backend (the dev venv's
run.py, torch only) evaluates and fine-tunes from a cstorch pre-training checkpoint, and the
cstorch backend evaluates a plain-torch checkpoint, each with the other's validation loss."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

cstorch = pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

import torch  # noqa: E402

from ebert_modelzoo.config import load_params  # noqa: E402
from ebert_modelzoo.training.backends.base import BackendOptions  # noqa: E402
from ebert_modelzoo.training.backends.torch import TorchBackend  # noqa: E402
from ebert_modelzoo.training.tasks import Task  # noqa: E402
from tests.run_cases import REPO, data_for, run_py, write_params  # noqa: E402


def dev_python() -> Path:
    """The dev venv's interpreter (plain torch, no Cerebras packages): $EBERT_DEV_PYTHON (set by
    `make test`), else the clone's .venv."""
    found = Path(os.environ.get("EBERT_DEV_PYTHON") or REPO / ".venv" / "bin" / "python")
    if not found.is_file():
        pytest.skip(f"no dev venv python at {found} (set EBERT_DEV_PYTHON or run `make setup`)")
    return found


def run_dev(args, cwd: Path) -> subprocess.CompletedProcess:
    """run.py under the dev venv's python, as a user of the plain torch backend runs it."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([str(dev_python()), str(REPO / "run.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def eval_loss(model_dir: Path, step: int) -> float:
    return json.loads((model_dir / "eval" / f"metrics_step_{step}.json").read_text())["loss"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """ebert_tiny trained 6 steps on the cstorch CPU backend: (params, data, checkpoint)."""
    root = tmp_path_factory.mktemp("interop")
    data = data_for("ebert_tiny.yaml", root / "data", learnable=True, shard_windows=(16, 16))
    params = write_params("ebert_tiny.yaml", root / "tiny.yaml", data, root / "cstorch",
                          {"checkpoint": {"steps": 6}, "logging": {"log_steps": 3}})
    ok(run_py(["CPU", "-p", params, "-m", "train", "--max_steps", 6], cwd=root))
    checkpoint = root / "cstorch" / "checkpoint_6.mdl"
    assert checkpoint.is_file()
    return params, data, checkpoint


def test_plain_torch_evaluates_a_cstorch_checkpoint_like_cstorch(pretrained, tmp_path):
    params, _, checkpoint = pretrained
    ok(run_py(["CPU", "-p", params, "-m", "eval", "--checkpoint_path", checkpoint,
               "--model_dir", tmp_path / "cs_eval"], cwd=tmp_path))
    result = ok(run_dev(["CPU", "-p", params, "-m", "eval", "--checkpoint_path", checkpoint,
                         "--model_dir", tmp_path / "torch_eval"], cwd=tmp_path))
    assert "checkpoint of step 6; states: model,step" in result.stdout
    assert abs(eval_loss(tmp_path / "torch_eval", 6) - eval_loss(tmp_path / "cs_eval", 6)) < 1e-5


def test_plain_torch_refuses_cstorch_optimizer_states_with_one_line(pretrained, tmp_path):
    params, _, checkpoint = pretrained
    result = run_dev(["CPU", "-p", params, "-m", "train", "--max_steps", 8, "--checkpoint_path", checkpoint,
                      "--model_dir", tmp_path / "resume"], cwd=tmp_path)
    assert result.returncode != 0
    assert "a cstorch checkpoint's optimizer, schedulers state cannot be restored on the torch backend" in result.stderr
    assert "Traceback" not in result.stderr
    # The states this backend can restore carry over: weights, step, data position, RNGs.
    resumed = ok(run_dev(["CPU", "-p", params, "-m", "train", "--max_steps", 8, "--checkpoint_path", checkpoint,
                          "--model_dir", tmp_path / "resume", "--load_checkpoint_states",
                          "model,dataloader,step,rng"], cwd=tmp_path))
    assert "training steps 7..8" in resumed.stdout


def test_plain_torch_fine_tunes_from_a_cstorch_checkpoint(pretrained, tmp_path):
    _, _, checkpoint = pretrained
    data = data_for("ebert_finetune_tiny.yaml", tmp_path / "data")
    params = write_params("ebert_finetune_tiny.yaml", tmp_path / "finetune.yaml", data, tmp_path / "finetune",
                          {"checkpoint": {"steps": 2, "disable_strict_checkpoint_loading": True}})
    result = ok(run_dev(["CPU", "-p", params, "-m", "train", "--max_steps", 2, "--checkpoint_path", checkpoint],
                        cwd=tmp_path))
    assert "is a 'ebert' checkpoint: loading its weights only into 'ebert_finetune'" in result.stdout
    assert "loaded" in result.stdout and "non-strictly" in result.stdout
    fine = torch.load(tmp_path / "finetune" / "checkpoint_2.mdl", weights_only=True)
    assert fine["backend"] == "torch" and fine["step"] == 2
    pre = cstorch.load(str(checkpoint))
    # The encoder started from the pre-trained weights (2 steps at a small learning rate move them little).
    key = "ebert.embeddings.word_embeddings.weight"
    assert torch.allclose(fine["model"][key], torch.as_tensor(pre["model"][key]), atol=1e-2)


def test_cstorch_evaluates_a_plain_torch_checkpoint_like_torch(pretrained, tmp_path):
    params, _, _ = pretrained
    torch.manual_seed(11)
    model = Task(load_params(params).trainer.init.model).build_model()
    checkpoint = tmp_path / "checkpoint_0.mdl"
    TorchBackend(BackendOptions()).save_checkpoint(
        {"format_version": 1, "backend": "torch", "step": 0, "model": model.state_dict()}, checkpoint)
    ok(run_dev(["CPU", "-p", params, "-m", "eval", "--checkpoint_path", checkpoint,
                "--model_dir", tmp_path / "torch_eval"], cwd=tmp_path))
    ok(run_py(["CPU", "-p", params, "-m", "eval", "--checkpoint_path", checkpoint,
               "--model_dir", tmp_path / "cs_eval"], cwd=tmp_path))
    assert abs(eval_loss(tmp_path / "cs_eval", 0) - eval_loss(tmp_path / "torch_eval", 0)) < 1e-5
