"""EBERT input embeddings: DNA tokens + positions + one cell type's epigenome.

Shapes (see ebert_modelzoo/contract/batch.py): B batch, L tokens, N bins, T signal tracks, H hidden.

Per-bin inputs (chromatin-state ids, signal tracks with their presence mask, known-motif tracks) are embedded to
(B, N, H), summed, and broadcast to the ``tokens_per_bin`` tokens of each bin with static-shape
ops (expand + reshape), then padded with zeros for [CLS] at position 0 and [SEP]/[PAD] after the
last bin. The cell-type embedding is added to every token. Each epigenetic input exists only when
its config size is > 0, so with all of them off this is exactly BERT's embedding layer (with the
token-type embedding folded into the positions).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ebert_modelzoo.config.model import EBertEncoderConfig
from ebert_modelzoo.contract import layout
from ebert_modelzoo.contract.batch import state_vocab_size
from ebert_modelzoo.models.dna_stem import BaseConvStem
from ebert_modelzoo.models.dropout import Dropout


def sinusoidal_positions(num_positions: int, hidden_size: int) -> torch.Tensor:
    """Fixed sinusoidal position table (num_positions, hidden_size) of "Attention is all you need"."""
    position = torch.arange(num_positions, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(
        torch.arange(0, hidden_size, 2, dtype=torch.float32) * (-math.log(10000.0) / hidden_size)
    )
    table = torch.zeros(num_positions, hidden_size)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq[: hidden_size // 2])
    return table


def bins_to_tokens(per_bin: torch.Tensor, tokens_per_bin: int, seq_len: int) -> torch.Tensor:
    """Broadcast (B, N, H) bin vectors to (B, seq_len, H) token vectors.

    Token 1 + n * tokens_per_bin + j gets bin n's vector; [CLS] (position 0) and every position
    after the last bin ([SEP], [PAD]) get zeros. Shapes are static: N comes from the input shape.
    """
    batch, num_bins, hidden = per_bin.shape
    covered = layout.check_bins_fit(num_bins, tokens_per_bin, seq_len)
    tokens = per_bin.unsqueeze(2).expand(batch, num_bins, tokens_per_bin, hidden)
    tokens = tokens.reshape(batch, covered, hidden)  # (B, N * tokens_per_bin, H)
    before = layout.dna_positions(covered).start  # [CLS]
    return F.pad(tokens, (0, 0, before, seq_len - covered - before))  # (B, L, H)


class EBertEmbeddings(nn.Module):
    """Word + position (+ chromatin state + signal + cell type) embeddings, LayerNorm, dropout."""

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        self.tokens_per_bin = config.tokens_per_bin
        self.max_positions = config.max_position_embeddings
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.dna_stem = BaseConvStem(config) if config.dna_conv_filters > 0 else None
        if config.position_embedding_type == "learned":
            self.position_embeddings: Optional[nn.Embedding] = nn.Embedding(
                config.max_position_embeddings, config.hidden_size
            )
        else:
            self.position_embeddings = None
            self.register_buffer(
                "fixed_positions",
                sinusoidal_positions(config.max_position_embeddings, config.hidden_size),
                persistent=False,
            )
        self.state_embeddings = (
            nn.Embedding(state_vocab_size(config.num_chromatin_states), config.hidden_size)
            if config.num_chromatin_states > 0 else None
        )
        # The projection sees the measured value (0 where missing) and the presence mask, so a
        # missing measurement is distinguishable from a measured zero.
        self.signal_projection = (
            nn.Linear(2 * config.num_signal_tracks, config.hidden_size)
            if config.num_signal_tracks > 0 else None
        )
        self.motif_projection = (
            nn.Linear(config.num_motif_tracks, config.hidden_size) if config.num_motif_tracks > 0 else None
        )
        self.cell_type_embeddings = (
            nn.Embedding(config.num_cell_types, config.hidden_size)
            if config.num_cell_types > 0 else None
        )
        # Named as in BERT checkpoints.
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.dropout = Dropout(config.dropout_rate)

    def _per_bin(self, batch: Mapping[str, torch.Tensor]) -> Optional[torch.Tensor]:
        """Sum of the per-bin embeddings, (B, N, H), or None when no per-bin input is on."""
        per_bin = None
        if self.state_embeddings is not None:
            per_bin = self.state_embeddings(batch["chromatin_states"].long())
        if self.signal_projection is not None:
            present = batch["signal_mask"]
            # where(), not a product: a NaN left at a missing value must not leak through.
            value = torch.where(present > 0, batch["signal"], torch.zeros_like(batch["signal"]))
            projected = self.signal_projection(torch.cat([value, present], dim=-1))
            per_bin = projected if per_bin is None else per_bin + projected
        if self.motif_projection is not None:
            projected = self.motif_projection(batch["motif_scores"])
            per_bin = projected if per_bin is None else per_bin + projected
        return per_bin

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Embed a batch dict into (B, L, H). Reads only the inputs this config turned on."""
        input_ids = batch["input_ids"]
        seq_len = input_ids.shape[1]
        if seq_len > self.max_positions:
            raise ValueError(
                f"sequence length {seq_len} exceeds max_position_embeddings {self.max_positions}"
            )
        embeddings = self.word_embeddings(input_ids.long())
        if self.dna_stem is not None:
            embeddings = embeddings + self.dna_stem(input_ids)
        if self.position_embeddings is not None:
            positions = self.position_embeddings.weight[:seq_len]
        else:
            positions = self.fixed_positions[:seq_len]
        embeddings = embeddings + positions.to(embeddings.dtype).unsqueeze(0)
        per_bin = self._per_bin(batch)
        if per_bin is not None:
            embeddings = embeddings + bins_to_tokens(per_bin, self.tokens_per_bin, seq_len)
        if self.cell_type_embeddings is not None:
            cell = self.cell_type_embeddings(batch["cell_type_ids"].long())  # (B, H)
            embeddings = embeddings + cell.unsqueeze(1)
        return self.dropout(self.LayerNorm(embeddings))
