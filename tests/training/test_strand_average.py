"""strand_average: evaluation scores every sample on both DNA strands and averages the logits
(real shards, a model fine-tuned by run.py, the trainer's own evaluation)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ebert_modelzoo.config.base import updated
from ebert_modelzoo.config.params import load_params
from ebert_modelzoo.evaluation.predict import predict
from ebert_modelzoo.training.backends import BackendOptions, select_backend
from ebert_modelzoo.training.loop import Trainer

from tests.data.split_builder import build_split

from .fixtures import LABELS, STATES, TRACKS, finetune_params, run_py, write_params

VALIDATE = "trainer.validate.val_dataloader"


def tuned(root: Path, data: dict[str, Path], head: str) -> Path:
    """Params file of a 6-step fine-tuning run (``head`` sequence or bin) that run.py trained."""
    if head == "bin":  # the shared splits have window labels only
        data = {"fine_train": root / "train", "fine_val": root / "validation"}
        build_split(data["fine_train"], seed=2, tracks=TRACKS, num_states=STATES, labels=LABELS, bin_labels=True)
        build_split(data["fine_val"], shard_windows=(12,), seed=3, tracks=TRACKS, num_states=STATES, labels=LABELS,
                    cell_types=("GM12878", "K562"), bin_labels=True)
    params = finetune_params(data, root / "model")
    params["trainer"]["init"]["model"]["head"] = head
    for section in (params["trainer"]["fit"]["train_dataloader"], params["trainer"]["fit"]["val_dataloader"]):
        section["label_level"] = head
    params["trainer"]["validate"]["val_dataloader"] = params["trainer"]["fit"]["val_dataloader"]
    path = write_params(root / "p.yaml", params)
    run_py("CPU", "--params", str(path), "--mode", "train")
    return path


@pytest.fixture(scope="module")
def sequence_run(tmp_path_factory, data) -> Path:
    return tuned(tmp_path_factory.mktemp("sequence"), data, "sequence")


def eval_logits(params_file: Path, **loader: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Every validation batch's logits (in order) and the metrics of the trainer's evaluation of
    the run's last checkpoint, with ``loader`` changed in the validate dataloader."""
    params = load_params(params_file)
    model_dir = Path(params.trainer.init.model_dir)
    backend = select_backend(BackendOptions(target="CPU", model_dir=model_dir))
    found: list[np.ndarray] = []
    try:
        trainer = Trainer(params, backend, params_file, model_dir)
        checkpoint, state = trainer.newest_valid_checkpoint()
        trainer.load(checkpoint, ("model", "step"), strict=True, state=state)
        loader_cfg = updated(dict(params.dataloaders())[VALIDATE], **loader)
        metrics = trainer.evaluate(loader_cfg, None, VALIDATE,
                                   on_batch=lambda outputs, batch: found.append(outputs.logits.detach().numpy()))
    finally:
        backend.close()
    return np.concatenate(found), metrics


@pytest.mark.parametrize("head", ["sequence", "bin"])
def test_averaged_logits_are_the_mean_of_both_strands(tmp_path, data, sequence_run, head):
    params_file = sequence_run if head == "sequence" else tuned(tmp_path, data, head)
    forward, forward_metrics = eval_logits(params_file)
    other, other_metrics = eval_logits(params_file, reverse_complement_prob=1.0)
    averaged, metrics = eval_logits(params_file, strand_average=True)
    assert not np.allclose(forward, other)  # the model does see which strand it reads
    if head == "bin":  # the other strand's bin n is the forward bin N - 1 - n
        other = other[:, ::-1]
    np.testing.assert_allclose(averaged, (forward + other) / 2, rtol=1e-5, atol=1e-6)
    assert metrics["loss"] == pytest.approx((forward_metrics["loss"] + other_metrics["loss"]) / 2, rel=1e-5)


def test_run_py_eval_and_predict_read_strand_average_from_the_params(tmp_path, sequence_run):
    params = load_params(sequence_run)
    both = write_params(tmp_path / "both.yaml", _with_strand_average(sequence_run))
    run_py("CPU", "--params", str(both), "--mode", "eval")
    step = json.loads(sorted((Path(params.trainer.init.model_dir) / "eval").glob("metrics_step_*.json"))[-1].read_text())
    forward = predict(params, sequence_run)
    averaged = predict(load_params(both), both)
    assert step["auroc/mean"] == pytest.approx(averaged.metrics["auroc/mean"])
    assert step["loss"] == pytest.approx(averaged.metrics["loss"])
    assert step["auroc/mean"] != pytest.approx(forward.metrics["auroc/mean"])
    assert not np.allclose(averaged.scores, forward.scores)


def _with_strand_average(params_file: Path) -> dict[str, Any]:
    raw = yaml.safe_load(params_file.read_text())
    raw["trainer"]["validate"]["val_dataloader"] = {**raw["trainer"]["validate"]["val_dataloader"], "strand_average": True}
    return raw


def test_strand_average_with_reverse_complement_prob_names_both_keys(tmp_path, sequence_run):
    raw = _with_strand_average(sequence_run)
    raw["trainer"]["validate"]["val_dataloader"]["reverse_complement_prob"] = 0.5
    done = run_py("CPU", "--params", str(write_params(tmp_path / "bad.yaml", raw)), "--mode", "eval", check=2)
    line = done.stderr.strip().splitlines()[-1]
    assert "trainer.validate.val_dataloader" in line and "strand_average" in line and "reverse_complement_prob" in line
