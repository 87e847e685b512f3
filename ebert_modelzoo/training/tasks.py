"""What differs between pre-training and fine-tuning, for the loop: the model class, the data
processor, the eval metrics, and the check that the model fits its data."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ebert_modelzoo.config.model import EBertFinetuneConfig, EBertPretrainConfig
from ebert_modelzoo.contract.data_params import DATA_DECIDED_SIZES
from ebert_modelzoo.data.processors import DataFeatures, create_processor
from ebert_modelzoo.errors import ParamsError
from ebert_modelzoo.evaluation.metrics import FinetuneMetrics, PretrainMetrics
from ebert_modelzoo.models.ebert import EBertForFineTuningModel, EBertForPreTrainingModel

Batch = dict[str, torch.Tensor]


class DataSource:
    """One dataloader section's processor, as the loop uses it."""

    def __init__(self, loader_cfg: Any) -> None:
        self.config = loader_cfg
        self.processor = create_processor(loader_cfg)
        self.loader = self.processor.create_dataloader()

    def features(self) -> DataFeatures:
        """What the batches hold (vocabulary, states, tracks, labels, ...)."""
        return self.processor.features()

    @property
    def data_params_path(self) -> Path:
        """The split's data_params.json."""
        return Path(self.processor.params.path)

    def num_batches(self) -> int:
        """Batches in one epoch."""
        return len(self.loader.dataset)

    def next_epoch(self) -> Iterable[Batch]:
        """The batches from the current position to the end of its epoch (then the next epoch)."""
        return self.loader

    def state_dict(self) -> dict[str, int]:
        """Position of the next batch (epoch, batch)."""
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at a position saved by ``state_dict``."""
        self.loader.load_state_dict(state)


@dataclass(frozen=True)
class Task:
    """The model config plus everything the loop builds from it."""

    model_config: Any

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised model (weights from the global torch RNG)."""
        if isinstance(self.model_config, EBertPretrainConfig):
            return EBertForPreTrainingModel(self.model_config)
        return EBertForFineTuningModel(self.model_config)

    def make_metrics(self, source: DataSource) -> Any:
        """Eval metrics accumulating ``update(outputs, batch)`` and ending in ``compute()``."""
        if isinstance(self.model_config, EBertFinetuneConfig):
            return FinetuneMetrics(label_names=list(source.features().label_names))
        return PretrainMetrics()

    def outputs_fn(self, model: torch.nn.Module) -> Callable[[Batch], Any]:
        """The eval forward: the typed outputs (loss and logits) of the unwrapped model."""
        module = getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module
        return module.outputs

    def check_data(self, source: DataSource, params_file: str | Path, loader_path: str) -> None:
        """The model config against the data a dataloader yields; errors name both files.

        Raises:
            ParamsError: a count differs (vocabulary, tokens per bin, states, tracks, cell types,
                labels).
        """
        model, data = self.model_config, source.features()
        data_file = source.data_params_path

        def mismatch(key: str, ours: Any, theirs: Any, hint: str = "") -> ParamsError:
            return ParamsError(
                f"{params_file}: trainer.init.model.{key} is {ours} but {loader_path} "
                f"({data_file}) gives {theirs}{hint}"
            )

        for key, hint in DATA_DECIDED_SIZES.items():
            ours, theirs = getattr(model, key, None), getattr(data, key)
            if ours is not None and ours != theirs:  # num_labels, num_bins: fine-tuning; num_bins: optional
                raise mismatch(key, ours, theirs, f" {hint}" if hint else "")
        if model.num_cell_types < data.num_cell_types:
            raise mismatch("num_cell_types", model.num_cell_types, data.num_cell_types, " cell types")
        if isinstance(model, EBertFinetuneConfig) and model.label_names is not None \
                and list(model.label_names) != list(data.label_names):
            raise mismatch("label_names", model.label_names, list(data.label_names), " (the data's label order)")
        missing = [group for group in self._target_groups() if group not in data.groups]
        if missing:
            raise ParamsError(f"{params_file}: {loader_path} yields no {', '.join(missing)} batches "
                              f"({data_file}), which trainer.init.model needs")

    def _target_groups(self) -> list[str]:
        """Batch groups holding the targets of the model's objectives."""
        model = self.model_config
        if isinstance(model, EBertFinetuneConfig):
            return ["seq_labels" if model.head == "sequence" else "bin_labels"]
        return ["mlm", "state_mlm"] if model.state_mlm_loss_weight > 0 else ["mlm"]

