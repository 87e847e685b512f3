"""The object saved in tests/fixtures/cstorch_checkpoint.mdl: shaped like a trainer checkpoint, with
every kind of value the cstorch format encodes differently (tensors of several dtypes and 0-d,
an LZ4-compressed tensor, int dict keys, lists, tuples, None, bools, strings, floats and the
repeated small objects cstorch stores as links).

Regenerate the file (Cerebras venv only)::

    tools/cerebras_venv.sh run python -m tests.training.cstorch_sample tests/fixtures/cstorch_checkpoint.mdl
"""
from __future__ import annotations

import sys
from typing import Any

import torch


def sample_state() -> dict[str, Any]:
    """A deterministic checkpoint-shaped dict."""
    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    return {
        "format_version": 1,
        "backend": "cstorch",
        "step": 3,
        "model": {
            "encoder.layers.0.weight": weight,
            "encoder.layers.0.bias": torch.tensor([0.5, -1.25, 3.0]),
            "embeddings.word": torch.zeros(64, 16).index_fill_(0, torch.tensor([5, 9]), 1.5),  # compresses
            "half": (weight[0] * 3).to(torch.float16),
            "brain": (weight[1] - 2).to(torch.bfloat16),
        },
        "optimizer": {
            "state": {0: {"exp_avg": weight * 0.1, "beta1_power": torch.tensor(0.729)}, 1: {"exp_avg": torch.ones(3)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "amsgrad": False, "params": [0, 1]}],
        },
        "schedulers": [],
        "grad_scaler": None,
        "rng": {"torch": torch.arange(16, dtype=torch.uint8), "python": {"version": 3, "gauss_next": None}},
        "data_state": {"epoch": 0, "batch": 3},
        "params": {"trainer": {"init": {"model": {"name": "ebert", "cell_types": ["E003", "E017"]}}}},
        "flags": torch.tensor([True, False, True]),
        "big": 10**12,
    }


if __name__ == "__main__":
    import cerebras.pytorch as cstorch

    cstorch.save(sample_state(), sys.argv[1])
