"""The params schema: every error names its key and file, cross-field rules, the legacy form,
and the shipped params files."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from ebert_modelzoo.config.legacy import convert_legacy
from ebert_modelzoo.config.params import (
    Params,
    apply_overrides,
    load_params,
    params_from_dict,
    parse_checkpoint_states,
)
from ebert_modelzoo.errors import ParamsError
from ebert_modelzoo.training.schedules import learning_rate_at, schedule_phases

PARAMS_DIR = Path(__file__).resolve().parents[2] / "params"
SHIPPED = sorted(PARAMS_DIR.glob("*.yaml"))


def tiny() -> dict[str, Any]:
    return yaml.safe_load((PARAMS_DIR / "ebert_tiny.yaml").read_text())


def finetune_tiny() -> dict[str, Any]:
    return yaml.safe_load((PARAMS_DIR / "ebert_finetune_tiny.yaml").read_text())


def write(tmp_path: Path, data: dict[str, Any], name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def error_of(tmp_path: Path, data: dict[str, Any]) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def mutated(base: Callable[[], dict[str, Any]], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = base()
    change(data)
    return data


def test_shipped_params_cover_the_four_files():
    assert {p.name for p in SHIPPED} >= {
        "ebert_base.yaml", "ebert_tiny.yaml", "ebert_finetune_tiny.yaml", "ebert_finetune_base.yaml"
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_params_validate_and_round_trip(path: Path):
    params = load_params(path)
    assert params_from_dict(params.to_dict()) == params


def test_base_is_bert_base_and_finetune_encoder_matches():
    base = load_params(PARAMS_DIR / "ebert_base.yaml").trainer.init.model
    assert (base.hidden_size, base.num_hidden_layers, base.num_heads, base.filter_size) == (768, 12, 12, 3072)
    for pre, fine in (("ebert_base", "ebert_finetune_base"), ("ebert_tiny", "ebert_finetune_tiny")):
        a = load_params(PARAMS_DIR / f"{pre}.yaml").trainer.init.model
        b = load_params(PARAMS_DIR / f"{fine}.yaml").trainer.init.model
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_heads", "filter_size",
                    "max_position_embeddings", "num_chromatin_states", "num_signal_tracks", "tokens_per_bin"):
            assert getattr(a, key) == getattr(b, key), (pre, fine, key)


def test_base_schedule_is_warmup_then_linear_decay():
    init = load_params(PARAMS_DIR / "ebert_base.yaml").trainer.init
    phases = schedule_phases(init)
    assert learning_rate_at(0, phases) == 0.0
    assert learning_rate_at(5000, phases) == pytest.approx(5e-5)
    assert learning_rate_at(10000, phases) == pytest.approx(1e-4)
    assert learning_rate_at(505000, phases) == pytest.approx(5e-5)
    assert learning_rate_at(1000000, phases) == 0.0
    assert init.optimizer.AdamW.weight_decay == 0.01


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d["trainer"]["init"]["model"].update(hidden_sizee=8), "trainer.init.model.hidden_sizee: unknown key"),
        (lambda d: d["trainer"]["init"]["model"].update(hidden_size="big"), "trainer.init.model.hidden_size: Input should be a valid integer"),
        (lambda d: d["trainer"]["init"]["model"].pop("vocab_size"), "trainer.init.model.vocab_size: required key is missing"),
        (lambda d: d["trainer"]["init"]["model"].update(name="gpt"), "trainer.init.model: Input tag 'gpt' found using 'name'"),
        (lambda d: d["trainer"]["init"]["model"].update(num_heads=3), "trainer.init.model: hidden_size (64) must be divisible by num_heads (3)"),
        (lambda d: d["trainer"]["init"]["optimizer"].update(SGD={}), "trainer.init.optimizer.SGD: unknown key"),
        (lambda d: d["trainer"]["init"]["optimizer"]["AdamW"].update(betas=[0.9, 1.5]), "trainer.init.optimizer.AdamW: betas must be in [0, 1)"),
        (lambda d: d["trainer"]["init"]["schedulers"][0]["SequentialLR"]["schedulers"][0]["LinearLR"].update(total_iters="x"),
         "trainer.init.schedulers[0].SequentialLR.schedulers[0].LinearLR.total_iters: Input should be a valid integer"),
        (lambda d: d["trainer"]["init"]["schedulers"][0]["SequentialLR"]["schedulers"][1].update(CosineLR={}),
         "trainer.init.schedulers[0].SequentialLR.schedulers[1].CosineLR: unknown key"),
        (lambda d: d["trainer"]["init"]["precision"].update(fp16_type="fp8"), "trainer.init.precision.fp16_type: Input should be 'cbfloat16', 'bfloat16' or 'float16'"),
        (lambda d: d["trainer"]["init"]["precision"].update(loss_scaling_factor="auto"), "trainer.init.precision.loss_scaling_factor: must be 'dynamic' or a number > 0"),
        (lambda d: d["trainer"]["init"]["backend"].update(backend_type="TPU"), "trainer.init.backend.backend_type: Input should be 'CPU', 'GPU' or 'CSX'"),
        (lambda d: d["trainer"]["init"]["loop"].pop("max_steps"), "trainer.init.loop.max_steps: required key is missing"),
        # Field constraints (Field(ge=1)) read as a hand-written check, naming every bound of the key.
        (lambda d: d["trainer"]["init"]["loop"].update(eval_frequency=0), "trainer.init.loop: eval_frequency must be >= 1, got 0"),
        (lambda d: d["trainer"]["init"]["model"].update(dropout_rate=1), "trainer.init.model: dropout_rate must be in [0, 1), got 1.0"),
        (lambda d: d["trainer"]["init"]["optimizer"]["AdamW"].update(eps=0), "trainer.init.optimizer.AdamW: eps must be > 0, got 0.0"),
        (lambda d: d["trainer"]["init"].setdefault("checkpoint", {}).update(steps=0), "trainer.init.checkpoint: steps must be >= 1, got 0"),
        (lambda d: d["trainer"]["init"]["schedulers"][0]["SequentialLR"]["schedulers"][0]["LinearLR"].update(total_iters=0),
         "trainer.init.schedulers[0].SequentialLR.schedulers[0].LinearLR: total_iters must be >= 1, got 0"),
        (lambda d: d["trainer"]["init"].update(callbacks=[{"LoadCheckpointStates": {"load_checkpoint_states": "model,foo"}}]),
         "trainer.init.callbacks[0].LoadCheckpointStates.load_checkpoint_states: unknown checkpoint state 'foo'"),
        (lambda d: d["trainer"]["init"]["checkpoint"].update(keep_last=2), "trainer.init.checkpoint.keep_last: unknown key"),
        (lambda d: d["trainer"]["init"]["callbacks"].append({"KeepNChekpoints": {"n": 2}}),
         "trainer.init.callbacks[1]: expected one key, one of KeepNCheckpoints, LoadCheckpointStates"),
        (lambda d: d["trainer"]["init"]["callbacks"].append(None),
         "trainer.init.callbacks[1]: expected one key, one of KeepNCheckpoints, LoadCheckpointStates (got None)"),
        (lambda d: d["trainer"]["init"]["callbacks"].append({"KeepNCheckpoints": {"n": 3}}),
         "trainer.init.callbacks: each callback may appear once; repeated: KeepNCheckpoints"),
        (lambda d: d["trainer"]["init"]["logging"].update(log_step=3), "trainer.init.logging.log_step: unknown key"),
        (lambda d: d["trainer"]["init"].update(sed=3), "trainer.init.sed: unknown key"),
        (lambda d: d["trainer"].update(predict={}), "trainer.predict: unknown key"),
        (lambda d: d["trainer"]["fit"]["train_dataloader"].update(batchsize=3), "trainer.fit.train_dataloader.batchsize: unknown key"),
        (lambda d: d["trainer"]["fit"]["train_dataloader"].update(data_processor="X"),
         "trainer.fit.train_dataloader: Input tag 'X' found using 'data_processor'"),
        (lambda d: d["trainer"]["fit"]["train_dataloader"].update(mask_rate=2.0), "trainer.fit.train_dataloader: mask_rate must be in (0, 1), got 2.0"),
        (lambda d: d["trainer"]["validate"]["val_dataloader"].update(shuffle="often"), "trainer.validate.val_dataloader.shuffle: Input should be a valid boolean"),
        (lambda d: d["trainer"]["validate_all"]["val_dataloaders"].update(batchsize=3), "trainer.validate_all.val_dataloaders[0].batchsize: unknown key"),
        (lambda d: d["trainer"]["init"]["optimizer"]["AdamW"].update(learning_rate=0.1), "trainer.init: give either optimizer.AdamW.learning_rate or schedulers"),
        (lambda d: d["trainer"]["init"].pop("schedulers"), "trainer.init: no learning rate"),
    ],
)
def test_every_error_names_its_key(tmp_path, change, expected):
    assert expected in error_of(tmp_path, mutated(tiny, change))


@pytest.mark.parametrize(
    "base, change, expected",
    [
        (tiny, lambda d: d["trainer"]["init"]["model"].update(max_position_embeddings=128),
         "trainer.init.model.max_position_embeddings (128) is smaller than trainer.fit.train_dataloader.max_sequence_length (256)"),
        (tiny, lambda d: d["trainer"]["validate"].update(
            val_dataloader={**d["trainer"]["validate"]["val_dataloader"], "max_sequence_length": 512}),
         "smaller than trainer.validate.val_dataloader.max_sequence_length (512)"),
        (tiny, lambda d: d["trainer"]["fit"]["train_dataloader"].update(use_signal=False),
         "trainer.fit.train_dataloader.use_signal is false but trainer.init.model.num_signal_tracks is 3"),
        (tiny, lambda d: d["trainer"]["fit"]["val_dataloader"].update(use_chromatin_states=False),
         "trainer.fit.val_dataloader.use_chromatin_states is false but trainer.init.model.num_chromatin_states is 15"),
        (tiny, lambda d: d["trainer"]["fit"]["train_dataloader"].update(use_cell_type=True),
         "trainer.fit.train_dataloader.use_cell_type is true but trainer.init.model.num_cell_types is 0"),
        (tiny, lambda d: d["trainer"]["fit"]["train_dataloader"].update(state_mask_rate=0.0),
         "trainer.fit.train_dataloader.state_mask_rate is 0 but trainer.init.model.state_mlm_loss_weight"),
        (tiny, lambda d: d["trainer"]["fit"]["train_dataloader"].update(data_processor="EBertFinetuningDataProcessor"),
         "trainer.fit.train_dataloader.mask_rate: unknown key"),
        (finetune_tiny, lambda d: d["trainer"]["fit"]["train_dataloader"].update(labels=["CTCF", "NRF1", "REST"]),
         "trainer.init.model.num_labels (4) != number of labels selected in trainer.fit.train_dataloader.labels (3)"),
        (finetune_tiny, lambda d: d["trainer"]["fit"]["val_dataloader"].update(label_level="bin"),
         "trainer.fit.val_dataloader.label_level (bin) != trainer.init.model.head (sequence)"),
        (finetune_tiny, lambda d: d["trainer"]["validate"].update(val_dataloader={
            **{k: v for k, v in d["trainer"]["validate"]["val_dataloader"].items() if k not in ("label_level", "labels")},
            "data_processor": "EBertPretrainingDataProcessor"}),
         "trainer.validate.val_dataloader.data_processor: model 'ebert_finetune' needs EBertFinetuningDataProcessor"),
    ],
)
def test_cross_field_rules_name_both_keys(tmp_path, base, change, expected):
    assert expected in error_of(tmp_path, mutated(base, change))


@pytest.mark.parametrize(
    "base, change, expected",
    [
        (finetune_tiny, lambda d: d["trainer"]["init"]["model"].update(classifier_dropout=1.0),
         "trainer.init.model: classifier_dropout must be in [0, 1), got 1.0"),
        (tiny, lambda d: d["trainer"]["fit"]["train_dataloader"].update(state_mask_rate=-0.1),
         "trainer.fit.train_dataloader: state_mask_rate must be in [0, 1), got -0.1"),
        (tiny, lambda d: d["trainer"]["fit"]["train_dataloader"].update(max_state_predictions=-1),
         "trainer.fit.train_dataloader: max_state_predictions must be >= 0, got -1"),
        (finetune_tiny, lambda d: d["trainer"]["fit"]["train_dataloader"].update(reverse_complement_prob=2.0),
         "trainer.fit.train_dataloader: reverse_complement_prob must be in [0, 1], got 2.0"),
    ],
)
def test_rates_out_of_range_name_the_key(tmp_path, base, change, expected):
    assert expected in error_of(tmp_path, mutated(base, change))


def test_model_and_processor_must_agree(tmp_path):
    data = tiny()
    data["trainer"]["fit"]["train_dataloader"] = copy.deepcopy(finetune_tiny()["trainer"]["fit"]["train_dataloader"])
    data["trainer"]["fit"]["train_dataloader"]["max_sequence_length"] = 256
    assert "trainer.fit.train_dataloader.data_processor: model 'ebert' needs EBertPretrainingDataProcessor" in error_of(tmp_path, data)


def test_yaml_problems_name_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainer:\n  init: [1,\n")
    with pytest.raises(ParamsError, match=rf"{path}:\d+: invalid YAML"):
        load_params(path)
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")


def test_overrides_set_dotted_keys_and_are_validated(tmp_path):
    path = write(tmp_path, tiny())
    params = load_params(path, {"trainer.init.loop.max_steps": 7, "trainer.init.model_dir": "elsewhere"})
    assert params.trainer.init.loop.max_steps == 7 and params.trainer.init.model_dir == "elsewhere"
    with pytest.raises(ParamsError, match="trainer.init.loop.max_steps: Input should be a valid integer"):
        load_params(path, {"trainer.init.loop.max_steps": "many"})
    with pytest.raises(ParamsError, match="cannot override"):
        apply_overrides({"trainer": {"init": 3}}, {"trainer.init.seed": 1})


def test_checkpoint_states():
    assert parse_checkpoint_states("all") == ("model", "optimizer", "schedulers", "grad_scaler", "dataloader", "step", "rng")
    assert parse_checkpoint_states("model, lr_scheduler") == ("model", "schedulers")
    with pytest.raises(ValueError, match="empty"):
        parse_checkpoint_states(" , ")


# ----------------------------------------------------------------------------- legacy form

LEGACY = {
    "train_input": {
        "data_processor": "EBertPretrainingDataProcessor", "data_dir": "./demo_output/data/pretraining/train",
        "batch_size": 16, "max_sequence_length": 256, "max_predictions_per_seq": 40,
    },
    "eval_input": {
        "data_processor": "EBertPretrainingDataProcessor", "data_dir": "./demo_output/data/pretraining/validation",
        "batch_size": 16, "shuffle": False, "max_sequence_length": 256, "max_predictions_per_seq": 40,
    },
    "model": {
        "vocab_size": 262, "tokens_per_bin": 50, "hidden_size": 64, "num_hidden_layers": 2, "num_heads": 2,
        "filter_size": 256, "max_position_embeddings": 256, "num_chromatin_states": 15, "num_signal_tracks": 4,
        "mixed_precision": False,
    },
    "optimizer": {
        "optimizer_type": "AdamW", "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-6,
        "max_gradient_norm": 1.0, "disable_lr_steps_reset": True,
        "learning_rate": [
            {"scheduler": "Linear", "initial_learning_rate": 0.0, "end_learning_rate": 1e-3, "total_iters": 150},
            {"scheduler": "Linear", "initial_learning_rate": 1e-3, "end_learning_rate": 0.0, "total_iters": 1350},
        ],
    },
    "runconfig": {
        "max_steps": 1500, "eval_frequency": 750, "checkpoint_steps": 750, "keep_checkpoint_max": 2,
        "log_steps": 10, "model_dir": "./demo_output/runs/pretrain_dna_epigenome", "seed": 1,
    },
}


def test_legacy_form_converts_to_the_equivalent_trainer_form(tmp_path):
    legacy = load_params(write(tmp_path, LEGACY, "legacy.yaml"))
    init = legacy.trainer.init
    assert init.model.name == "ebert"  # inferred from the data processor
    assert init.optimizer.AdamW.betas == (0.9, 0.999) and init.optimizer.AdamW.eps == 1e-6
    assert init.precision.max_gradient_norm == 1.0 and init.precision.enabled is False
    assert (init.loop.max_steps, init.loop.eval_frequency) == (1500, 750)
    assert (init.checkpoint.steps, init.keep_last, init.logging.log_steps) == (750, 2, 10)
    assert schedule_phases(init) == schedule_phases(load_params(PARAMS_DIR / "ebert_tiny.yaml").trainer.init)
    assert legacy.trainer.fit.val_dataloader == legacy.trainer.validate_.val_dataloader
    # round trip: the converted params written in trainer form load back to the same Params
    again = load_params(write(tmp_path, legacy.to_dict(), "trainer.yaml"))
    assert again == legacy
    assert isinstance(again, Params)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d["runconfig"].update(save_summary_steps=5), "runconfig.save_summary_steps: unknown key"),
        (lambda d: d["optimizer"].update(optimizer_type="SGD"), "optimizer.optimizer_type: only AdamW is supported"),
        (lambda d: d["optimizer"].update(momentum=0.9), "optimizer.momentum: unknown key"),
        (lambda d: d["optimizer"]["learning_rate"][1].update(scheduler="Cosine"), "optimizer.learning_rate[1].scheduler: only Linear"),
        (lambda d: d.update(train_inputs={}), "train_inputs: unknown key"),
        (lambda d: d["model"].update(hidden_sizee=3), "trainer.init.model.hidden_sizee: unknown key"),
    ],
)
def test_legacy_errors_name_the_key(tmp_path, change, expected):
    data = copy.deepcopy(LEGACY)
    change(data)
    assert expected in error_of(tmp_path, data)


def test_legacy_constant_learning_rate():
    data = copy.deepcopy(LEGACY)
    data["optimizer"]["learning_rate"] = 3e-4
    params = params_from_dict(convert_legacy(data))
    assert params.trainer.init.optimizer.AdamW.learning_rate == 3e-4 and params.trainer.init.schedulers is None
