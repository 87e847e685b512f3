"""One command for every benchmark: ``python -m bench [--quick] [--only training ...]``.

Runs bench/bench_training.py in this process and every other bench/bench_*.py as its own
subprocess with its defaults (they write their own results/*.json), then renders
bench/results/SUMMARY.md from all results. ``--quick`` runs only the training benchmark at a
micro shape (seconds; what the tests run); the others have no quick setting.
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
    parser.add_argument("--quick", action="store_true", help="training benchmark only, micro shape")
    parser.add_argument("--only", action="append", choices=names, help="run only this benchmark (repeatable)")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results",
                        help="where training.json and SUMMARY.md go (others write to bench/results)")
    parser.add_argument("--threads", type=int, default=None, help="training benchmark: torch threads")
    parser.add_argument("--clock", choices=sorted(bench_training.CLOCKS), default="wall",
                        help="training benchmark: wall time or process CPU seconds")
    args = parser.parse_args(argv)
    selected = ["training"] if args.quick else (args.only or names)
    failed = []
    for name in selected:
        print(f"== {name}", flush=True)
        if name == "training":
            bench_training.run(quick=args.quick, results=args.results_dir / "training.json",
                               threads=args.threads, clock=args.clock)
            continue
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        code = subprocess.run([sys.executable, str(BENCH_DIR / f"bench_{name}.py")], cwd=ROOT, env=env).returncode
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
