"""Shared benchmark helpers: interleaved timing with medians, machine facts, crash-safe JSON.

Timings on a shared machine are noisy, so every comparison runs its cases in the same process,
interleaved round by round (A, B, then B, A, ...: alternating the order cancels drift and
warm-cache advantages), and reports medians. Ratios are always of medians taken side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ebert_modelzoo.atomic import atomic_write_text


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A no-argument function that waits for queued work on ``device`` (a no-op on CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def interleaved(
    cases: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per call of each case, ``repeats`` times each, interleaved round by round.

    Every case runs ``warmup`` untimed calls first (in the same interleaved order). Round r runs
    the cases in their given order when r is even and reversed when r is odd. ``clock`` is wall
    time by default; ``time.process_time`` (CPU seconds of this process) is steadier when other
    jobs share the cores, and is what single-threaded A/B comparisons use.
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            sync()
            start = clock()
            cases[name]()
            sync()
            times[name].append(clock() - start)
    return times


def summarize(seconds: list[float]) -> dict[str, float]:
    """Median, min and max of a list of timings, in seconds."""
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "repeats": len(seconds),
    }


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_start": load,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_json(path: Path, data: Any) -> None:
    """Crash-safe JSON dump (indent 1, trailing newline)."""
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


# Runs the command and prints its exit code and peak RSS: a fresh small interpreter, because a
# child's ru_maxrss starts from the RSS of the process it was forked from (kept across exec), and
# this process may hold torch.
_MEASURE = (
    "import json, os, subprocess, sys\n"
    "proc = subprocess.Popen(sys.argv[1:], stdout=sys.stderr)\n"
    "_, status, usage = os.wait4(proc.pid, 0)\n"
    "print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))\n"
)


def run_measured(command: list[str], env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> dict[str, Any]:
    """Run ``command`` and return its wall seconds, exit code, output (stdout and stderr) and
    peak RSS in MB.

    The peak comes from wait4: the largest resident set of the process and of every descendant it
    waited for (pool workers included), not their sum.
    """
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *command], env=None if env is None else dict(env),
                          cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"measuring {command[:2]} failed: {proc.stderr[-2000:]}")
    code, maxrss_kb = json.loads(proc.stdout.splitlines()[-1])
    return {"seconds": seconds, "returncode": code, "output": proc.stderr,
            "peak_rss_mb": maxrss_kb / 1024}


def target(wanted: str, measured: Any, met: bool | None) -> dict[str, Any]:
    """One target row of a results JSON (``met`` None: not measured or no target stated)."""
    return {"target": wanted, "measured": measured, "met": met}


def bench_parser(doc: str, quick_help: str, results: Path) -> argparse.ArgumentParser:
    """The arguments every benchmark takes: ``--quick`` (small sizes, seconds; ``quick_help`` says
    which) and ``--out`` (its results JSON, default ``results``). The description is the first
    line of ``doc``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=results, help="results JSON to write")
    return parser
