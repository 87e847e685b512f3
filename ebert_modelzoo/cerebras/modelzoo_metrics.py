"""Our eval metrics (ebert_modelzoo/evaluation/metrics.py) as ``cerebras.pytorch.metrics.Metric``
modules, the form Model Zoo's Trainer reports: its ``ModelEvalMetrics`` callback finds every
``Metric`` among the model's modules at the end of a validation, logs ``float(metric)`` under the
metric's name (console "Evaluation metrics:", TensorBoard, under the dataloader's name scope) and
resets it.

One ``Metric`` holds one number, while our accumulators compute many at once (loss, accuracy and
perplexity; auROC, auPRC and recall at two FDRs per label). So one :class:`SharedEvalMetrics`
accumulates on the host (a step closure receives the materialized logits, labels and weights) and
one :class:`EvalMetricView` per number reads its value from it. The math stays in
evaluation/metrics.py.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Mapping, Optional, Sequence

import torch

import cerebras.pytorch as cstorch
from cerebras.pytorch.metrics import Metric
from ebert_modelzoo.evaluation.metrics import DREAM_FDRS, FinetuneMetrics, PretrainMetrics

# Fields of the model's output dataclasses and batch keys our accumulators read.
PRETRAIN_FIELDS = ("mlm_logits", "state_logits")
PRETRAIN_BATCH = ("labels", "masked_lm_mask", "masked_state_labels", "masked_state_mask")
FINETUNE_FIELDS = ("logits",)
FINETUNE_BATCH = ("seq_labels", "seq_label_weights", "bin_labels", "bin_label_weights")


class SharedEvalMetrics:
    """One accumulator (PretrainMetrics or FinetuneMetrics) behind several metric views.

    Not a module: views hold it, and a module attribute would make it their child.
    """

    def __init__(self, make: Callable[[], object], fields: Sequence[str], batch_keys: Sequence[str],
                 keys: Sequence[str]) -> None:
        self.make, self.fields, self.batch_keys, self.keys = make, tuple(fields), tuple(batch_keys), tuple(keys)
        self.accumulator = make()
        self.results: Optional[dict[str, float]] = None
        self.views: list[EvalMetricView] = []
        self._reset_views: set[int] = set()

    def update(self, outputs: object, batch: Mapping[str, torch.Tensor]) -> None:
        """Queue one eval step's outputs for the host and count an update on every view."""
        tensors = {name: getattr(outputs, name) for name in self.fields if getattr(outputs, name, None) is not None}
        inputs = {key: batch[key] for key in self.batch_keys if key in batch}
        self._accumulate(tensors, inputs)
        for view in self.views:
            view.update()

    @cstorch.step_closure
    def _accumulate(self, tensors: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> None:
        self.accumulator.update(SimpleNamespace(**tensors), inputs)
        self.results = None
        self._reset_views.clear()

    def value(self, key: str) -> float:
        """One number of the accumulated evaluation (all are computed once per evaluation)."""
        if self.results is None:
            self.results = self.accumulator.compute()
        return float(self.results.get(key, math.nan))

    def view_reset(self, view: "EvalMetricView") -> None:
        """Model Zoo resets each view after logging it; the accumulator starts over after the last."""
        self._reset_views.add(id(view))
        if len(self._reset_views) >= len(self.views):
            self.accumulator = self.make()
            self.results = None
            self._reset_views.clear()


class EvalMetricView(Metric):
    """One number of a :class:`SharedEvalMetrics`, named ``eval/<key>``."""

    def __init__(self, shared: SharedEvalMetrics, key: str) -> None:
        self._shared = shared
        self.key = key
        super().__init__(name=f"eval/{key}")
        shared.views.append(self)

    def reset(self) -> None:
        shared = self.__dict__.get("_shared")
        if shared is not None and self in shared.views:
            shared.view_reset(self)

    def update(self) -> None:
        """Counts the update; the shared accumulator holds the data."""

    def compute(self) -> float:
        return self._shared.value(self.key)


def _views(shared: SharedEvalMetrics) -> torch.nn.ModuleList:
    return torch.nn.ModuleList(EvalMetricView(shared, key) for key in shared.keys)


def pretrain_metrics(with_state: bool) -> tuple[SharedEvalMetrics, torch.nn.ModuleList]:
    """MLM loss/accuracy/perplexity (and the masked-state ones when that objective is on)."""
    keys = [f"mlm_{name}" for name in ("loss", "accuracy", "perplexity")]
    if with_state:
        keys += [f"state_{name}" for name in ("loss", "accuracy", "perplexity")]
    shared = SharedEvalMetrics(PretrainMetrics, PRETRAIN_FIELDS, PRETRAIN_BATCH, keys)
    return shared, _views(shared)


def finetune_metrics(label_names: Sequence[str]) -> tuple[SharedEvalMetrics, torch.nn.ModuleList]:
    """auROC, auPRC, recall at 10% and 50% FDR per label and their means over labels."""
    names = list(label_names)
    metrics = ["auroc", "auprc", *(f"recall_at_{round(fdr * 100)}_fdr" for fdr in DREAM_FDRS)]
    keys = [f"{metric}/{label}" for metric in metrics for label in (*names, "mean")]
    shared = SharedEvalMetrics(lambda: FinetuneMetrics(label_names=names), FINETUNE_FIELDS, FINETUNE_BATCH, keys)
    return shared, _views(shared)
