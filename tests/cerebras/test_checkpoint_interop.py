"""A checkpoint of one backend is usable by the other: the plain torch backend (the dev venv's
run.py, torch only) evaluates and fine-tunes from a cstorch pre-training checkpoint, and the
cstorch backend evaluates a plain-torch checkpoint, each with the other's validation loss; a run
stopped on one backend resumes on the other with its AdamW state and schedule position, and goes
on as an uninterrupted run on that backend does."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

cstorch = pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

import torch  # noqa: E402

from ebert_modelzoo.config.params import load_params  # noqa: E402
from ebert_modelzoo.training.backends.base import BackendOptions  # noqa: E402
from ebert_modelzoo.training.backends.torch import TorchBackend  # noqa: E402
from ebert_modelzoo.training.checkpoint import capture_rng  # noqa: E402
from ebert_modelzoo.training.tasks import Task  # noqa: E402
from tests.run_cases import data_for, ok, run_dev, run_py, write_params  # noqa: E402


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


def test_plain_torch_refuses_a_cstorch_optimizer_state_that_does_not_fit_with_one_line(pretrained, tmp_path):
    params, data, checkpoint = pretrained
    other = write_params("ebert_tiny.yaml", tmp_path / "other.yaml", data, tmp_path / "resume",
                         {"optimizer": {"AdamW": {"weight_decay": 0.01, "betas": [0.8, 0.999]}}})
    result = run_dev(["CPU", "-p", other, "-m", "train", "--max_steps", 8, "--checkpoint_path", checkpoint],
                     cwd=tmp_path)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert str(checkpoint) in line and "betas [0.9, 0.999] in group 0, this run [0.8, 0.999]" in line
    assert "--load_checkpoint_states model,dataloader,step,rng" in line
    # The states that fit carry over: weights, step, data position, RNGs.
    resumed = ok(run_dev(["CPU", "-p", other, "-m", "train", "--max_steps", 8, "--checkpoint_path", checkpoint,
                          "--load_checkpoint_states", "model,dataloader,step,rng"], cwd=tmp_path))
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


# ------------------------------------------------------------------ resuming on the other backend

RESUME_AT, END = 3, 6
# Both AdamWs divide by sqrt(exp_avg_sq) + eps, torch after bias-correcting exp_avg_sq and cstorch
# before, so with BERT's eps 1e-6 the two backends are slightly different optimisers (0.3% apart in
# the loss after one step of this tiny model, whose gradients are ~1e-5). A negligible eps makes them
# the same algorithm, so that what is compared is the carried state, not the optimisers' definitions.
# What is left is float32 rounding of two torch builds: losses of uninterrupted runs of the two
# backends from the same start agreed to 5e-6 over 6 steps when this was written.
TOLERANCE = 2e-5


def train_losses(model_dir: Path) -> dict[int, float]:
    """Losses by step from train_log.jsonl (full precision; the console rounds to 5 decimals)."""
    lines = (model_dir / "train_log.jsonl").read_text().splitlines()
    return {entry["step"]: entry["loss"] for entry in map(json.loads, lines)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same start (weights, RNGs, data position) trained 6 steps without a break on each
    backend, with checkpoints after step 3: (params, {backend: model_dir})."""
    root = tmp_path_factory.mktemp("resume")
    data = data_for("ebert_tiny.yaml", root / "data", learnable=True, shard_windows=(16, 16))
    schedule = [{"SequentialLR": {"schedulers": [
        {"LinearLR": {"initial_learning_rate": 0.0, "end_learning_rate": 2e-3, "total_iters": 2}},
        {"LinearLR": {"initial_learning_rate": 2e-3, "end_learning_rate": 0.0, "total_iters": 20}}]}}]
    params = write_params("ebert_tiny.yaml", root / "tiny.yaml", data, root / "unused",
                          {"optimizer": {"AdamW": {"weight_decay": 0.01, "eps": 1e-12}}, "schedulers": schedule,
                           "checkpoint": {"steps": RESUME_AT}, "logging": {"log_steps": 1}})
    torch.manual_seed(5)
    model = Task(load_params(params).trainer.init.model).build_model()
    start = root / "start.mdl"
    TorchBackend(BackendOptions()).save_checkpoint(
        {"format_version": 1, "backend": "torch", "step": 0, "model": model.state_dict(), "rng": capture_rng(),
         "data_state": {"epoch": 0, "batch": 0}}, start)
    dirs = {"torch": root / "torch", "cstorch": root / "cstorch"}
    common = ["CPU", "-p", params, "-m", "train", "--max_steps", END, "--checkpoint_path", start]
    ok(run_dev([*common, "--model_dir", dirs["torch"]], cwd=root))
    ok(run_py([*common, "--model_dir", dirs["cstorch"]], cwd=root))
    return params, dirs


@pytest.mark.parametrize("source, target", [("torch", "cstorch"), ("cstorch", "torch")])
def test_a_run_resumes_on_the_other_backend_with_its_optimizer_state(uninterrupted, source, target, tmp_path):
    params, dirs = uninterrupted
    run = run_py if target == "cstorch" else run_dev
    checkpoint = dirs[source] / f"checkpoint_{RESUME_AT}.mdl"
    common = ["CPU", "-p", params, "-m", "train", "--max_steps", END, "--checkpoint_path", checkpoint]
    resumed = ok(run([*common, "--model_dir", tmp_path / "resumed", "--load_checkpoint_states",
                      "model,optimizer,schedulers,grad_scaler,dataloader,step,rng"], cwd=tmp_path))
    assert f"a {source} checkpoint, its states put into the {target} backend's layout" in resumed.stdout
    assert f"training steps {RESUME_AT + 1}..{END}" in resumed.stdout
    reference = train_losses(dirs[target])
    losses = train_losses(tmp_path / "resumed")
    assert sorted(losses) == list(range(RESUME_AT + 1, END + 1))
    for step, loss in losses.items():
        assert abs(loss - reference[step]) < TOLERANCE, (step, loss, reference[step])
    # The check can fail: the same resume with a fresh optimizer state goes elsewhere.
    fresh = ok(run([*common, "--model_dir", tmp_path / "fresh", "--load_checkpoint_states",
                    "model,schedulers,dataloader,step,rng"], cwd=tmp_path))
    assert f"training steps {RESUME_AT + 1}..{END}" in fresh.stdout
    assert abs(train_losses(tmp_path / "fresh")[END] - reference[END]) > 100 * TOLERANCE
