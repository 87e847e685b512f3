"""Prediction heads on top of EBERT hidden states, and the static-shape helpers they share.

Shapes: B batch, L tokens, H hidden, V DNA vocabulary, P masked DNA positions, N bins,
Q masked bins, S chromatin states, K labels.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ebert_modelzoo.models.config import EBertEncoderConfig, EBertFinetuneConfig
from ebert_modelzoo.models.embeddings import check_bins_fit
from ebert_modelzoo.models.encoder import make_activation


def gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, M, H), index (B, P) int -> (B, P, H): values[b, index[b, p]] with torch.gather."""
    batch, num, hidden = index.shape[0], index.shape[1], values.shape[-1]
    return torch.gather(values, 1, index.long().unsqueeze(-1).expand(batch, num, hidden))


def pool_bins(hidden: torch.Tensor, num_bins: int, tokens_per_bin: int) -> torch.Tensor:
    """Mean of each bin's tokens: hidden (B, L, H) -> (B, N, H) (bin n = tokens 1 + n*tpb ...)."""
    batch, seq_len, width = hidden.shape
    covered = check_bins_fit(num_bins, tokens_per_bin, seq_len)
    tokens = hidden[:, 1 : 1 + covered]
    return tokens.reshape(batch, num_bins, tokens_per_bin, width).mean(dim=2)


class PredictionTransform(nn.Module):
    """BERT's head transform: dense -> activation -> LayerNorm."""

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = make_activation(config.encoder_nonlinearity)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.activation(self.dense(hidden)))


class MaskedLMHead(nn.Module):
    """Masked DNA-token head; logits only at the gathered masked positions.

    With ``tied`` the decoder weight is the DNA input embedding table, passed in at call time
    (so the state dict holds it once); otherwise the head owns its decoder weight.
    """

    def __init__(self, config: EBertEncoderConfig, tied: bool) -> None:
        super().__init__()
        self.transform = PredictionTransform(config)
        self.decoder: Optional[nn.Linear] = (
            None if tied else nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        )
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(
        self, hidden: torch.Tensor, positions: torch.Tensor, word_embeddings: torch.Tensor
    ) -> torch.Tensor:
        """hidden (B, L, H), positions (B, P), word_embeddings (V, H) -> logits (B, P, V)."""
        selected = self.transform(gather_rows(hidden, positions))
        weight = word_embeddings if self.decoder is None else self.decoder.weight
        return nn.functional.linear(selected, weight, self.bias)


class MaskedStateHead(nn.Module):
    """Masked chromatin-state head: pooled bin vectors -> S logits (logit j is state j + 1)."""

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        self.tokens_per_bin = config.tokens_per_bin
        self.transform = PredictionTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.num_chromatin_states)

    def forward(self, hidden: torch.Tensor, positions: torch.Tensor, num_bins: int) -> torch.Tensor:
        """hidden (B, L, H), positions (B, Q) bin indices -> logits (B, Q, S)."""
        bins = pool_bins(hidden, num_bins, self.tokens_per_bin)
        return self.decoder(self.transform(gather_rows(bins, positions)))


class SequenceClassificationHead(nn.Module):
    """Window-level multi-label head: a pooled vector -> BERT pooler (dense + tanh) -> dropout -> K logits.

    The pooled vector is [CLS] (``pooling: cls``) or the mean of the tokens of the ``pooled_bins``
    central bins of ``num_bins`` (``pooling: center_bins``): a fixed slice, no data-dependent shape.
    """

    def __init__(self, config: EBertFinetuneConfig) -> None:
        super().__init__()
        self.pooling = config.pooling
        if config.pooling == "center_bins":
            first = 1 + (config.num_bins - config.pooled_bins) // 2 * config.tokens_per_bin
            self.token_slice = slice(first, first + config.pooled_bins * config.tokens_per_bin)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, H) -> (B, H): [CLS], or the mean over the central bins' tokens."""
        if self.pooling == "cls":
            return hidden[:, 0]
        return hidden[:, self.token_slice].mean(dim=1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, H) -> logits (B, K)."""
        pooled = torch.tanh(self.pooler(self.pool(hidden)))
        return self.classifier(self.dropout(pooled))


class BinClassificationHead(nn.Module):
    """Per-bin multi-label head: mean of each bin's tokens -> dropout -> K logits per bin."""

    def __init__(self, config: EBertEncoderConfig, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.tokens_per_bin = config.tokens_per_bin
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, num_bins: int) -> torch.Tensor:
        """hidden (B, L, H) -> logits (B, N, K)."""
        return self.classifier(self.dropout(pool_bins(hidden, num_bins, self.tokens_per_bin)))
