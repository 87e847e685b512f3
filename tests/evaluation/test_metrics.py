"""Eval metrics against hand-computed small cases (and auROC against a brute-force pair count)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ebert_modelzoo.evaluation.metrics import (
    BinaryLabelMetrics,
    FinetuneMetrics,
    MaskedLMMetric,
    PretrainMetrics,
    ResampledAUPRC,
    auprc,
    auroc,
    recall_at_fdr,
)


def brute_force_auroc(scores, labels) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_hand_cases():
    assert auroc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.9], [1, 1, 0]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]) == pytest.approx(0.5)  # all tied
    # pairs: (0.8 vs 0.8) tie = 0.5, (0.8 vs 0.3) = 1, (0.4 vs 0.8) = 0, (0.4 vs 0.3) = 1 -> 2.5 / 4
    assert auroc([0.8, 0.8, 0.4, 0.3], [1, 0, 1, 0]) == pytest.approx(0.625)


def test_auroc_matches_brute_force_pair_count():
    rng = np.random.default_rng(0)
    for _ in range(5):
        scores = rng.integers(0, 8, size=60) / 8.0  # many ties
        labels = rng.integers(0, 2, size=60)
        assert auroc(scores, labels) == pytest.approx(brute_force_auroc(scores, labels), abs=1e-12)


def test_weights_exclude_and_scale():
    scores, labels = [0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]
    # a zero-weight sample changes nothing, whatever its label (ambiguous labels may be 0.5)
    for fn in (auroc, auprc, lambda s, y, w=None: recall_at_fdr(s, y, 0.1, w)):
        assert fn(scores + [0.95], labels + [0.5], [1, 1, 1, 1, 0]) == fn(scores, labels)
    # weight 2 counts like the sample twice
    assert auroc(scores, labels, [2, 1, 1, 1]) == auroc(scores + [0.9], labels + [1])
    assert auprc(scores, labels, [1, 2, 1, 1]) == pytest.approx(auprc(scores + [0.8], labels + [0]))


def test_auprc_hand_cases():
    # thresholds 0.9: P=1 R=1/2; 0.8: P=1/2; 0.7: P=2/3 R=1 -> 1 * 1/2 + 2/3 * 1/2
    assert auprc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # tied top pair: P=1/2 at R=1/2, then P=2/3 at R=1 -> 1/4 + 1/3
    assert auprc([0.5, 0.5, 0.1], [1, 0, 1]) == pytest.approx(7 / 12)
    assert auprc([0.9, 0.1], [1, 0]) == 1.0
    assert math.isnan(auprc([0.9, 0.1], [0, 0]))


@pytest.mark.parametrize("seed", range(5))
def test_resampled_auprc_is_the_auprc_of_the_drawn_samples(seed):
    """Draw counts as weights on the once-sorted scores give auprc of the drawn rows themselves,
    with ties (duplicates of a drawn row tie by construction, and the scores tie often), weights
    of 0 (their labels may be anything) and fractional weights."""
    rng = np.random.default_rng(seed)
    for trial in range(60):
        n = int(rng.integers(1, 50))
        scores = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n)
        labels = (rng.random(n) < 0.3).astype(float)
        weights = (rng.random(n) < 0.8) * (rng.uniform(0.5, 2.0, n) if trial % 3 == 0 else 1.0)
        labels[weights == 0] = np.nan
        resampled = ResampledAUPRC(scores, labels, weights)
        rows = rng.integers(0, n, n)
        expected = auprc(scores[rows], labels[rows], weights[rows])
        got = resampled(np.bincount(rows, minlength=n))
        assert got == pytest.approx(expected, abs=1e-12) or math.isnan(got) and math.isnan(expected)
    # a resample that drew no positive has no auPRC; every sample at weight 0 neither
    assert math.isnan(ResampledAUPRC([0.9, 0.1], [1, 0])(np.array([0, 2])))
    assert math.isnan(ResampledAUPRC([0.9, 0.1], [1, 0], [0, 0])(np.array([1, 1])))
    with pytest.raises(ValueError, match="labels 0 or 1"):
        ResampledAUPRC([0.1, 0.2], [1, 2])


def test_recall_at_fdr_hand_cases():
    scores, labels = [0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0]
    # FDR by threshold: 0, 0, 1/3, 1/4, 2/5; recall: 1/3, 2/3, 2/3, 1, 1
    assert recall_at_fdr(scores, labels, 0.1) == pytest.approx(2 / 3)
    assert recall_at_fdr(scores, labels, 0.25) == pytest.approx(1.0)
    assert recall_at_fdr(scores, labels, 0.5) == pytest.approx(1.0)
    # the top prediction is wrong: FDR 1 then 1/2 -> nothing reaches 10%, 50% reaches recall 1
    assert recall_at_fdr([0.9, 0.1], [0, 1], 0.1) == 0.0
    assert recall_at_fdr([0.9, 0.1], [0, 1], 0.5) == 1.0


def test_undefined_and_bad_inputs():
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))
    assert math.isnan(recall_at_fdr([0.1], [0], 0.5))
    with pytest.raises(ValueError, match="labels 0 or 1"):
        auroc([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="differ in size"):
        auroc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="fdr"):
        recall_at_fdr([0.1], [1], 1.5)


def test_masked_lm_metric_hand_case():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]]])
    labels = torch.tensor([[0, 2, 1]], dtype=torch.int32)
    weights = torch.tensor([[1.0, 1.0, 0.0]])
    metric = MaskedLMMetric()
    metric.update(logits, labels, weights)
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 2))
    ce1 = -math.log(1 / (math.e + 2))
    result = metric.compute()
    assert result["mlm_loss"] == pytest.approx((ce0 + ce1) / 2)
    assert result["mlm_accuracy"] == pytest.approx(0.5)
    assert result["mlm_perplexity"] == pytest.approx(math.exp((ce0 + ce1) / 2))
    # accumulation over batches is weighted by positions, not by batches
    split = MaskedLMMetric()
    split.update(logits[:, :1], labels[:, :1], weights[:, :1])
    split.update(logits[:, 1:], labels[:, 1:], weights[:, 1:])
    assert split.compute() == pytest.approx(result)
    assert math.isnan(MaskedLMMetric().compute()["mlm_loss"])


def test_pretrain_metrics_state_accuracy_uses_state_ids():
    mlm = torch.zeros(1, 1, 4)
    state_logits = torch.tensor([[[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 3.0]]])  # predicts 2, 1, 3
    outputs = SimpleNamespace(mlm_logits=mlm, state_logits=state_logits)
    batch = {
        "labels": torch.zeros(1, 1, dtype=torch.int32),
        "masked_lm_mask": torch.ones(1, 1),
        "masked_state_labels": torch.tensor([[2, 3, 0]], dtype=torch.int32),  # 0 = unknown, never counts
        "masked_state_mask": torch.ones(1, 3),
    }
    metrics = PretrainMetrics()
    metrics.update(outputs, batch)
    result = metrics.compute()
    assert result["state_accuracy"] == pytest.approx(0.5)
    assert result["mlm_loss"] == pytest.approx(math.log(4))
    dna_only = PretrainMetrics()
    dna_only.update(SimpleNamespace(mlm_logits=mlm, state_logits=None), batch)
    assert set(dna_only.compute()) == {"mlm_loss", "mlm_accuracy", "mlm_perplexity"}


def test_binary_label_metrics_per_label_and_mean():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    labels = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    weights = np.ones_like(scores)
    metrics = BinaryLabelMetrics(["CTCF", "REST"])
    metrics.update(scores[:2], labels[:2], weights[:2])
    metrics.update(scores[2:], labels[2:], weights[2:])
    result = metrics.compute()
    assert result["auroc/CTCF"] == pytest.approx(0.75)
    assert result["auroc/REST"] == pytest.approx(1.0)
    assert result["auroc/mean"] == pytest.approx(0.875)
    assert result["auprc/CTCF"] == pytest.approx(5 / 6)
    assert result["recall_at_10_fdr/CTCF"] == pytest.approx(0.5)
    assert result["recall_at_50_fdr/REST"] == pytest.approx(1.0)
    assert set(result) == {f"{m}/{n}" for m in ("auroc", "auprc", "recall_at_10_fdr", "recall_at_50_fdr")
                           for n in ("CTCF", "REST", "mean")}


def test_finetune_metrics_read_sequence_and_bin_outputs():
    seq = FinetuneMetrics(num_labels=1)
    seq.update(
        SimpleNamespace(logits=torch.tensor([[2.0], [-1.0], [0.5]])),
        {"seq_labels": torch.tensor([[1.0], [0.0], [0.0]]), "seq_label_weights": torch.tensor([[1.0], [1.0], [0.0]])},
    )
    assert seq.compute()["auroc/label_0"] == 1.0
    bins = FinetuneMetrics(["a"])
    bins.update(
        SimpleNamespace(logits=torch.tensor([[[0.1], [0.9]], [[0.8], [0.2]]])),
        {"bin_labels": torch.tensor([[[0.0], [1.0]], [[0.0], [1.0]]]), "bin_label_weights": torch.ones(2, 2, 1)},
    )
    assert bins.compute()["auroc/a"] == pytest.approx(brute_force_auroc([0.1, 0.9, 0.8, 0.2], [0, 1, 0, 1]))
    with pytest.raises(ValueError, match="label_names or num_labels"):
        FinetuneMetrics()
