"""Optimizer parameter groups: BERT applies no weight decay to biases and LayerNorm weights."""
from __future__ import annotations

from typing import Any

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed matrices/embeddings, and undecayed biases and normalisation weights.

    A parameter is undecayed when it is 1-D (biases, LayerNorm weight and bias), which covers
    every LayerNorm whatever its attribute name. Tied weights appear once.
    """
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.dim() < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]
