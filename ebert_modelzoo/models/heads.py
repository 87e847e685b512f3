"""Prediction heads on top of EBERT hidden states, and the static-shape helpers they share.

Shapes: B batch, L tokens, H hidden, V DNA vocabulary, P masked DNA positions, N bins,
Q masked bins, S chromatin states, K labels.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from ebert_modelzoo.config.model import EBertEncoderConfig, EBertFinetuneConfig
from ebert_modelzoo.contract.layout import bin_first_position, central_bins_first_position, check_bins_fit, dna_positions
from ebert_modelzoo.models.encoder import make_activation


def bin_token_positions(bins: torch.Tensor, tokens_per_bin: int) -> torch.Tensor:
    """Bin indices (B, Q) -> the token positions of those bins, (B, Q * tokens_per_bin), bin by bin
    (bin n covers tokens 1 + n * tokens_per_bin ... (n + 1) * tokens_per_bin)."""
    offsets = torch.arange(tokens_per_bin, device=bins.device)
    first = bin_first_position(bins.long(), tokens_per_bin)
    return (first.unsqueeze(-1) + offsets).flatten(1)


def pool_bins(hidden: torch.Tensor, num_bins: int, tokens_per_bin: int) -> torch.Tensor:
    """Mean of each bin's tokens: hidden (B, L, H) -> (B, N, H) (bin n = tokens 1 + n*tpb ...)."""
    batch, seq_len, width = hidden.shape
    covered = check_bins_fit(num_bins, tokens_per_bin, seq_len)
    tokens = hidden[:, dna_positions(covered)]
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

    def forward(self, selected: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """selected (B, P, H) hidden states at the masked positions, word_embeddings (V, H)
        -> logits (B, P, V)."""
        weight = word_embeddings if self.decoder is None else self.decoder.weight
        return nn.functional.linear(self.transform(selected), weight, self.bias)


class MaskedStateHead(nn.Module):
    """Masked chromatin-state head: the mean of each masked bin's tokens -> S logits (logit j is
    state j + 1). It reads the tokens at ``bin_token_positions(masked_state_positions)``."""

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        self.tokens_per_bin = config.tokens_per_bin
        self.transform = PredictionTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.num_chromatin_states)

    def forward(self, bin_tokens: torch.Tensor) -> torch.Tensor:
        """bin_tokens (B, Q * tokens_per_bin, H), bin by bin -> logits (B, Q, S)."""
        batch, rows, width = bin_tokens.shape
        bins = bin_tokens.view(batch, rows // self.tokens_per_bin, self.tokens_per_bin, width).mean(dim=2)
        return self.decoder(self.transform(bins))


def bin_input_width(config: EBertEncoderConfig) -> int:
    """Width of ``bin_inputs``' vectors under ``config``."""
    states = config.num_chromatin_states + 1 if config.num_chromatin_states > 0 else 0
    return 2 * config.num_signal_tracks + config.num_motif_tracks + states


def bin_inputs(batch: Mapping[str, torch.Tensor], counts: tuple[int, int, int]) -> torch.Tensor:
    """(B, N, F) numeric per-bin inputs: normalised signal (0 where missing), its presence mask,
    motif tracks and the one-hot chromatin state (unknown = 0 included), for the (states, signal
    tracks, motif tracks) counts ``counts`` (0 = absent)."""
    states, tracks, motifs = counts
    parts = []
    if tracks:
        present = batch["signal_mask"]
        parts += [torch.where(present > 0, batch["signal"], torch.zeros_like(batch["signal"])), present]
    if motifs:
        parts.append(batch["motif_scores"])
    if states:
        ids = batch["chromatin_states"].long().clamp(max=states)  # [MASK] (S + 1) never reaches fine-tuning
        parts.append((ids.unsqueeze(-1) == torch.arange(states + 1, device=ids.device)).float())
    return torch.cat(parts, dim=-1)


def linear_input_width(config: EBertEncoderConfig) -> int:
    """Width of one bin's vector in the head's linear term: ``bin_inputs`` plus every motif track
    x signal track product."""
    return bin_input_width(config) + config.num_motif_tracks * config.num_signal_tracks


def linear_inputs(batch: Mapping[str, torch.Tensor], counts: tuple[int, int, int], bins: slice) -> torch.Tensor:
    """(B, n * F) the ``bins`` bins' ``bin_inputs`` and motif x signal products, bin after bin."""
    per_bin = bin_inputs(batch, counts)[:, bins]
    _, tracks, motifs = counts
    if tracks and motifs:
        signal = torch.where(batch["signal_mask"] > 0, batch["signal"], torch.zeros_like(batch["signal"]))[:, bins]
        products = batch["motif_scores"][:, bins].unsqueeze(-1) * signal.unsqueeze(-2)  # (B, n, M, T)
        per_bin = torch.cat([per_bin, products.flatten(2)], dim=-1)
    return per_bin.flatten(1)


class SequenceClassificationHead(nn.Module):
    """Window-level multi-label head: a pooled vector -> BERT pooler (dense + tanh) -> dropout -> K logits.

    The pooled vector is [CLS] (``pooling: cls``) or the mean of the tokens of the ``pooled_bins``
    central bins of ``num_bins`` (``pooling: center_bins``): fixed rows (``token_positions``), no
    data-dependent shape.
    """

    def __init__(self, config: EBertFinetuneConfig) -> None:
        super().__init__()
        if config.pooling == "cls":
            first, count = 0, 1
        else:
            first = central_bins_first_position(config.num_bins, config.pooled_bins, config.tokens_per_bin)
            count = config.pooled_bins * config.tokens_per_bin
        self.register_buffer("pooled_tokens", torch.arange(first, first + count), persistent=False)
        self.bin_inputs = bin_input_width(config) if config.head_bin_inputs else 0
        self.config_counts = (config.num_chromatin_states, config.num_signal_tracks, config.num_motif_tracks)
        if self.bin_inputs:
            start = (config.num_bins - config.pooled_bins) // 2
            self.pooled_bins = slice(start, start + config.pooled_bins)
        self.pooler = nn.Linear(config.hidden_size + self.bin_inputs, config.hidden_size)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.linear: Optional[nn.Linear] = None
        if config.head_linear_bins:
            start = (config.num_bins - config.head_linear_bins) // 2
            self.linear_bins = slice(start, start + config.head_linear_bins)
            self.linear_scale = config.head_linear_scale
            self.linear = nn.Linear(config.head_linear_bins * linear_input_width(config), config.num_labels, bias=False)

    def zero_linear(self) -> None:
        """Start the linear term at 0 (called after the head's weight initialisation)."""
        if self.linear is not None:
            nn.init.zeros_(self.linear.weight)

    def token_positions(self, batch_size: int) -> torch.Tensor:
        """(B, M) positions of the tokens the head pools: [CLS], or the central bins' tokens."""
        return self.pooled_tokens.expand(batch_size, -1)

    def forward(self, selected: torch.Tensor, batch: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        """selected (B, M, H) hidden states at ``token_positions`` (and, with head_bin_inputs, the
        batch dict whose bin inputs it reads) -> logits (B, K)."""
        pooled = selected.mean(dim=1)
        if self.bin_inputs:
            if batch is None:
                raise ValueError("head_bin_inputs: the head needs the batch dict")
            pooled = torch.cat([pooled, bin_inputs(batch, self.config_counts)[:, self.pooled_bins].mean(dim=1)], dim=-1)
        logits = self.classifier(self.dropout(torch.tanh(self.pooler(pooled))))
        if self.linear is not None:
            if batch is None:
                raise ValueError("head_linear_bins: the head needs the batch dict")
            logits = logits + self.linear_scale * self.linear(linear_inputs(batch, self.config_counts, self.linear_bins))
        return logits


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
