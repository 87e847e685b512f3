"""The CPU backend keeps freed tensor memory for reuse: training steps stop faulting fresh pages
in (glibc; elsewhere keep_freed_memory reports False). The speed is measured in
bench/bench_cpu_allocator.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebert_modelzoo.cpu_allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[2]
# Training steps of the demo's encoder shape (the benchmark's workload, without its own setting):
# with glibc's defaults each step faults thousands of fresh pages in.
LOOP = """
import json, sys
if sys.argv[1] == "backend":
    from ebert_modelzoo.training.backends.base import BackendOptions
    from ebert_modelzoo.training.backends.torch import TorchBackend
    TorchBackend(BackendOptions(target="CPU"))
from bench.bench_cpu_allocator import ALLOCATOR_SHAPES, child
print(json.dumps(child("default", ALLOCATOR_SHAPES["demo_tiny"], steps=5, threads=1)["minor_faults_per_step"]))
"""


def faults(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", LOOP, mode], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not keep_freed_memory(), reason="the C library has no mallopt (not glibc)")
def test_cpu_backend_stops_the_page_faults_of_training_steps():
    default, backend = faults("default"), faults("backend")
    assert default > 1_000  # the steps do fault without the setting: the test can fail
    assert backend < default / 10
