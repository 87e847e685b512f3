"""Cerebras Model Zoo's own Trainer (``cszoo fit / validate / validate_all``, Release 2.10.0 in
the Cerebras venv) trains and evaluates EBERT on CPU: our metrics reach its console output and
TensorBoard; it resumes; and from the same step-0 checkpoint it and our trainer give the same
losses, with checkpoints of either runner resuming in the other as an uninterrupted run goes on.

Dropout is off in these runs: the runners draw dropout masks from the same seeded torch RNG but
in different orders (Model Zoo's Trainer seeds and consumes it around its own callbacks), so with
dropout the losses differ from step 1 by the noise of different masks. The data (order and MLM
masks) comes from the same data processor in both and is identical.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

import torch  # noqa: E402

from ebert_modelzoo.cerebras.registry import modelzoo_installed  # noqa: E402
from ebert_modelzoo.training.checkpoint import read_checkpoint  # noqa: E402
from tests.run_cases import cszoo, data_for, ok, run_dev, run_py, write_params  # noqa: E402

if not modelzoo_installed():
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but cerebras.modelzoo is not installed in the Cerebras venv")
    pytest.skip("Cerebras Model Zoo is not installed", allow_module_level=True)

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

# Measured: 0.0 (bit-identical float32 losses over 6 steps) between Model Zoo's Trainer and our
# trainer on the cstorch CPU backend, both torch 2.4 in this venv.
SAME_VENV_TOLERANCE = 1e-6
# Measured: identical at steps 1-2, then up to 2.1e-5 by step 6 for our plain torch backend in the
# dev venv (torch 2.13: other float32 kernels) against Model Zoo's Trainer (torch 2.4).
DEV_VENV_TOLERANCE = 1e-4
METRIC_LINE = re.compile(r"- (eval/\S+) = (\S+)")
PRETRAIN_KEYS = [f"{kind}_{name}" for kind in ("mlm", "state") for name in ("loss", "accuracy", "perplexity")]


def metric_blocks(output: str) -> list[dict[str, float]]:
    """Each "Evaluation metrics:" block of a Model Zoo log: {eval/<key>: value}."""
    blocks = []
    for chunk in output.split("Evaluation metrics:")[1:]:
        block = {}
        for line in chunk.splitlines()[1:]:
            found = METRIC_LINE.search(line)
            if not found:
                break
            block[found.group(1)] = float(found.group(2))
        blocks.append(block)
    return blocks


def scalars(model_dir: Path, tag: str) -> dict[int, float]:
    """A TensorBoard scalar of Model Zoo's run in model_dir, by step."""
    found = {}
    for events in model_dir.glob("events/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            found.update({event.step: event.value for event in accumulator.Scalars(tag)})
    return found


def our_losses(model_dir: Path) -> dict[int, float]:
    """Our trainer's training losses by step (full precision)."""
    lines = (model_dir / "train_log.jsonl").read_text().splitlines()
    return {record["step"]: record["loss"] for record in map(json.loads, lines)}


def edited(path: Path, dest: Path, **changes) -> Path:
    """A copy of a params file with trainer sections replaced: ``init__loop={...}``, ``fit__ckpt_path=...``."""
    params = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        section, name = key.split("__")
        params["trainer"][section][name] = value
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def output(result) -> str:
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def pretrain(tmp_path_factory):
    """`cszoo fit` of ebert_tiny (dropout off): 4 steps, evaluation (2 batches) at steps 2 and 4,
    checkpoints at 0 (save_initial_checkpoint), 2 and 4. (root, params, model_dir, log)."""
    root = tmp_path_factory.mktemp("modelzoo_trainer")
    data = data_for("ebert_tiny.yaml", root / "data")
    params = write_params("ebert_tiny.yaml", root / "tiny.yaml", data, root / "mz", {
        "loop": {"max_steps": 4, "eval_frequency": 2, "eval_steps": 2},
        "checkpoint": {"steps": 2, "save_initial_checkpoint": True},
        "logging": {"log_steps": 1}, "callbacks": []})
    text = yaml.safe_load(params.read_text())
    text["trainer"]["init"]["model"].update(dropout_rate=0.0, attention_dropout_rate=0.0)
    params.write_text(yaml.safe_dump(text, sort_keys=False))
    log = output(ok(cszoo(["fit", params], cwd=root)))
    return root, params, root / "mz", log


@pytest.fixture(scope="module")
def ours_from_step0(pretrain):
    """Our trainer (cstorch CPU backend) for 6 steps from Model Zoo's step-0 checkpoint."""
    root, params, model_dir, _ = pretrain
    result = ok(run_py(["CPU", "-p", params, "-m", "train", "--max_steps", "6", "-o", root / "ours",
                        "--checkpoint_path", model_dir / "checkpoint_0.mdl", "--load_checkpoint_states", "model"],
                       cwd=root))
    return root / "ours", output(result)


def test_fit_reports_our_pretraining_metrics_to_its_log_and_tensorboard(pretrain):
    _, _, model_dir, log = pretrain
    first, second = metric_blocks(log)
    for block in (first, second):
        assert sorted(block) == sorted(f"eval/{key}" for key in PRETRAIN_KEYS)
        assert block["eval/mlm_perplexity"] == pytest.approx(math.exp(block["eval/mlm_loss"]))
        assert 0 <= block["eval/mlm_accuracy"] <= 1 and 0 <= block["eval/state_accuracy"] <= 1
    assert first["eval/mlm_loss"] != second["eval/mlm_loss"]  # the second evaluation is of new weights
    for key in PRETRAIN_KEYS:
        logged = scalars(model_dir, f"validate_0/eval/{key}")
        assert logged == pytest.approx({2: first[f"eval/{key}"], 4: second[f"eval/{key}"]}, rel=1e-6)
    assert sorted(path.name for path in model_dir.glob("checkpoint_*.mdl")) == [
        "checkpoint_0.mdl", "checkpoint_2.mdl", "checkpoint_4.mdl"]


def test_validate_and_validate_all_report_what_our_trainer_computes(pretrain, tmp_path):
    """`cszoo validate` (the newest checkpoint) equals the fit's last evaluation and our trainer's
    evaluation of Model Zoo's checkpoint; `validate_all` evaluates every checkpoint."""
    root, fit_params, model_dir, log = pretrain
    # Without save_initial_checkpoint, with which Model Zoo's validate also saves the loaded
    # weights (as checkpoint_4_<timestamp>.mdl beside checkpoint_4.mdl).
    params = edited(fit_params, tmp_path / "eval.yaml", init__checkpoint={"steps": 2})
    (validated,) = metric_blocks(output(ok(cszoo(["validate", params], cwd=root))))
    assert validated == metric_blocks(log)[-1]
    ours = ok(run_py(["CPU", "-p", params, "-m", "eval", "-o", tmp_path / "ours",
                      "--checkpoint_path", model_dir / "checkpoint_4.mdl"], cwd=root))
    assert "runner: ebert_modelzoo's trainer (cstorch backend on CPU)" in output(ours)
    # Model Zoo's checkpoint names its step global_step: ours reads it.
    computed = json.loads((tmp_path / "ours" / "eval" / "metrics_step_4.json").read_text())
    for key in PRETRAIN_KEYS:
        assert computed[key] == pytest.approx(validated[f"eval/{key}"], rel=1e-9), key
    log = output(ok(cszoo(["validate_all", params], cwd=root)))
    loaded = [Path(path).name for path in re.findall(r"Loading weights from checkpoint (\S+)", log)]
    assert loaded == ["checkpoint_0.mdl", "checkpoint_2.mdl", "checkpoint_4.mdl"]
    every = metric_blocks(log)
    assert len(every) == 3 and every[-1] == validated, log[-3000:]
    assert len({block["eval/mlm_loss"] for block in every}) == 3


def test_both_runners_give_the_same_losses_from_the_same_step0_checkpoint(pretrain, ours_from_step0):
    _, _, model_dir, _ = pretrain
    ours_dir, log = ours_from_step0
    assert "runner: ebert_modelzoo's trainer (cstorch backend on CPU)" in log
    theirs, ours = scalars(model_dir, "loss"), our_losses(ours_dir)
    assert sorted(theirs) == [1, 2, 3, 4]
    assert max(abs(theirs[step] - ours[step]) for step in theirs) <= SAME_VENV_TOLERANCE
    # Ours honours save_initial_checkpoint too: its checkpoint_0 holds the weights it started from.
    start, saved = (read_checkpoint(folder / "checkpoint_0.mdl") for folder in (model_dir, ours_dir))
    assert saved["step"] == start["step"] == 0
    assert sorted(saved["model"]) == sorted(start["model"])
    assert all(torch.equal(saved["model"][name], start["model"][name]) for name in start["model"])


def test_plain_torch_trainer_follows_modelzoo_from_its_step0_checkpoint(pretrain, tmp_path):
    root, params, model_dir, _ = pretrain
    result = ok(run_dev(["CPU", "-p", params, "-m", "train", "-o", tmp_path / "torch",
                         "--checkpoint_path", model_dir / "checkpoint_0.mdl", "--load_checkpoint_states", "model"],
                        cwd=root))
    assert "runner: ebert_modelzoo's trainer (torch backend on CPU)" in output(result)
    theirs, ours = scalars(model_dir, "loss"), our_losses(tmp_path / "torch")
    assert max(abs(theirs[step] - ours[step]) for step in theirs) <= DEV_VENV_TOLERANCE


def test_checkpoints_resume_across_runners_as_an_uninterrupted_run(pretrain, ours_from_step0, tmp_path):
    """Steps 5-6 after resuming at step 4 (weights, AdamW state, schedule, step, data position)
    equal our uninterrupted 6-step run: Model Zoo from its own checkpoint, Model Zoo from ours,
    ours from Model Zoo's."""
    root, params, model_dir, _ = pretrain
    ours_dir, _ = ours_from_step0
    straight = our_losses(ours_dir)
    six = {"max_steps": 6, "eval_frequency": 6, "eval_steps": 2}

    # Model Zoo autoloads only the checkpoints its checkpoints_index.yaml lists (by absolute
    # path, here the original folder's): the folder is copied with it.
    own = tmp_path / "mz_resumed"
    shutil.copytree(model_dir, own, symlinks=True)
    resumed_params = edited(params, tmp_path / "own.yaml", init__loop=six, init__model_dir=str(own))
    log = output(ok(cszoo(["fit", resumed_params], cwd=root)))
    assert re.search(r'Found latest checkpoint at "\S+/checkpoint_4.mdl"', log)
    assert "Dataloader state found in checkpoint and loaded successfully" in log
    resumed = {step: loss for step, loss in scalars(own, "loss").items() if step > 4}
    assert sorted(resumed) == [5, 6]
    assert max(abs(resumed[step] - straight[step]) for step in resumed) <= SAME_VENV_TOLERANCE

    from_ours = edited(params, tmp_path / "from_ours.yaml", init__loop=six,
                       init__model_dir=str(tmp_path / "mz_from_ours"), fit__ckpt_path=str(ours_dir / "checkpoint_4.mdl"))
    log = output(ok(cszoo(["fit", from_ours], cwd=root)))
    for state in ("Model", "Dataloader", "Optimizer", "Scheduler"):
        assert f"{state} state found in checkpoint and loaded successfully" in log
    resumed = scalars(tmp_path / "mz_from_ours", "loss")
    assert sorted(resumed) == [5, 6]
    assert max(abs(resumed[step] - straight[step]) for step in resumed) <= SAME_VENV_TOLERANCE

    ok(run_py(["CPU", "-p", params, "-m", "train", "--max_steps", "6", "-o", tmp_path / "ours_from_mz",
               "--checkpoint_path", model_dir / "checkpoint_4.mdl"], cwd=root))
    resumed = our_losses(tmp_path / "ours_from_mz")
    assert sorted(resumed) == [5, 6]
    assert max(abs(resumed[step] - straight[step]) for step in resumed) <= SAME_VENV_TOLERANCE


def test_finetuning_reports_per_tf_metrics_as_our_trainer_computes_them(pretrain, tmp_path):
    """`cszoo fit` of ebert_finetune_tiny from the pre-training checkpoint (weights only):
    auROC, auPRC, recall at 10%/50% FDR per TF (model.label_names) and their means."""
    root, _, model_dir, _ = pretrain
    data = data_for("ebert_finetune_tiny.yaml", root / "data")
    params = write_params("ebert_finetune_tiny.yaml", tmp_path / "ft.yaml", data, tmp_path / "ft", {
        "loop": {"max_steps": 2, "eval_frequency": 2, "eval_steps": 2},
        "checkpoint": {"steps": 2, "disable_strict_checkpoint_loading": True},
        "callbacks": [{"LoadCheckpointStates": {"load_checkpoint_states": "model"}}]})
    text = yaml.safe_load(params.read_text())
    labels = text["trainer"]["fit"]["train_dataloader"]["labels"]
    text["trainer"]["init"]["model"]["label_names"] = labels
    text["trainer"]["fit"]["ckpt_path"] = str(model_dir / "checkpoint_4.mdl")
    params.write_text(yaml.safe_dump(text, sort_keys=False))
    (block,) = metric_blocks(output(ok(cszoo(["fit", params], cwd=tmp_path))))
    metrics = ("auroc", "auprc", "recall_at_10_fdr", "recall_at_50_fdr")
    assert sorted(block) == sorted(f"eval/{metric}/{label}" for metric in metrics for label in (*labels, "mean"))
    assert all(0 <= value <= 1 for value in block.values())
    ok(run_py(["CPU", "-p", params, "-m", "eval", "-o", tmp_path / "ours",
               "--checkpoint_path", tmp_path / "ft" / "checkpoint_2.mdl"], cwd=tmp_path))
    computed = json.loads((tmp_path / "ours" / "eval" / "metrics_step_2.json").read_text())
    for key, value in block.items():
        assert computed[key.removeprefix("eval/")] == pytest.approx(value, rel=1e-9), key
