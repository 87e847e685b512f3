"""EBERT task wrappers (Model Zoo's top tier): pre-training and fine-tuning, with weighted losses.

Each wrapper takes ONE config object, reads a batch dict (ebert_modelzoo/contract/batch.py) without
mutating it, and returns the scalar loss from ``forward`` (train and eval alike). ``outputs``
returns a typed dataclass with the per-objective losses and the logits the eval metrics need.

Every loss is a weighted mean: sum(loss * weight) / max(sum(weight), 1), with the batch's 0/1
masks as weights, so padded positions and missing labels drop out without boolean indexing.
The encoder lives under the attribute ``ebert`` in both wrappers, so the ``ebert.*`` entries of
a pre-training state dict load straight into a fine-tuning model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ebert_modelzoo.config.model import EBertEncoderConfig, EBertFinetuneConfig, EBertPretrainConfig
from ebert_modelzoo.contract.batch import check_batch
from ebert_modelzoo.models.encoder import EBertModel, init_weights
from ebert_modelzoo.models.heads import (
    BinClassificationHead,
    MaskedLMHead,
    MaskedStateHead,
    SequenceClassificationHead,
    bin_token_positions,
)


@dataclass
class PretrainOutput:
    """What one pre-training step computes. Logits are only at the (fixed-size) masked positions."""

    loss: torch.Tensor
    """Scalar: mlm_loss_weight * mlm_loss (+ state_mlm_loss_weight * state_loss)."""
    mlm_loss: torch.Tensor
    """Scalar: weighted cross-entropy of the masked DNA tokens (with label smoothing if set)."""
    mlm_logits: torch.Tensor
    """(B, P, V) logits at masked_lm_positions."""
    state_loss: Optional[torch.Tensor] = None
    """Scalar weighted cross-entropy of the masked chromatin states; None when that objective is off."""
    state_logits: Optional[torch.Tensor] = None
    """(B, Q, S) logits at masked_state_positions; logit j scores state id j + 1."""


@dataclass
class FinetuneOutput:
    """What one fine-tuning step computes."""

    loss: torch.Tensor
    """Scalar: weighted binary cross-entropy over all labels."""
    logits: torch.Tensor
    """(B, K) for the sequence head, (B, N, K) for the bin head; sigmoid gives probabilities."""


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights) / max(sum(weights), 1) as a float32 scalar."""
    weights = weights.float()
    return (values.float() * weights).sum() / weights.sum().clamp(min=1.0)


def masked_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Weighted token cross-entropy: logits (B, P, V), labels (B, P) ids, weights (B, P)."""
    per_position = F.cross_entropy(
        logits.float().flatten(0, 1), labels.long().flatten(), reduction="none",
        label_smoothing=label_smoothing,
    )
    return weighted_mean(per_position.view(labels.shape), weights)


def binary_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, positive_weight: torch.Tensor) -> torch.Tensor:
    """Per-element BCE with the positive term of label k scaled by positive_weight[k]:
    -(w_k * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x))); logits (..., K), weight (K)."""
    return F.binary_cross_entropy_with_logits(
        logits.float(), labels, pos_weight=positive_weight, reduction="none"
    )


def input_groups(config: EBertEncoderConfig) -> tuple[str, ...]:
    """Batch groups the encoder reads under this config (dna plus each epigenetic input turned on)."""
    groups = ["dna"]
    if config.num_chromatin_states > 0:
        groups.append("states")
    if config.num_signal_tracks > 0:
        groups.append("signal")
    if config.num_motif_tracks > 0:
        groups.append("motifs")
    if config.num_cell_types > 0:
        groups.append("cell_type")
    return tuple(groups)


def input_dims(config: EBertEncoderConfig) -> dict[str, int]:
    """Batch dimensions fixed by the config (checked against every batch)."""
    dims = {"T": config.num_signal_tracks} if config.num_signal_tracks > 0 else {}
    return {**dims, "M": config.num_motif_tracks} if config.num_motif_tracks > 0 else dims


class EBertForPreTrainingModel(nn.Module):
    """Pre-training: masked DNA tokens, and optionally masked chromatin states (Model Zoo name "ebert")."""

    def __init__(self, config: EBertPretrainConfig) -> None:
        super().__init__()
        self.config = config
        self.ebert = EBertModel(config)
        self.mlm_head = MaskedLMHead(config, tied=config.share_embedding_weights)
        self.state_head = MaskedStateHead(config) if config.state_mlm_loss_weight > 0 else None
        for head in (self.mlm_head, self.state_head):
            if head is not None:
                head.apply(lambda module: init_weights(module, config.initializer_range))
        groups = input_groups(config) + ("mlm",)
        self.batch_groups = groups + ("state_mlm",) if self.state_head is not None else groups

    def outputs(self, batch: Mapping[str, torch.Tensor]) -> PretrainOutput:
        """Losses and masked-position logits for one batch dict."""
        check_batch(batch, self.batch_groups, input_dims(self.config))
        mlm_positions = batch["masked_lm_positions"].long()
        if self.state_head is None:
            mlm_rows = self.ebert(batch, mlm_positions)
        else:
            state_tokens = bin_token_positions(batch["masked_state_positions"], self.config.tokens_per_bin)
            rows = self.ebert(batch, torch.cat([mlm_positions, state_tokens], dim=1))
            mlm_rows, state_rows = rows.split([mlm_positions.shape[1], state_tokens.shape[1]], dim=1)
        logits = self.mlm_head(mlm_rows, self.ebert.embeddings.word_embeddings.weight)
        mlm_loss = masked_lm_loss(
            logits, batch["labels"], batch["masked_lm_mask"], self.config.label_smoothing
        )
        loss = self.config.mlm_loss_weight * mlm_loss
        if self.state_head is None:
            return PretrainOutput(loss=loss, mlm_loss=mlm_loss, mlm_logits=logits)
        state_logits = self.state_head(state_rows)
        labels = batch["masked_state_labels"]
        # Logit j is state j + 1; an unknown (0) label cannot be a target, so it gets weight 0.
        weights = batch["masked_state_mask"] * (labels > 0).float()
        state_loss = masked_lm_loss(state_logits, (labels - 1).clamp(min=0), weights)
        loss = loss + self.config.state_mlm_loss_weight * state_loss
        return PretrainOutput(
            loss=loss, mlm_loss=mlm_loss, mlm_logits=logits,
            state_loss=state_loss, state_logits=state_logits,
        )

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Scalar training/eval loss."""
        return self.outputs(batch).loss


class EBertForFineTuningModel(nn.Module):
    """Fine-tuning: multi-label classification per window or per bin (Model Zoo name "ebert_finetune")."""

    def __init__(self, config: EBertFinetuneConfig) -> None:
        super().__init__()
        self.config = config
        self.ebert = EBertModel(config)
        if config.head == "sequence":
            self.head: nn.Module = SequenceClassificationHead(config)
            self.label_key, self.weight_key = "seq_labels", "seq_label_weights"
        else:
            self.head = BinClassificationHead(config, config.num_labels, config.classifier_dropout)
            self.label_key, self.weight_key = "bin_labels", "bin_label_weights"
        self.head.apply(lambda module: init_weights(module, config.initializer_range))
        if isinstance(self.head, SequenceClassificationHead):
            self.head.zero_linear()
        if config.positive_weight == "auto":
            raise ValueError("positive_weight 'auto' must be resolved into one weight per label (from the "
                             "training data) before the model is built")
        # A buffer, not a parameter: fixed by the config, moves with the model, not in checkpoints.
        weights = config.positive_weight or [1.0] * config.num_labels
        self.register_buffer("positive_weight", torch.tensor(weights, dtype=torch.float32), persistent=False)
        self.batch_groups = input_groups(config) + (
            "seq_labels" if config.head == "sequence" else "bin_labels",
        )

    def outputs(self, batch: Mapping[str, torch.Tensor]) -> FinetuneOutput:
        """Loss and label logits for one batch dict."""
        dims = {**input_dims(self.config), "K": self.config.num_labels}
        check_batch(batch, self.batch_groups, dims)
        labels = batch[self.label_key]
        if self.config.head == "sequence":
            positions = self.head.token_positions(labels.shape[0])
            logits = self.head(self.ebert(batch, positions), batch)
        else:
            logits = self.head(self.ebert(batch), labels.shape[1])
        loss = weighted_mean(
            binary_cross_entropy(logits, labels, self.positive_weight), batch[self.weight_key]
        )
        return FinetuneOutput(loss=loss, logits=logits)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Scalar training/eval loss."""
        return self.outputs(batch).loss
