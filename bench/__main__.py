"""One command for every benchmark: ``python -m bench [--quick] [--only training ...]``.

Runs bench/bench_training.py in this process and every other bench/bench_*.py as its own
subprocess (each writes its results/<name>.json), then renders bench/results/SUMMARY.md from all
results. ``--quick`` runs each at a small size (seconds; what the tests run; the Cerebras lowering
records that it was not run) and judges no target.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from bench import bench_training
from bench.summary import write_summary

BENCH_DIR = Path(__file__).parent
ROOT = BENCH_DIR.parent


def available() -> list[str]:
    """Names of the benchmarks in bench/ (bench_<name>.py)."""
    return sorted(path.stem.removeprefix("bench_") for path in BENCH_DIR.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark at a small size, seconds")
    parser.add_argument("--only", action="append", choices=names, help="run only this benchmark (repeatable)")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results",
                        help="where the results JSONs and SUMMARY.md go")
    parser.add_argument("--threads", type=int, default=None, help="training (and data_processor model steps): torch threads")
    parser.add_argument("--clock", choices=sorted(bench_training.CLOCKS), default="wall",
                        help="training benchmark: wall time or process CPU seconds")
    args = parser.parse_args(argv)
    selected = args.only or names
    failed = []
    for name in selected:
        print(f"== {name}", flush=True)
        if name == "training":
            bench_training.run(quick=args.quick, results=args.results_dir / "training.json",
                               threads=args.threads, clock=args.clock)
            continue
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, str(BENCH_DIR / f"bench_{name}.py"), "--out", str(args.results_dir / f"{name}.json")]
        if name == "data_processor" and args.threads:
            command += ["--threads", str(args.threads)]
        code = subprocess.run(command + ["--quick"] * args.quick, cwd=ROOT, env=env).returncode
        if code:
            failed.append(name)
    summary = write_summary(args.results_dir)
    print(f"wrote {summary}")
    if failed:
        print(f"error: benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
