"""The token/bin layout of a sample: where [CLS], the DNA tokens, [SEP] and each bin's tokens sit.

Position 0 is [CLS]; positions 1 .. n hold the window's n DNA tokens; position n + 1 is [SEP];
anything after it is [PAD]. With N bins of ``tokens_per_bin`` tokens (n = N * tokens_per_bin),
bin b covers positions 1 + b * tokens_per_bin .. (b + 1) * tokens_per_bin, so every token maps
to one genomic range and every bin to consecutive tokens.

Pure Python: the functions take ints, numpy arrays or torch tensors alike, so the processors
(numpy), the masking (numpy) and the model (torch) all compute the layout here.
"""
from __future__ import annotations

from typing import TypeVar

Index = TypeVar("Index")
"""An int, or an integer numpy array or torch tensor."""

CLS_POSITION = 0
"""Position of [CLS] in every sample."""
SPECIAL_TOKENS = 2
"""Positions around the DNA: [CLS] before it, [SEP] after it."""


def dna_positions(num_tokens: int) -> slice:
    """The positions of ``num_tokens`` DNA tokens: 1 .. num_tokens."""
    return slice(1, 1 + num_tokens)


def sep_position(num_tokens: int) -> int:
    """The position of [SEP] after ``num_tokens`` DNA tokens."""
    return 1 + num_tokens


def sequence_length(num_tokens: int) -> int:
    """The tokens a sample of ``num_tokens`` DNA tokens needs: [CLS], the DNA, [SEP]."""
    return num_tokens + SPECIAL_TOKENS


def token_position(dna_index: Index) -> Index:
    """The sequence position of the DNA token with 0-based index ``dna_index`` in its window."""
    return dna_index + 1


def bin_first_position(bin_index: Index, tokens_per_bin: int) -> Index:
    """The position of the first token of bin ``bin_index``: 1 + bin_index * tokens_per_bin."""
    return bin_index * tokens_per_bin + 1


def central_bins_first_position(num_bins: int, pooled_bins: int, tokens_per_bin: int) -> int:
    """The position of the first token of the ``pooled_bins`` central bins of ``num_bins``."""
    return bin_first_position((num_bins - pooled_bins) // 2, tokens_per_bin)


def check_bins_fit(num_bins: int, tokens_per_bin: int, seq_len: int) -> int:
    """Number of DNA tokens the bins cover; raises ValueError if they leave no room for [CLS]/[SEP]."""
    covered = num_bins * tokens_per_bin
    if sequence_length(covered) > seq_len:
        raise ValueError(
            f"{num_bins} bins x tokens_per_bin {tokens_per_bin} = {covered} tokens do not fit in a "
            f"sequence of {seq_len} tokens with [CLS] and [SEP]; check tokens_per_bin against the data"
        )
    return covered
