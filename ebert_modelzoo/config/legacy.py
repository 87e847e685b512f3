"""Model Zoo's legacy flat params form (``train_input``, ``eval_input``, ``model``, ``optimizer``,
``runconfig`` at the top) converted to the trainer form that config/params.py validates.

Unknown legacy keys are one-line ParamsErrors naming the file and the key path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ebert_modelzoo.config.data import PROCESSOR_OF_MODEL
from ebert_modelzoo.errors import ParamsError

_LEGACY_TOP = ("train_input", "eval_input", "model", "optimizer", "runconfig")
# runconfig key -> (trainer.init section, key)
_LEGACY_RUNCONFIG = {
    "max_steps": ("loop", "max_steps"),
    "eval_steps": ("loop", "eval_steps"),
    "eval_frequency": ("loop", "eval_frequency"),
    "checkpoint_steps": ("checkpoint", "steps"),
    "keep_checkpoint_max": ("callbacks", "KeepNCheckpoints.n"),
    "max_checkpoints": ("callbacks", "KeepNCheckpoints.n"),
    "autoload_last_checkpoint": ("checkpoint", "autoload_last_checkpoint"),
    "load_checkpoint_states": ("callbacks", "LoadCheckpointStates.load_checkpoint_states"),
    "disable_strict_checkpoint_loading": ("checkpoint", "disable_strict_checkpoint_loading"),
    "log_steps": ("logging", "log_steps"),
    "model_dir": (None, "model_dir"),
    "seed": (None, "seed"),
    "target_device": ("backend", "backend_type"),
    "checkpoint_path": ("fit", "ckpt_path"),
}
_LEGACY_OPTIMIZER_ADAMW = ("weight_decay", "betas", "eps", "correct_bias")
_LEGACY_PRECISION_OPTIMIZER = ("loss_scaling_factor", "max_gradient_norm")
_LEGACY_PRECISION_MODEL = {"mixed_precision": "enabled", "fp16_type": "fp16_type"}


def is_legacy(data: Mapping[str, Any]) -> bool:
    """True for the flat form (train_input/eval_input/model/optimizer/runconfig at the top)."""
    return "trainer" not in data and any(key in data for key in _LEGACY_TOP)


def _legacy_schedule(value: Any, where: str) -> list[dict[str, Any]]:
    """Legacy `learning_rate: [{scheduler: Linear, ...}, ...]` -> trainer-form `schedulers`."""
    phases = value if isinstance(value, list) else [value]
    items = []
    for i, phase in enumerate(phases):
        path = f"{where}[{i}]" if isinstance(value, list) else where
        if not isinstance(phase, dict):
            raise ParamsError(f"{path}: expected a mapping, got {phase!r}")
        phase = dict(phase)
        kind = phase.pop("scheduler", None)
        if kind not in ("Linear", "LinearLR"):
            raise ParamsError(f"{path}.scheduler: only Linear is supported, got {kind!r}")
        items.append({"LinearLR": phase})
    return [{"SequentialLR": {"schedulers": items}}]


def convert_legacy(data: Mapping[str, Any], source: str | Path | None = None) -> dict[str, Any]:
    """Convert the flat form to the trainer form; unknown legacy keys are errors naming their path."""
    where = f"{source}: " if source else ""
    for key in data:
        if key not in _LEGACY_TOP:
            raise ParamsError(f"{where}{key}: unknown key (legacy form takes {', '.join(_LEGACY_TOP)})")
        if data[key] is not None and not isinstance(data[key], Mapping):
            raise ParamsError(f"{where}{key}: expected a mapping, got {type(data[key]).__name__}")
    init: dict[str, Any] = {}
    trainer: dict[str, Any] = {"init": init}

    def section(name: str) -> dict[str, Any]:
        if name in ("fit",):
            return trainer.setdefault(name, {})
        return init.setdefault(name, {})

    model = dict(data.get("model") or {})
    precision = {}
    for old, new in _LEGACY_PRECISION_MODEL.items():
        if old in model:
            precision[new] = model.pop(old)
    optimizer = dict(data.get("optimizer") or {})
    for key in _LEGACY_PRECISION_OPTIMIZER:
        if key in optimizer:
            precision[key] = optimizer.pop(key)
    if precision:
        init["precision"] = precision

    train_input, eval_input = data.get("train_input"), data.get("eval_input")
    if "name" not in model:
        processor = (train_input or eval_input or {}).get("data_processor")
        names = {proc: name for name, proc in PROCESSOR_OF_MODEL.items()}
        if isinstance(processor, str) and processor in names:
            model["name"] = names[processor]
    init["model"] = model

    optimizer_type = optimizer.pop("optimizer_type", "AdamW")
    if optimizer_type != "AdamW":
        raise ParamsError(f"{where}optimizer.optimizer_type: only AdamW is supported, got {optimizer_type!r}")
    adamw: dict[str, Any] = {}
    if "learning_rate" in optimizer:
        lr = optimizer.pop("learning_rate")
        if isinstance(lr, (int, float)):
            adamw["learning_rate"] = lr
        else:
            init["schedulers"] = _legacy_schedule(lr, f"{where}optimizer.learning_rate")
    if "beta1" in optimizer or "beta2" in optimizer:
        adamw["betas"] = [optimizer.pop("beta1", 0.9), optimizer.pop("beta2", 0.999)]
    if "epsilon" in optimizer:
        adamw["eps"] = optimizer.pop("epsilon")
    for key in _LEGACY_OPTIMIZER_ADAMW:
        if key in optimizer:
            adamw[key] = optimizer.pop(key)
    optimizer.pop("disable_lr_steps_reset", None)  # always the case here: steps never reset
    for key in optimizer:
        raise ParamsError(f"{where}optimizer.{key}: unknown key")
    init["optimizer"] = {"AdamW": adamw}

    for key, value in (data.get("runconfig") or {}).items():
        if key not in _LEGACY_RUNCONFIG:
            raise ParamsError(f"{where}runconfig.{key}: unknown key")
        target, name = _LEGACY_RUNCONFIG[key]
        if target == "callbacks":
            callback, arg = name.split(".")
            init.setdefault("callbacks", []).append({callback: {arg: value}})
        else:
            (init if target is None else section(target))[name] = value

    if train_input is not None:
        fit = section("fit")
        fit["train_dataloader"] = train_input
        if eval_input is not None:
            fit["val_dataloader"] = eval_input
    if eval_input is not None:
        trainer["validate"] = {"val_dataloader": eval_input}
        trainer["validate_all"] = {"val_dataloaders": eval_input}
    return {"trainer": trainer}
