"""Command line shared by data_processing/create_pretraining_data.py and create_finetuning_data.py."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from ebert_modelzoo.folder_lock import folder_lock
from ebert_modelzoo.owned import remove_owned
from ebert_modelzoo.preprocessing.config import load_config
from ebert_modelzoo.preprocessing.exit_status import REPORTED, report
from ebert_modelzoo.preprocessing.pipeline import Kind, make_plan, run


def _shard(text: str) -> tuple[int, int]:
    try:
        index, total = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < total:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: need 0 <= I < N")
    return index, total


def main(kind: Kind, argv: Optional[Sequence[str]] = None) -> int:
    """Parse arguments, build the dataset; bad input prints one line and returns 2."""
    parser = argparse.ArgumentParser(description=f"Build the EBERT {kind} dataset (HDF5 shards) from one YAML config.")
    parser.add_argument("--config", required=True, help="preprocessing YAML (see data_processing/configs/)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes building shards in parallel")
    parser.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                        help="build only part I of N (machines building disjoint parts of one dataset)")
    parser.add_argument("--output_dir", default=None, help="override output.output_dir of the config")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    try:
        config = load_config(args.config, kind)
        output_dir = Path(args.output_dir or config.output.output_dir)
        created = not os.path.lexists(output_dir)
        part = None if args.shard[1] == 1 else f"part-{args.shard[0]}-of-{args.shard[1]}"
        with folder_lock(output_dir, "preprocessing run", part):
            try:
                plan = make_plan(config, kind, str(output_dir))
            except Exception:
                if created:  # leave no trace of a run whose inputs failed
                    remove_owned(output_dir, output_dir)
                raise
            run(plan, workers=args.workers, shard=args.shard, progress=not args.no_progress)
    except REPORTED as err:
        return report(err)
    return 0
