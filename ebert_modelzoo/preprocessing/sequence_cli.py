"""Command line of data_processing/create_sequence_data.py: labelled sequences -> shards + params."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from ebert_modelzoo.config.base import parse_section
from ebert_modelzoo.contract.data_params import load_data_params
from ebert_modelzoo.folder_lock import folder_lock
from ebert_modelzoo.owned import remove_owned
from ebert_modelzoo.preprocessing.config import SequenceDataConfig, load_sequence_config, resolve_sequence_paths
from ebert_modelzoo.preprocessing.exit_status import REPORTED, report
from ebert_modelzoo.preprocessing.sequence_data import build
from ebert_modelzoo.preprocessing.sequence_params import write_finetune_params

EXAMPLES = """\
examples:
  %(prog)s --train train.csv --validation dev.csv --test test.csv --output_dir my_data
  %(prog)s --table all.tsv --split_column split --output_dir my_data
  %(prog)s --train pos_and_neg.fa --output_dir my_data        # FASTA headers: >id LABEL=1 ...
  %(prog)s --config my_sequences.yaml                           # every key: README, "Fine-tune on your own labelled data"
then:
  python run.py CPU -p my_data/params.yaml -m train_and_eval
  python -m ebert_modelzoo.evaluation.predict -p my_data/params.yaml --out my_data/predictions.tsv
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="create_sequence_data.py", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Build an EBERT fine-tuning dataset (HDF5 shards, DNA only) from labelled sequences "
                    "(CSV/TSV with a header: sequence + label columns; or FASTA with labels in the headers), "
                    "and a params file to train on it.")
    parser.add_argument("--config", help="sequence-data YAML (instead of the file flags below)")
    parser.add_argument("--train", nargs="+", default=[], metavar="FILE", help="training files")
    parser.add_argument("--validation", "--dev", nargs="+", default=[], metavar="FILE", help="validation files")
    parser.add_argument("--test", nargs="+", default=[], metavar="FILE", help="test files")
    parser.add_argument("--table", nargs="+", default=[], metavar="FILE", help="files holding every split (with --split_column)")
    parser.add_argument("--split_column", help="column of --table naming each row's split (train/validation/dev/test)")
    parser.add_argument("--sequence_column", default="sequence", help="column holding the DNA (default: sequence, or seq)")
    parser.add_argument("--id_column", help="column with row ids carried into predictions (default: id or name if present)")
    parser.add_argument("--label_columns", nargs="+", metavar="COLUMN", help="label columns (default: every other column)")
    parser.add_argument("--window_length", type=int, help="window in bp (default: the longest sequence, rounded up to --bin_size)")
    parser.add_argument("--bin_size", type=int, default=200, help="bin size in bp (tokens_per_bin = bin_size / k; default 200)")
    parser.add_argument("--k", type=int, default=4, help="k-mer length of the tokens (default 4, as the shipped params)")
    parser.add_argument("--output_dir", help="where the split folders go (required without --config)")
    parser.add_argument("--params_out", help="params file to write (default: <output_dir>/params.yaml)")
    parser.add_argument("--init_checkpoint", help="pre-training checkpoint the params start from (default: from scratch)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def _config_from_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SequenceDataConfig:
    if not args.output_dir:
        parser.error("--output_dir is required (or give --config)")
    if not (args.train or args.table):
        parser.error("give --train FILE (and --validation/--test), --table FILE --split_column COL, or --config")
    raw: dict[str, Any] = {
        "sequences": {key: getattr(args, key) for key in ("train", "validation", "test", "table") if getattr(args, key)},
        "tokenizer": {"k": args.k},
        "bin_size": args.bin_size,
        "output": {"output_dir": args.output_dir},
    }
    for key in ("split_column", "id_column", "label_columns"):
        if getattr(args, key):
            raw["sequences"][key] = getattr(args, key)
    raw["sequences"]["sequence_column"] = args.sequence_column
    if args.window_length:
        raw["window_length"] = args.window_length
    return parse_section(SequenceDataConfig, resolve_sequence_paths(raw, Path.cwd()), "", source="command line")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse arguments, build the dataset and its params file; bad input prints one line and returns 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = load_sequence_config(args.config) if args.config else _config_from_flags(args, parser)
        output_dir = Path(args.output_dir or config.output.output_dir)
        created = not os.path.lexists(output_dir)
        with folder_lock(output_dir, "sequence preprocessing run"):
            try:
                splits = build(config, output_dir, progress=not args.no_progress)
            except Exception:
                if created:  # leave no trace of a run whose inputs failed
                    remove_owned(output_dir, output_dir)
                raise
            train = load_data_params(splits["train"])
            params = write_finetune_params(
                Path(args.params_out) if args.params_out else output_dir / "params.yaml", splits,
                list(train.label_names), config.tokenizer.k, config.bin_size, train.raw["window_length"],
                train.raw["num_windows"], Path(args.init_checkpoint) if args.init_checkpoint else None)
    except REPORTED as err:
        return report(err)
    print(f"wrote {', '.join(str(p) for p in splits.values())} and {params}\n"
          f"next: python run.py CPU -p {params} -m train_and_eval")
    return 0
