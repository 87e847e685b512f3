"""Allocator settings for CPU training: keep freed tensor memory in the process for reuse.

glibc serves large blocks with mmap and returns them to the OS when freed, and trims freed memory
off the top of its heap. A CPU training step allocates and frees the same activations every step
(the attention probabilities alone are batch x heads x L x L floats), so every step faults fresh
zeroed pages in again: the demo's 2-core run spent a tenth of its CPU time in the kernel (81
million minor page faults). With higher thresholds those blocks stay in the heap and are reused;
`bench/bench_cpu_allocator.py` measures the effect side by side.
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 << 20
"""Blocks below 256 MiB come from the heap (glibc's default adapts up to 32 MiB)."""
TRIM_THRESHOLD_BYTES = 1 << 30
"""Up to 1 GiB of freed heap stays with the process."""


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (later allocations); returns
    whether both were set (False where the C library has no ``mallopt``, e.g. macOS, or refuses a
    value: the other one still applies)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    results = [mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)]
    return all(results)
