"""The params file: a strict schema of Model Zoo's "trainer" form, cross-field checks, and
``load_params`` (used by run.py and cszoo), which converts the legacy flat form first
(config/legacy.py).

Trainer form::

    trainer:
      init: {backend, model_dir, seed, model, optimizer, schedulers, precision, loop, checkpoint,
             logging}
      fit: {train_dataloader, val_dataloader, ckpt_path}
      validate: {val_dataloader, ckpt_path}
      validate_all: {val_dataloaders, ckpt_paths}

Every error is a one-line ParamsError naming the file and the dotted key path.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from ebert_modelzoo.config.base import StrictConfig, parse_section, read_yaml
from ebert_modelzoo.config.data import (PROCESSOR_OF_MODEL, FinetuningDataProcessorConfig,
                                        PretrainingDataProcessorConfig)
from ebert_modelzoo.config.legacy import convert_legacy, is_legacy
from ebert_modelzoo.config.model import EBertFinetuneConfig, EBertPretrainConfig
from ebert_modelzoo.errors import ParamsError

ModelConfig = Annotated[Union[EBertPretrainConfig, EBertFinetuneConfig], Field(discriminator="name")]
DataLoaderSection = Annotated[
    Union[PretrainingDataProcessorConfig, FinetuningDataProcessorConfig],
    Field(discriminator="data_processor"),
]

# Union member tags pydantic puts into error locations; left out of the key paths we print.
_UNION_TAGS = ("ebert", "ebert_finetune", "EBertPretrainingDataProcessor", "EBertFinetuningDataProcessor")


class BackendConfig(StrictConfig):
    """Where the run executes."""

    backend_type: Literal["CPU", "GPU", "CSX"] = "CPU"
    """CPU, GPU (CUDA, torchrun for several) or CSX (a Cerebras system, through cerebras.pytorch)."""


class AdamWConfig(StrictConfig):
    """torch.optim.AdamW / cstorch.optim.AdamW settings."""

    learning_rate: Optional[float] = Field(None, ge=0)
    """Constant learning rate; leave out when `schedulers` sets it."""
    weight_decay: float = Field(0.01, ge=0)
    """Decoupled weight decay; never applied to biases and LayerNorm weights."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam beta1, beta2."""
    eps: float = Field(1e-6, gt=0)
    """Adam epsilon (BERT's 1e-6)."""
    correct_bias: bool = True
    """Adam bias correction (BERT's original optimizer had none; torch's AdamW always has it)."""

    @model_validator(mode="after")
    def _check(self) -> "AdamWConfig":
        # Hand-written: the error names the pair, as the YAML writes it.
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1), got {list(self.betas)}")
        return self


class OptimizerConfig(StrictConfig):
    """One key naming the optimizer (Model Zoo's form)."""

    AdamW: AdamWConfig
    """AdamW, the BERT optimizer."""


class LinearLRConfig(StrictConfig):
    """Learning rate moving linearly from `initial_learning_rate` to `end_learning_rate`."""

    initial_learning_rate: float = Field(ge=0)
    """Learning rate at the first step of this phase."""
    end_learning_rate: float = Field(ge=0)
    """Learning rate reached after `total_iters` steps (and kept after them)."""
    total_iters: int = Field(ge=1)
    """Length of this phase in steps."""


class LinearLRItem(StrictConfig):
    """`- LinearLR: {...}`"""

    LinearLR: LinearLRConfig


class SequentialLRConfig(StrictConfig):
    """Phases run one after the other (e.g. linear warmup from 0, then linear decay)."""

    schedulers: list[LinearLRItem]
    """The phases, in order; each starts where the previous one's total_iters end."""

    @model_validator(mode="after")
    def _check(self) -> "SequentialLRConfig":
        if not self.schedulers:
            raise ValueError("schedulers must hold at least one LinearLR")
        return self


class SequentialLRItem(StrictConfig):
    """`- SequentialLR: {schedulers: [...]}`"""

    SequentialLR: SequentialLRConfig


def _scheduler_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "[SequentialLR]" if "SequentialLR" in value else "[LinearLR]"
    return "[SequentialLR]" if isinstance(value, SequentialLRItem) else "[LinearLR]"


SchedulerItem = Annotated[
    # Tags in brackets are left out of error paths (config/base.py), keeping the YAML's own keys.
    Union[Annotated[SequentialLRItem, Tag("[SequentialLR]")], Annotated[LinearLRItem, Tag("[LinearLR]")]],
    Discriminator(_scheduler_kind),
]


class PrecisionConfig(StrictConfig):
    """Mixed precision and gradient handling."""

    enabled: bool = False
    """Run matmuls in `fp16_type` (weights and optimizer state stay float32)."""
    fp16_type: Literal["cbfloat16", "bfloat16", "float16"] = "bfloat16"
    """Half type: cbfloat16 exists only on CSX (plain torch runs it as bfloat16)."""
    loss_scaling_factor: Union[float, str] = 1.0
    """Loss scale for float16/cbfloat16: "dynamic" or a constant (plain torch skips a step whose
    gradients overflow and halves the constant then). bfloat16 needs none on plain torch."""
    max_gradient_norm: Optional[float] = Field(None, gt=0)
    """Clip the global gradient norm to this value; null = no clipping."""

    @field_validator("loss_scaling_factor")
    @classmethod
    def _check_scale(cls, value: Union[float, str]) -> Union[float, str]:
        if value == "dynamic" or (isinstance(value, float) and value > 0):
            return value
        raise ValueError(f"must be 'dynamic' or a number > 0, got {value!r}")


class LoopConfig(StrictConfig):
    """How long to train and how often to evaluate."""

    max_steps: int = Field(ge=1)
    """Total optimizer steps of the run (a resumed run stops at the same total)."""
    eval_frequency: Optional[int] = Field(None, ge=1)
    """Evaluate every this many steps in train_and_eval mode (null = only at the end)."""
    eval_steps: Optional[int] = Field(None, ge=1)
    """Batches per evaluation (null = one pass over the validation data)."""


CHECKPOINT_STATES = ("model", "optimizer", "schedulers", "grad_scaler", "dataloader", "step", "rng")


def parse_checkpoint_states(value: str) -> tuple[str, ...]:
    """`all` or a comma-separated subset of CHECKPOINT_STATES (Model Zoo's `lr_scheduler` accepted)."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    if names == ["all"]:
        return CHECKPOINT_STATES
    aliases = {"lr_scheduler": "schedulers", "dataloader_state": "dataloader"}
    states = []
    for name in names:
        name = aliases.get(name, name)
        if name not in CHECKPOINT_STATES:
            raise ValueError(
                f"unknown checkpoint state {name!r}; choose 'all' or some of {', '.join(CHECKPOINT_STATES)}"
            )
        states.append(name)
    if not states:
        raise ValueError("load_checkpoint_states is empty")
    return tuple(states)


class CheckpointConfig(StrictConfig):
    """When checkpoints are written and how they are loaded (Model Zoo's ``Checkpoint`` keys;
    pruning and the states to load are the ``callbacks`` KeepNCheckpoints and LoadCheckpointStates)."""

    steps: Optional[int] = Field(None, ge=1)
    """Write a checkpoint every this many steps (the last step is always saved); null = last only."""
    autoload_last_checkpoint: bool = True
    """Resume from the newest checkpoint in model_dir when no checkpoint path is given."""
    disable_strict_checkpoint_loading: bool = False
    """Allow missing/unexpected model weights (e.g. new fine-tuning heads on a pre-trained encoder)."""
    save_initial_checkpoint: bool = False
    """Also write checkpoint_0.mdl, the weights before the first step (a fresh run only): a common
    starting point for runs compared across runners (ours, Model Zoo's Trainer)."""


class KeepNCheckpointsConfig(StrictConfig):
    """Checkpoint pruning (Model Zoo's ``KeepNCheckpoints`` callback)."""

    n: Optional[int] = Field(None, ge=1)
    """Keep only the newest n checkpoints in model_dir; null = keep all."""


class LoadCheckpointStatesConfig(StrictConfig):
    """Which states a loaded checkpoint restores (Model Zoo's ``LoadCheckpointStates`` callback)."""

    load_checkpoint_states: str = "all"
    """Comma-separated states to load: all, or some of model,optimizer,schedulers,grad_scaler,
    dataloader,step,rng."""

    @field_validator("load_checkpoint_states")
    @classmethod
    def _check_states(cls, value: str) -> str:
        parse_checkpoint_states(value)
        return value


class KeepNCheckpointsItem(StrictConfig):
    """`- KeepNCheckpoints: {n: ...}`"""

    KeepNCheckpoints: KeepNCheckpointsConfig


class LoadCheckpointStatesItem(StrictConfig):
    """`- LoadCheckpointStates: {load_checkpoint_states: ...}`"""

    LoadCheckpointStates: LoadCheckpointStatesConfig


def _callback_kind(value: Any) -> str:
    keys = list(value) if isinstance(value, dict) else list(getattr(type(value), "model_fields", ()))
    return f"[{keys[0]}]" if len(keys) == 1 and keys[0] in _CALLBACKS else "[unknown]"


_CALLBACKS = ("KeepNCheckpoints", "LoadCheckpointStates")

CallbackItem = Annotated[
    # Model Zoo's callbacks this trainer implements; tags in brackets stay out of error paths.
    Union[Annotated[KeepNCheckpointsItem, Tag("[KeepNCheckpoints]")],
          Annotated[LoadCheckpointStatesItem, Tag("[LoadCheckpointStates]")]],
    Discriminator(_callback_kind, custom_error_type="unknown_callback",
                  custom_error_message=f"expected one key, one of {', '.join(_CALLBACKS)}"),
]


class LoggingConfig(StrictConfig):
    """Console and TensorBoard logging."""

    log_steps: int = Field(50, ge=1)
    """Log loss, learning rate and throughput every this many steps."""


class InitConfig(StrictConfig):
    """`trainer.init`: everything that is fixed for the whole run."""

    backend: BackendConfig = Field(default_factory=BackendConfig)
    """Target device."""
    model_dir: str = "./model_dir"
    """Checkpoints, TensorBoard events and metrics go here."""
    seed: int = 1
    """Seeds torch, numpy and python RNGs (initial weights, dropout)."""
    model: ModelConfig
    """The model, selected by `name`."""
    optimizer: OptimizerConfig
    """The optimizer, one key naming it."""
    schedulers: Optional[list[SchedulerItem]] = None
    """Learning-rate schedule; null = the optimizer's constant learning_rate."""
    precision: PrecisionConfig = Field(default_factory=PrecisionConfig)
    """Mixed precision, loss scaling, gradient clipping."""
    loop: LoopConfig
    """Steps and evaluation cadence."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """Checkpoint cadence and loading."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Logging cadence."""
    callbacks: list[CallbackItem] = Field(default_factory=list)
    """Model Zoo callbacks: KeepNCheckpoints (pruning), LoadCheckpointStates (states to load)."""

    @property
    def keep_last(self) -> Optional[int]:
        """KeepNCheckpoints' n: how many checkpoints to keep (None = all)."""
        kept = [item.KeepNCheckpoints.n for item in self.callbacks if isinstance(item, KeepNCheckpointsItem)]
        return kept[0] if kept else None

    @property
    def load_checkpoint_states(self) -> str:
        """LoadCheckpointStates' states ("all" without it)."""
        states = [item.LoadCheckpointStates.load_checkpoint_states for item in self.callbacks
                  if isinstance(item, LoadCheckpointStatesItem)]
        return states[0] if states else "all"

    @field_validator("callbacks")
    @classmethod
    def _one_of_each(cls, items: list[Any]) -> list[Any]:
        kinds = [type(item).__name__ for item in items]
        repeated = sorted({kind for kind in kinds if kinds.count(kind) > 1})
        if repeated:
            raise ValueError(f"each callback may appear once; repeated: {', '.join(k[:-4] for k in repeated)}")
        return items

    @model_validator(mode="after")
    def _check_learning_rate(self) -> "InitConfig":
        has_lr = self.optimizer.AdamW.learning_rate is not None
        if has_lr and self.schedulers:
            raise ValueError("give either optimizer.AdamW.learning_rate or schedulers, not both")
        if not has_lr and not self.schedulers:
            raise ValueError("no learning rate: set optimizer.AdamW.learning_rate or schedulers")
        if self.schedulers is not None and len(self.schedulers) != 1:
            raise ValueError(f"schedulers must hold exactly one entry, got {len(self.schedulers)}")
        return self


class FitConfig(StrictConfig):
    """`trainer.fit`: training (and in-training evaluation) data."""

    train_dataloader: DataLoaderSection
    """Training data."""
    val_dataloader: Optional[DataLoaderSection] = None
    """Validation data for train_and_eval."""
    ckpt_path: Optional[str] = None
    """Checkpoint to start from (e.g. a pre-training checkpoint for fine-tuning)."""


class ValidateConfig(StrictConfig):
    """`trainer.validate`: one evaluation run."""

    val_dataloader: DataLoaderSection
    """Evaluation data."""
    ckpt_path: Optional[str] = None
    """Checkpoint to evaluate (default: the newest in model_dir)."""


class ValidateAllConfig(StrictConfig):
    """`trainer.validate_all`: evaluate every checkpoint in model_dir."""

    val_dataloaders: list[DataLoaderSection]
    """Evaluation data (one section or a list of them)."""
    ckpt_paths: Optional[list[str]] = None
    """Checkpoints to evaluate (default: all in model_dir, in step order)."""

    @field_validator("val_dataloaders", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class TrainerConfig(StrictConfig):
    """`trainer`"""

    init: InitConfig
    """Model, optimizer, schedule, precision, loop, checkpoints, logging."""
    fit: Optional[FitConfig] = None
    """Training data (modes train and train_and_eval)."""
    validate_: Optional[ValidateConfig] = Field(default=None, alias="validate")
    """Evaluation data (mode eval); `validate` in the YAML (the name is taken by pydantic)."""
    validate_all: Optional[ValidateAllConfig] = None
    """Evaluation data of every checkpoint (mode eval_all)."""


class Params(StrictConfig):
    """A whole params file."""

    trainer: TrainerConfig

    def dataloaders(self) -> list[tuple[str, Any]]:
        """Every dataloader section with its dotted key path."""
        found: list[tuple[str, Any]] = []
        fit, validate, validate_all = self.trainer.fit, self.trainer.validate_, self.trainer.validate_all
        if fit is not None:
            found.append(("trainer.fit.train_dataloader", fit.train_dataloader))
            if fit.val_dataloader is not None:
                found.append(("trainer.fit.val_dataloader", fit.val_dataloader))
        if validate is not None:
            found.append(("trainer.validate.val_dataloader", validate.val_dataloader))
        if validate_all is not None:
            found += [(f"trainer.validate_all.val_dataloaders[{i}]", d)
                      for i, d in enumerate(validate_all.val_dataloaders)]
        return found

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what a checkpoint stores and what re-validates to the same Params)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


# ----------------------------------------------------------------------------- loading


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``trainer.init.loop.max_steps``) in a copy of ``data``; mappings are created."""
    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ParamsError(f"{dotted}: cannot override, {part} is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


def check_params(params: Params, source: str | Path | None = None) -> None:
    """Cross-field rules that need more than one section; errors name both keys."""
    where = f"{source}: " if source else ""
    model = params.trainer.init.model
    for path, loader in params.dataloaders():
        expected = PROCESSOR_OF_MODEL[model.name]
        if loader.data_processor != expected:
            raise ParamsError(
                f"{where}{path}.data_processor: model {model.name!r} needs {expected}, got {loader.data_processor}"
            )
        if model.max_position_embeddings < loader.max_sequence_length:
            raise ParamsError(
                f"{where}trainer.init.model.max_position_embeddings ({model.max_position_embeddings}) is "
                f"smaller than {path}.max_sequence_length ({loader.max_sequence_length})"
            )
        if model.num_chromatin_states > 0 and not loader.use_chromatin_states:
            raise ParamsError(
                f"{where}{path}.use_chromatin_states is false but trainer.init.model.num_chromatin_states "
                f"is {model.num_chromatin_states}; set it to 0 for a model without state input"
            )
        if model.num_signal_tracks > 0 and not loader.use_signal:
            raise ParamsError(
                f"{where}{path}.use_signal is false but trainer.init.model.num_signal_tracks is "
                f"{model.num_signal_tracks}; set it to 0 for a model without signal input"
            )
        if (model.num_motif_tracks > 0) != (loader.motif_file is not None):
            raise ParamsError(
                f"{where}{path}.motif_file is {loader.motif_file} but trainer.init.model.num_motif_tracks is "
                f"{model.num_motif_tracks}; motif tracks need both"
            )
        if loader.use_cell_type != (model.num_cell_types > 0):
            raise ParamsError(
                f"{where}{path}.use_cell_type is {str(loader.use_cell_type).lower()} but "
                f"trainer.init.model.num_cell_types is {model.num_cell_types}; "
                "a cell-type input needs both"
            )
        if model.name == "ebert_finetune":
            if loader.labels is not None and len(loader.labels) != model.num_labels:
                raise ParamsError(
                    f"{where}trainer.init.model.num_labels ({model.num_labels}) != number of labels "
                    f"selected in {path}.labels ({len(loader.labels)})"
                )
            if loader.label_level != model.head:
                raise ParamsError(
                    f"{where}{path}.label_level ({loader.label_level}) != trainer.init.model.head ({model.head})"
                )
        elif model.state_mlm_loss_weight > 0 and path == "trainer.fit.train_dataloader":
            if loader.state_mask_rate == 0:
                raise ParamsError(
                    f"{where}{path}.state_mask_rate is 0 but trainer.init.model.state_mlm_loss_weight "
                    f"is {model.state_mlm_loss_weight}: the state objective would get no targets"
                )


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read, convert (legacy form), override, validate and cross-check a params file.

    Args:
        path: the YAML file.
        overrides: dotted trainer-form keys to set before validation (command-line values).

    Raises:
        ParamsError: one line naming the file and the key.
    """
    data = read_yaml(path)
    if is_legacy(data):
        data = convert_legacy(data, path)
    if overrides:
        data = apply_overrides(data, overrides)
    params = parse_section(Params, data, "", path, _UNION_TAGS)
    check_params(params, path)
    return params


def params_from_dict(data: Mapping[str, Any], source: str = "<checkpoint>") -> Params:
    """Validate an already-loaded trainer-form dict (e.g. the copy a checkpoint stores)."""
    params = parse_section(Params, dict(data), "", source, _UNION_TAGS)
    check_params(params, source)
    return params
