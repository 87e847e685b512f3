"""The batch dict: the one contract between data processors, the model, the trainer and backends.

Dimensions:
    B  batch size
    L  sequence length in tokens, including [CLS] and [SEP]
    P  masked-LM positions per sample (fixed, padded with masked_lm_mask = 0)
    N  epigenome bins per sample
    T  signal tracks (assays)
    M  motif tracks (known motifs scored per bin)
    Q  masked chromatin-state positions per sample (fixed, padded with masked_state_mask = 0)
    K  labels per sample (e.g. one per TF)

Token/bin layout (``contract/layout.py`` computes it): position 0 is [CLS]; positions
1 .. N * tokens_per_bin hold DNA tokens; the next position is [SEP]; anything after that is [PAD]
(attention_mask = 0). The DNA token at position p (1 <= p <= N * tokens_per_bin) lies in bin
(p - 1) // tokens_per_bin, so every token maps to one genomic range and every bin to
tokens_per_bin consecutive tokens.

Chromatin-state ids: 0 = unknown / missing, 1 .. S = the S states of the segmentation model
(ChromHMM state k is id k), S + 1 = [MASK] (input only, for the masked-state objective).

Every tensor has a static shape fixed by the config, so the same batch lowers on Cerebras.
Integer tensors are int32; masks and weights are float32 so losses are reduced with weights
rather than boolean indexing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

STATE_UNKNOWN = 0


def state_mask_id(num_states: int) -> int:
    """Id of the [MASK] chromatin state for a segmentation model with ``num_states`` states."""
    return num_states + 1


def state_vocab_size(num_states: int) -> int:
    """Size of the chromatin-state embedding table: unknown, the states, and [MASK]."""
    return num_states + 2


@dataclass(frozen=True)
class Field:
    """One batch-dict entry: its dtype, its dimensions and the feature group it belongs to."""

    dtype: torch.dtype
    dims: tuple[str, ...]
    group: str
    doc: str


FIELDS: dict[str, Field] = {
    # DNA, always present
    "input_ids": Field(torch.int32, ("B", "L"), "dna", "DNA token ids with [CLS]/[SEP]/[PAD]"),
    "attention_mask": Field(torch.int32, ("B", "L"), "dna", "1 for real tokens, 0 for [PAD]"),
    # masked language model (pre-training)
    "masked_lm_positions": Field(torch.int32, ("B", "P"), "mlm", "token positions that were masked"),
    "labels": Field(torch.int32, ("B", "P"), "mlm", "original token id at each masked position"),
    "masked_lm_mask": Field(torch.float32, ("B", "P"), "mlm", "1 for a real masked position, 0 for padding"),
    # chromatin states
    "chromatin_states": Field(torch.int32, ("B", "N"), "states", "state id per bin (0 unknown, S+1 [MASK])"),
    "masked_state_positions": Field(torch.int32, ("B", "Q"), "state_mlm", "bins whose state was masked"),
    "masked_state_labels": Field(torch.int32, ("B", "Q"), "state_mlm", "original state id (1..S) at each masked bin"),
    "masked_state_mask": Field(torch.float32, ("B", "Q"), "state_mlm", "1 for a real masked bin, 0 for padding"),
    # continuous signal tracks
    "signal": Field(torch.float32, ("B", "N", "T"), "signal", "transformed, normalised signal per bin and track"),
    "signal_mask": Field(torch.float32, ("B", "N", "T"), "signal", "1 where the value is measured, 0 where missing"),
    # known motifs
    "motif_scores": Field(torch.float32, ("B", "N", "M"), "motifs", "best motif score per bin and motif, in [0, 1]"),
    # cell type
    "cell_type_ids": Field(torch.int32, ("B",), "cell_type", "cell-type index into data_params' cell-type list"),
    # fine-tuning targets
    "seq_labels": Field(torch.float32, ("B", "K"), "seq_labels", "multi-label targets per window (0/1)"),
    "seq_label_weights": Field(torch.float32, ("B", "K"), "seq_labels", "0 for missing or ambiguous labels"),
    "bin_labels": Field(torch.float32, ("B", "N", "K"), "bin_labels", "multi-label targets per bin (0/1)"),
    "bin_label_weights": Field(torch.float32, ("B", "N", "K"), "bin_labels", "0 for missing or ambiguous labels"),
}

GROUPS: dict[str, tuple[str, ...]] = {}
for _name, _field in FIELDS.items():
    GROUPS.setdefault(_field.group, ())
    GROUPS[_field.group] += (_name,)


def check_batch(
    batch: Mapping[str, torch.Tensor],
    groups: tuple[str, ...] = ("dna",),
    dims: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Check a batch dict against the contract and return the resolved dimensions.

    Every key of each requested group must be present with the contract's dtype, and dimensions
    must agree across keys (and with ``dims`` where given). Unknown keys are errors, so a typo in
    a producer cannot silently drop an input.

    Raises:
        ValueError: naming the offending key and what was expected.
    """
    resolved: dict[str, int] = dict(dims or {})
    for key in batch:
        if key not in FIELDS:
            raise ValueError(f"batch key {key!r}: not part of the batch contract (ebert_modelzoo/contract/batch.py)")
    for group in groups:
        if group not in GROUPS:
            raise ValueError(f"unknown batch group {group!r}; known: {sorted(GROUPS)}")
        for key in GROUPS[group]:
            if key not in batch:
                raise ValueError(f"batch key {key!r}: missing (required by group {group!r})")
    for key, tensor in batch.items():
        field = FIELDS[key]
        if tensor.dtype != field.dtype:
            raise ValueError(f"batch key {key!r}: dtype {tensor.dtype}, expected {field.dtype}")
        if tensor.dim() != len(field.dims):
            raise ValueError(f"batch key {key!r}: shape {tuple(tensor.shape)}, expected dims {field.dims}")
        for dim_name, size in zip(field.dims, tensor.shape):
            expected = resolved.setdefault(dim_name, int(size))
            if expected != size:
                raise ValueError(
                    f"batch key {key!r}: dimension {dim_name} is {size}, but other keys have {expected}"
                )
    return resolved
