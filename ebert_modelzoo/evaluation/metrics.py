"""Eval metrics, computed in numpy on the host from accumulated model outputs.

Pre-training: weighted masked-LM loss, accuracy and perplexity, masked chromatin-state accuracy.
Fine-tuning: the ENCODE-DREAM binary metrics per label: auROC, auPRC (average precision, the
step-wise area that does not interpolate between operating points), and recall at 10% and 50%
false-discovery rate. Weights follow the batch dict: 0 drops a position or label (padding,
ambiguous or missing label); other weights scale a sample's contribution.

Metrics take arrays or tensors, never model objects; ``PretrainMetrics`` / ``FinetuneMetrics``
read the fields of the model's output dataclasses by name (``mlm_logits``, ``state_logits``,
``logits``) together with the batch dict, so this module imports nothing from the model.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

DREAM_FDRS = (0.1, 0.5)


def to_numpy(value: Any, dtype: type = np.float64) -> np.ndarray:
    """A tensor (any device/dtype) or array-like as a numpy array of ``dtype``."""
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _sorted_samples(scores: Any, labels: Any, weights: Any = None) -> tuple[np.ndarray, ...]:
    """(scores, labels, weights, rows) of the samples with weight > 0, highest score first (ties in
    input order); ``rows`` are their indices in the input. Samples with weight 0 are dropped before
    anything else, so their labels may be anything."""
    scores = to_numpy(scores).ravel()
    labels = to_numpy(labels).ravel()
    weights = np.ones_like(scores) if weights is None else to_numpy(weights).ravel()
    if not scores.shape == labels.shape == weights.shape:
        raise ValueError(
            f"scores, labels and weights differ in size: {scores.size}, {labels.size}, {weights.size}"
        )
    if np.any(weights < 0):
        raise ValueError("metric weights must be >= 0")
    kept = np.flatnonzero(weights > 0)
    if not np.all((labels[kept] == 0) | (labels[kept] == 1)):
        raise ValueError("binary metrics need labels 0 or 1 wherever the weight is > 0")
    rows = kept[np.argsort(-scores[kept], kind="mergesort")]
    return scores[rows], labels[rows], weights[rows], rows


def _operating_points(
    scores: Any, labels: Any, weights: Any = None
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Cumulative weighted (TP, FP) at each distinct score threshold, highest first, and totals
    (samples with weight 0 dropped)."""
    scores, labels, weights, _ = _sorted_samples(scores, labels, weights)
    if scores.size == 0:
        return np.zeros(0), np.zeros(0), 0.0, 0.0
    return _cumulative(labels, weights, _last_of_threshold(scores))


def _last_of_threshold(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the last sample of each distinct score in scores sorted highest first."""
    return np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1].astype(int)


def _cumulative(labels: np.ndarray, weights: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Cumulative weighted (TP, FP) at ``ends`` of samples sorted by score, and totals."""
    tp = np.cumsum(weights * labels)
    fp = np.cumsum(weights * (1.0 - labels))
    return tp[ends], fp[ends], float(tp[-1]), float(fp[-1])


def _average_precision(tp: np.ndarray, fp: np.ndarray, positives: float) -> float:
    recall = np.r_[0.0, tp / positives]
    with np.errstate(invalid="ignore"):  # 0 / 0 only before the first weighted sample, where recall does not move
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    return float(np.sum(np.diff(recall) * precision))


def auroc(scores: Any, labels: Any, weights: Any = None) -> float:
    """Area under the ROC curve (ties count one half); nan without both positives and negatives."""
    tp, fp, positives, negatives = _operating_points(scores, labels, weights)
    if positives == 0 or negatives == 0:
        return math.nan
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def auprc(scores: Any, labels: Any, weights: Any = None) -> float:
    """Area under the precision-recall curve as average precision; nan without positives."""
    tp, fp, positives, _ = _operating_points(scores, labels, weights)
    if positives == 0:
        return math.nan
    return _average_precision(tp, fp, positives)


class ResampledAUPRC:
    """``auprc`` of one score column under bootstrap resamples, sorting the scores once.

    A resample given as per-sample counts (how often each sample was drawn) has the auPRC of the
    drawn samples: a sample drawn c times is one sample of weight c x its weight, its copies
    sharing its score. Building this sorts once; each call is linear, where ``auprc`` on the drawn
    samples would sort every resample.
    """

    def __init__(self, scores: Any, labels: Any, weights: Any = None) -> None:
        scores, self.labels, self.weights, self.rows = _sorted_samples(scores, labels, weights)
        self.ends = _last_of_threshold(scores)

    def __call__(self, counts: np.ndarray) -> float:
        """auPRC of the resample that drew sample i ``counts[i]`` times; nan without positives."""
        if self.rows.size == 0:
            return math.nan
        tp, fp, positives, _ = _cumulative(self.labels, self.weights * counts[self.rows], self.ends)
        return math.nan if positives == 0 else _average_precision(tp, fp, positives)


def precision_recall_curve(scores: Any, labels: Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at each distinct score threshold, highest threshold first.

    The operating points ``auprc`` sums over (step-wise, no interpolation); empty without positives.
    """
    tp, fp, positives, _ = _operating_points(scores, labels, weights)
    if positives == 0:
        return np.zeros(0), np.zeros(0)
    return tp / positives, tp / (tp + fp)


def recall_at_fdr(scores: Any, labels: Any, fdr: float, weights: Any = None) -> float:
    """Highest recall at a threshold whose false-discovery rate FP / (TP + FP) is <= ``fdr``.

    0 when no threshold is that precise; nan without positives.
    """
    if not 0.0 <= fdr <= 1.0:
        raise ValueError(f"fdr must be in [0, 1], got {fdr}")
    tp, fp, positives, _ = _operating_points(scores, labels, weights)
    if positives == 0:
        return math.nan
    ok = fp / (tp + fp) <= fdr + 1e-12
    return float(np.max(tp[ok]) / positives) if np.any(ok) else 0.0


class MaskedLMMetric:
    """Weighted cross-entropy, accuracy and perplexity of masked-token predictions.

    The loss is plain cross-entropy (no label smoothing), so perplexity = exp(loss) is comparable
    across runs whatever their training loss.
    """

    def __init__(self, prefix: str = "mlm") -> None:
        self.prefix = prefix
        self.loss_sum = 0.0
        self.correct = 0.0
        self.weight = 0.0

    def update(self, logits: Any, labels: Any, weights: Any, label_offset: int = 0) -> None:
        """logits (..., C), labels (...) ids, weights (...); class c scores label c + label_offset."""
        logits = to_numpy(logits)
        targets = to_numpy(labels, np.int64) - label_offset
        weights = to_numpy(weights)
        if logits.shape[:-1] != targets.shape or targets.shape != weights.shape:
            raise ValueError(
                f"{self.prefix}: logits {logits.shape}, labels {targets.shape} and weights "
                f"{weights.shape} do not line up"
            )
        num_classes = logits.shape[-1]
        weights = weights * ((targets >= 0) & (targets < num_classes))  # out-of-range ids never count
        safe = np.clip(targets, 0, num_classes - 1)
        log_probs = np.take_along_axis(_log_softmax(logits), safe[..., None], axis=-1)[..., 0]
        self.loss_sum += float(np.sum(-log_probs * weights))
        self.correct += float(np.sum((logits.argmax(axis=-1) == safe) * weights))
        self.weight += float(np.sum(weights))

    def compute(self) -> dict[str, float]:
        """{prefix}_loss, {prefix}_accuracy, {prefix}_perplexity (nan before any weighted update)."""
        if self.weight == 0:
            loss = accuracy = math.nan
        else:
            loss, accuracy = self.loss_sum / self.weight, self.correct / self.weight
        return {
            f"{self.prefix}_loss": loss,
            f"{self.prefix}_accuracy": accuracy,
            f"{self.prefix}_perplexity": math.exp(loss) if not math.isnan(loss) else math.nan,
        }


class BinaryLabelMetrics:
    """ENCODE-DREAM metrics per label from accumulated scores: labels on the last axis (K)."""

    def __init__(self, label_names: Sequence[str]) -> None:
        self.label_names = list(label_names)
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []

    def update(self, scores: Any, labels: Any, weights: Any) -> None:
        """scores (..., K) (logits or probabilities: only their order matters), labels, weights alike."""
        num = len(self.label_names)
        scores, labels, weights = to_numpy(scores, np.float32), to_numpy(labels, np.float32), to_numpy(weights, np.float32)
        if scores.shape != labels.shape or labels.shape != weights.shape or scores.shape[-1] != num:
            raise ValueError(
                f"scores {scores.shape}, labels {labels.shape}, weights {weights.shape}: "
                f"expected equal shapes ending in {num} labels"
            )
        self._scores.append(scores.reshape(-1, num))
        self._labels.append(labels.reshape(-1, num))
        self._weights.append(weights.reshape(-1, num))

    def compute(self) -> dict[str, float]:
        """auroc/<label>, auprc/<label>, recall_at_<f>_fdr/<label>, and each one's mean over labels."""
        if not self._scores:
            raise ValueError("BinaryLabelMetrics.compute: no update yet")
        scores, labels, weights = (np.concatenate(parts) for parts in (self._scores, self._labels, self._weights))
        results: dict[str, float] = {}
        metrics = {"auroc": auroc, "auprc": auprc}
        for fdr in DREAM_FDRS:
            metrics[f"recall_at_{round(fdr * 100)}_fdr"] = (
                lambda s, y, w, fdr=fdr: recall_at_fdr(s, y, fdr, w)
            )
        for metric, fn in metrics.items():
            values = [fn(scores[:, k], labels[:, k], weights[:, k]) for k in range(len(self.label_names))]
            for name, value in zip(self.label_names, values):
                results[f"{metric}/{name}"] = value
            finite = [value for value in values if not math.isnan(value)]
            results[f"{metric}/mean"] = float(np.mean(finite)) if finite else math.nan
        return results


class PretrainMetrics:
    """Eval metrics of pre-training from PretrainOutput-like objects and their batch dicts."""

    def __init__(self) -> None:
        self.mlm = MaskedLMMetric("mlm")
        self.state = MaskedLMMetric("state")
        self._has_state = False

    def update(self, outputs: Any, batch: Mapping[str, Any]) -> None:
        """Accumulate one eval batch (outputs.mlm_logits, optional outputs.state_logits)."""
        self.mlm.update(outputs.mlm_logits, batch["labels"], batch["masked_lm_mask"])
        state_logits = getattr(outputs, "state_logits", None)
        if state_logits is not None:
            self._has_state = True
            # state logit j scores state id j + 1 (id 0, unknown, is never a target)
            self.state.update(
                state_logits, batch["masked_state_labels"], batch["masked_state_mask"], label_offset=1
            )

    def compute(self) -> dict[str, float]:
        """mlm_loss, mlm_accuracy, mlm_perplexity (+ state_loss, state_accuracy, state_perplexity)."""
        results = self.mlm.compute()
        if self._has_state:
            results.update(self.state.compute())
        return results


class FinetuneMetrics:
    """Eval metrics of fine-tuning from FinetuneOutput-like objects and their batch dicts."""

    def __init__(self, label_names: Optional[Sequence[str]] = None, num_labels: Optional[int] = None) -> None:
        if label_names is None:
            if num_labels is None:
                raise ValueError("FinetuneMetrics needs label_names or num_labels")
            label_names = [f"label_{k}" for k in range(num_labels)]
        self.labels = BinaryLabelMetrics(label_names)

    def update(self, outputs: Any, batch: Mapping[str, Any]) -> None:
        """Accumulate one eval batch: (B, K) logits use seq_labels, (B, N, K) logits bin_labels."""
        logits = outputs.logits
        if logits.ndim == 2:
            self.labels.update(logits, batch["seq_labels"], batch["seq_label_weights"])
        else:
            self.labels.update(logits, batch["bin_labels"], batch["bin_label_weights"])

    def compute(self) -> dict[str, float]:
        """The ENCODE-DREAM metrics per label and their means (see BinaryLabelMetrics.compute)."""
        return self.labels.compute()
