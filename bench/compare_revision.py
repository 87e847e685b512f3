"""Before/after for model changes: EBERT at a git revision vs EBERT in the work tree vs the peer,
interleaved in one process (what README.md, "Benchmarks", quotes).

    PYTHONPATH=. python -m bench.compare_revision main [--shapes tiny,base_like] [--threads 1]
        [--clock cpu] [--repeats 7] [--modes train_step,forward]

The revision's ebert_modelzoo/ is exported with ``git archive`` into a temporary directory and
imported as ``ebert_modelzoo_at_rev`` (its own imports rewritten to that name), so both versions
live side by side. Both are built with the same seed and fed the same batch; not a test.
"""
from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

from bench.bench_training import (
    CLOCKS, SHAPES, _cases, _forward_fn, _optimizer, _train_fn, ebert_config, make_batches,
)
from bench.common import interleaved, summarize, usable_cores, write_json

ROOT = Path(__file__).resolve().parents[1]
ALIAS = "ebert_modelzoo_at_rev"


def import_revision(revision: str, into: Path):
    """Export ebert_modelzoo/ at ``revision`` under ``into`` as package ALIAS; returns its ebert module."""
    archive = subprocess.run(["git", "archive", revision, "ebert_modelzoo"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / ALIAS
    (into / "ebert_modelzoo").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(re.sub(r"\bebert_modelzoo\b", ALIAS, path.read_text()))
    sys.path.insert(0, str(into))
    ebert = importlib.import_module(f"{ALIAS}.models.ebert")
    # The model section's schema: config/model.py, models/config.py in revisions before issue 15.
    config = f"{ALIAS}.config.model" if (package / "config" / "model.py").is_file() else f"{ALIAS}.models.config"
    return ebert, importlib.import_module(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision")
    parser.add_argument("--shapes", default="tiny,base_like")
    parser.add_argument("--modes", default="train_step")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compare_revision.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads or usable_cores())
    device = torch.device("cpu")
    commit = subprocess.run(["git", "rev-parse", args.revision], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    results = {"revision": args.revision, "commit": commit, "threads": torch.get_num_threads(), "clock": args.clock,
               "repeats": args.repeats, "shapes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        old_ebert, old_config = import_revision(args.revision, Path(tmp))
        for name in args.shapes.split(","):
            shape = SHAPES[name]
            cases = _cases(shape, device, None)
            batch, _ = make_batches(shape)
            torch.manual_seed(0)
            keys = old_config.EBertPretrainConfig.model_fields  # keys the revision knows
            before = old_ebert.EBertForPreTrainingModel(old_config.EBertPretrainConfig(
                **{k: v for k, v in ebert_config(shape).model_dump().items() if k in keys}))
            cases = {"ebert_at_revision": (before, lambda: before(batch)),
                     "ebert": cases["ebert"], "peer": cases["peer"]}
            results["shapes"][name] = {}
            for mode in args.modes.split(","):
                fns = {key: (_train_fn(model, loss, _optimizer(model, device), device, None)
                             if mode == "train_step" else _forward_fn(model, loss, device, None))
                       for key, (model, loss) in cases.items()}
                times = interleaved(fns, repeats=args.repeats, warmup=1, clock=CLOCKS[args.clock])
                median = {key: summarize(value)["median_s"] for key, value in times.items()}
                entry = {"median_s": median,
                         "revision_over_worktree": median["ebert_at_revision"] / median["ebert"],
                         "peer_over_revision": median["peer"] / median["ebert_at_revision"],
                         "peer_over_worktree": median["peer"] / median["ebert"]}
                results["shapes"][name][mode] = entry
                print(name, mode, {k: round(v * 1e3, 1) for k, v in median.items()},
                      {k: round(v, 3) for k, v in entry.items() if k != "median_s"}, flush=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
