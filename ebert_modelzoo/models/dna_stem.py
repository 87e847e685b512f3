"""A nucleotide-resolution convolutional stem for the k-mer token sequence.

Each token's k bases, one-hot (A C G T; [N] and the specials all zero), run through one
convolution over the window's DNA at base resolution; ReLU; the maximum over each token's k
positions; a linear map to the hidden size, added to the token embeddings. Motifs are then seen
base by base (DeepBind's and FactorNet's first layer) while the transformer stays at k-mer length.
The map starts at zero, so a model loaded from a checkpoint without the stem computes what it
computed before until fine-tuning moves it.

Shapes: B batch, L tokens, k bases per token, F filters, H hidden.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ebert_modelzoo.config.model import EBertEncoderConfig
from ebert_modelzoo.tokenizer import DNATokenizer, kmer_size


def one_hot_bases(tokenizer: DNATokenizer) -> torch.Tensor:
    """(V, k * 4) float: each token id's bases one-hot, base after base; zeros for non-k-mer ids."""
    digits = torch.as_tensor(tokenizer.base_indices())  # (V, k), -1 = not a k-mer: no match below
    return (digits.unsqueeze(-1) == torch.arange(4)).float().flatten(1)


class BaseConvStem(nn.Module):
    """Token ids (B, L) -> (B, L, H) per-token vectors from a base-resolution convolution."""

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        tokenizer = DNATokenizer(kmer_size(config.vocab_size))  # the config checked it is a k-mer vocabulary
        self.k = tokenizer.k
        self.register_buffer("bases", one_hot_bases(tokenizer), persistent=False)
        self.width = config.dna_conv_width
        # The convolution as a linear map of each base's window (weight [F, width * 4], window
        # position by position): Cerebras lowers this; an nn.Conv1d passed --validate_only's
        # check but emitted no Cerebras IR (cirh.mlir empty).
        self.conv = nn.Linear(4 * config.dna_conv_width, config.dna_conv_filters)
        self.projection = nn.Linear(config.dna_conv_filters, config.hidden_size)

    def zero_projection(self) -> None:
        """Start the stem's contribution at 0 (called after the model's weight initialisation)."""
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        bases = F.embedding(input_ids.long(), self.bases)  # (B, L, k * 4)
        sites = length * self.k
        padded = F.pad(bases.reshape(batch, sites, 4), (0, 0, self.width // 2, self.width // 2))
        windows = torch.cat([padded[:, j : j + sites] for j in range(self.width)], dim=-1)  # (B, L * k, width * 4)
        filtered = torch.relu(self.conv(windows))  # (B, L * k, F)
        per_token = filtered.reshape(batch, length, self.k, -1).amax(dim=2)  # (B, L, F)
        return self.projection(per_token)
