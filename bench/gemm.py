"""The machine's matmul throughput (the roofline the training step is measured against), and the
peak bf16 dense FLOP/s of known GPUs (for MFU when CUDA is present).

GPU peaks are the vendors' dense (no sparsity) bf16 tensor-core figures from their datasheets.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import torch

from bench.common import interleaved, summarize, synchronizer

# (substring of torch.cuda.get_device_name(), peak dense bf16 FLOP/s); first match wins,
# so the more specific names come first.
GPU_PEAK_BF16 = (
    ("H200", 989.4e12),
    ("H100 PCIe", 756.0e12),
    ("H100", 989.4e12),  # SXM / HBM3
    ("A100", 312.0e12),
    ("L40S", 362.05e12),
    ("A10G", 70.0e12),
    ("A10", 125.0e12),
    ("L4", 121.0e12),
    ("RTX 4090", 165.2e12),
    ("V100", 125.0e12),  # fp16 tensor cores; V100 has no bf16
)


def gpu_peak_bf16(device_name: str) -> Optional[tuple[str, float]]:
    """(table key, peak bf16 FLOP/s) for a CUDA device name, or None if it is not in the table."""
    for key, peak in GPU_PEAK_BF16:
        if key in device_name:
            return key, peak
    return None


def gemm_flops(size: int) -> float:
    """FLOPs of one (size x size) @ (size x size) matmul."""
    return 2.0 * size**3


def gemm_call(size: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Callable[[], None]:
    """A no-argument function computing one (size x size) @ (size x size) matmul into a buffer."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    return lambda: torch.matmul(a, b, out=out)


def gemm_throughput(
    size: int = 2048,
    repeats: int = 5,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median FLOP/s of a (size x size) @ (size x size) matmul (2 * size^3 FLOPs per call)."""
    times = interleaved(
        {"gemm": gemm_call(size, dtype, device)},
        repeats=repeats, warmup=1, sync=synchronizer(torch.device(device)), clock=clock,
    )["gemm"]
    stats = summarize(times)
    flops = gemm_flops(size)
    return {
        "size": size,
        "dtype": str(dtype).replace("torch.", ""),
        "flops_per_call": flops,
        **stats,
        "flop_per_s": flops / stats["median_s"],
        "best_flop_per_s": flops / stats["min_s"],
    }
