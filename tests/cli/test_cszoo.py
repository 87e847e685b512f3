"""`cszoo` without Model Zoo: real subprocess runs of each subcommand on tiny data, the mapping of
its flags onto run.py, and the model description against models built here."""
from __future__ import annotations

import importlib
import json
import tomllib

import pytest

from ebert_modelzoo.cerebras import cstorch_installed
from ebert_modelzoo.cli.cszoo import build_parser, run_argv
from ebert_modelzoo.config.params import load_params
from ebert_modelzoo.models.ebert import EBertForPreTrainingModel
from tests.run_cases import PARAMS, REPO, cszoo, data_for, write_params

SHORT_RUN = {"loop": {"max_steps": 4, "eval_steps": 1}, "checkpoint": {"steps": 2}, "logging": {"log_steps": 2}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cszoo")
    params = write_params("ebert_tiny.yaml", root / "tiny.yaml", data_for("ebert_tiny.yaml", root),
                          root / "model_dir", SHORT_RUN)
    return root, params


def ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.skipif(cstorch_installed(), reason="the plain torch backend runs only without cerebras.pytorch")
def test_fit_validate_and_validate_all_run_the_trainer(tiny):
    root, params = tiny
    model_dir = root / "model_dir"
    out = ok(cszoo(["fit", params], cwd=root))
    # No --target_device: the params' backend_type (CPU); fit evaluates because val data is set.
    assert "training steps 1..4 on CPU (torch backend)" in out
    assert sorted(p.name for p in model_dir.glob("checkpoint_*.mdl")) == ["checkpoint_2.mdl", "checkpoint_4.mdl"]
    assert json.loads((model_dir / "eval" / "metrics_step_4.json").read_text())["step"] == 4

    out = ok(cszoo(["validate", params], cwd=root))
    assert "eval at step 4:" in out and "training steps" not in out

    out = ok(cszoo(["validate_all", params], cwd=root))
    assert "eval at step 2:" in out and "eval at step 4:" in out
    assert (model_dir / "eval" / "metrics_step_2.json").is_file()


def test_run_flags_map_onto_run_py(tiny):
    _, params = tiny
    args = build_parser().parse_args([
        "fit", str(params), "--target_device", "CSX", "--validate_only", "-o", "out", "--num_csx", "2",
        "--mgmt_address", "host:9000", "--credentials_path", "cert.pem", "--mount_dirs", "/a", "/b",
        "--python_paths", "/c", "--job_labels", "team=x", "--checkpoint_path", "c.mdl",
        "--load_checkpoint_states", "model", "--disable_strict_checkpoint_loading", "--logging", "DEBUG",
    ])
    assert run_argv(args) == [
        "CSX", "--params", str(params), "--mode", "train_and_eval", "--model_dir", "out",
        "--checkpoint_path", "c.mdl", "--load_checkpoint_states", "model", "--logging", "DEBUG",
        "--num_csx", "2", "--mgmt_address", "host:9000", "--credentials_path", "cert.pem",
        "--disable_strict_checkpoint_loading", "--validate_only", "--mount_dirs", "/a", "/b",
        "--python_paths", "/c", "--job_labels", "team=x",
    ]
    assert run_argv(build_parser().parse_args(["validate", str(params)]))[:5] == [
        "CPU", "--params", str(params), "--mode", "eval"]
    assert run_argv(build_parser().parse_args(["validate_all", str(params), "--target_device", "GPU"]))[:5] == [
        "GPU", "--params", str(params), "--mode", "eval_all"]


def test_fit_without_validation_data_only_trains(tmp_path):
    params = load_params(PARAMS / "ebert_tiny.yaml").to_dict()
    del params["trainer"]["fit"]["val_dataloader"]
    path = tmp_path / "train_only.yaml"
    path.write_text(json.dumps(params))
    assert run_argv(build_parser().parse_args(["fit", str(path)]))[4] == "train"


def test_config_validate(tiny, tmp_path):
    root, params = tiny
    assert ok(cszoo(["config", "validate", params], cwd=root)).strip() == (
        f"{params}: valid (model ebert, target CPU)")
    bad = tmp_path / "bad.yaml"
    bad.write_text(params.read_text().replace("num_heads: 2", "num_heads: 2\n      num_head: 2"))
    result = cszoo(["config", "validate", bad], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {bad}: trainer.init.model.num_head: unknown key (did you mean 'num_heads'?)"


def test_a_missing_params_file_is_one_line(tmp_path):
    result = cszoo(["fit", tmp_path / "nope.yaml"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: params file not found"


def test_model_describe_lists_documented_keys_and_counts_parameters(tiny):
    root, params = tiny
    out = ok(cszoo(["model", "describe", "ebert", "--params", params], cwd=root))
    assert out.startswith("ebert: ebert_modelzoo.models.ebert.EBertForPreTrainingModel (config EBertPretrainConfig)")
    assert "  vocab_size: int = required\n      DNA vocabulary size" in out
    assert "  hidden_size: int = 768\n      Width of the encoder." in out
    # Literal and Union keys show the values they take.
    assert "  encoder_nonlinearity: 'gelu' | 'gelu_tanh' | 'relu' = 'gelu'\n" in out
    model = EBertForPreTrainingModel(load_params(params).trainer.init.model)
    expected = sum(p.numel() for p in model.parameters())
    assert f"parameters: {expected:,} ({params})" in out

    out = ok(cszoo(["model", "describe", "ebert"], cwd=root))
    count = int(out.rsplit("parameters: ", 1)[1].split(" ")[0].replace(",", ""))
    assert f"({REPO / 'params' / 'ebert_base.yaml'})" in out
    assert 80_000_000 < count < 130_000_000  # BERT-base size

    out = ok(cszoo(["model", "describe", "ebert_finetune"], cwd=root))
    assert "  num_labels: int = required" in out and "ebert_finetune_base.yaml" in out
    assert "  positive_weight: list[float] | 'auto' | null = None\n" in out


def test_model_list_and_unknown_model(tmp_path):
    assert ok(cszoo(["model", "list"], cwd=tmp_path)).split() == ["ebert", "ebert_finetune"]
    result = cszoo(["model", "describe", "bert"], cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice: 'bert'" in result.stderr


def test_console_script_points_at_main():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["cszoo"].split(":")
    assert getattr(importlib.import_module(module), function).__name__ == "main"
