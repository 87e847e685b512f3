"""EBERT's models as Model Zoo's registry names them: the same classes plus our eval metrics as
cstorch ``Metric`` modules (modelzoo_metrics.py), updated in ``forward`` whenever the model is in
eval mode, so Model Zoo's Trainer logs them after each validation (console, TensorBoard).

The metric modules hold no parameters or persistent buffers: state dicts, hence checkpoints, are
those of the plain classes, and either loads into the other.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ebert_modelzoo.cerebras.modelzoo_metrics import finetune_metrics, pretrain_metrics
from ebert_modelzoo.config.model import EBertFinetuneConfig, EBertPretrainConfig
from ebert_modelzoo.models import ebert


class _ForwardUpdatesEvalMetrics(torch.nn.Module):
    """forward: the scalar loss; in eval mode the step's outputs also go to the eval metrics."""

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        outputs = self.outputs(batch)
        if not self.training:
            self._eval_metrics.update(outputs, batch)
        return outputs.loss


class EBertForPreTrainingModel(_ForwardUpdatesEvalMetrics, ebert.EBertForPreTrainingModel):
    """Pre-training ("ebert") reporting MLM (and masked-state) loss, accuracy and perplexity."""

    def __init__(self, config: EBertPretrainConfig) -> None:
        super().__init__(config)
        self._eval_metrics, self.eval_metrics = pretrain_metrics(with_state=self.state_head is not None)


class EBertForFineTuningModel(_ForwardUpdatesEvalMetrics, ebert.EBertForFineTuningModel):
    """Fine-tuning ("ebert_finetune") reporting auROC, auPRC, recall at 10%/50% FDR per label
    (named by the model's ``label_names``, else label_0, label_1, ...)."""

    def __init__(self, config: EBertFinetuneConfig) -> None:
        super().__init__(config)
        names = config.label_names or [f"label_{k}" for k in range(config.num_labels)]
        self._eval_metrics, self.eval_metrics = finetune_metrics(names)
