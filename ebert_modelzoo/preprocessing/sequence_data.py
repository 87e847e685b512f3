"""Labelled sequences (tables, FASTA) -> the same HDF5 shards as genome data, DNA only.

Each row becomes one window of one pseudo cell type: its DNA centred in ``window_length`` bp and
padded with [PAD] (tokenizer.encode_centred), its labels [1, W, K]. ``window_chrom`` indexes the
split's input files (data_params ``contigs``), ``window_start`` is the row's 0-based number in its
file; ``sequence_length`` and (when the input has ids) ``row_id`` are added, so predictions name
the input row. Rows are read and written a shard at a time: memory is bounded by
``windows_per_shard``, not by the table.

The build goes into ``<output_dir>/.building/`` and each split folder is moved into place only
when every split is complete, so bad input or a kill never leaves a split that looks valid. The
command line holds the output folder's lock (folder_lock) for the whole build.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from ebert_modelzoo.contract import schema
from ebert_modelzoo.contract.data_params import data_params_header
from ebert_modelzoo.errors import InputError
from ebert_modelzoo.owned import remove_owned
from ebert_modelzoo.preprocessing.config import SequenceDataConfig
from ebert_modelzoo.preprocessing.sequence_files import RowBlock, SequenceFile
from ebert_modelzoo.preprocessing.writer import atomic_write_json, sha256_file, write_shard
from ebert_modelzoo.tokenizer import DNATokenizer

log = logging.getLogger(__name__)

DATASET_SEQUENCE_LENGTH = "sequence_length"
DATASET_ROW_ID = "row_id"
READ_BLOCK = 4096


def _files(config: SequenceDataConfig) -> dict[Optional[str], list[SequenceFile]]:
    """Input files by split (key None: table files holding every split)."""
    s = config.sequences
    make = lambda p, split_col=None: SequenceFile(p, s.sequence_column, s.id_column, split_col)  # noqa: E731
    if s.table:
        return {None: [make(p, s.split_column) for p in s.table]}
    return {split: [make(p) for p in getattr(s, split)] for split in schema.SPLITS if getattr(s, split)}


def _label_names(config: SequenceDataConfig, files: dict[Optional[str], list[SequenceFile]]) -> list[str]:
    first = next(iter(files.values()))[0]
    names = config.sequences.label_columns or first.label_columns
    if not names:
        raise InputError(f"{first.path}: no label columns (columns: {', '.join(first.columns)}); "
                         "a table needs sequence and at least one label column")
    for f in (f for fs in files.values() for f in fs):
        missing = [n for n in names if n not in f.label_columns]
        if f is first and missing:
            raise InputError(f"{f.path}:1: no label column(s) {missing} (columns: {', '.join(f.columns)})")
        if missing:
            log.info("%s: no column(s) %s: those labels are missing (weight 0) for its rows", f.path, missing)
    return list(names)


def _longest(files: list[SequenceFile]) -> tuple[int, int]:
    """(longest sequence, rows) over ``files``: the pass that sets an automatic window length
    (labels are not parsed here; the building pass checks them)."""
    longest = rows = 0
    for f in files:
        for block in f.blocks([], READ_BLOCK):
            longest = max(longest, max(map(len, block.sequences)))
            rows += len(block.sequences)
    return longest, rows


class _SplitWriter:
    """Collects one split's rows and writes them as shards of ``windows_per_shard`` windows."""

    def __init__(self, split: str, folder: Path, config: SequenceDataConfig, with_ids: bool) -> None:
        self.split, self.folder, self.config, self.with_ids = split, folder, config, with_ids
        self.pending: list[dict[str, np.ndarray]] = []
        self.pending_rows = 0
        self.shards: list[dict[str, Any]] = []
        self.positives: Optional[np.ndarray] = None
        self.known: Optional[np.ndarray] = None

    def add(self, part: dict[str, np.ndarray]) -> None:
        labels = part[schema.DATASET_LABELS]
        pos, known = (labels == schema.LABEL_BOUND).sum(0), (labels != schema.LABEL_AMBIGUOUS).sum(0)
        self.positives = pos if self.positives is None else self.positives + pos
        self.known = known if self.known is None else self.known + known
        self.pending.append(part)
        self.pending_rows += len(labels)
        size = self.config.output.windows_per_shard
        while self.pending_rows >= size:
            self._write(size)

    def close(self) -> None:
        if self.pending_rows:
            self._write(self.pending_rows)

    def _write(self, n: int) -> None:
        keys = self.pending[0].keys()
        joined = {k: np.concatenate([p[k] for p in self.pending]) for k in keys}
        now = {k: v[:n] for k, v in joined.items()}
        rest = {k: v[n:] for k, v in joined.items()}
        self.pending, self.pending_rows = ([rest] if len(rest[schema.DATASET_LABELS]) else []), len(rest[schema.DATASET_LABELS])
        arrays = {
            schema.DATASET_WINDOW_CHROM: now[schema.DATASET_WINDOW_CHROM],
            schema.DATASET_WINDOW_START: now[schema.DATASET_WINDOW_START],
            schema.DATASET_TOKENS: now[schema.DATASET_TOKENS],
            schema.DATASET_LABELS: now[schema.DATASET_LABELS][None],
            DATASET_SEQUENCE_LENGTH: now[DATASET_SEQUENCE_LENGTH],
        }
        if self.with_ids:
            arrays[DATASET_ROW_ID] = np.asarray([i.encode() for i in now[DATASET_ROW_ID]], dtype=np.bytes_)
        axis = {name: (1 if name == schema.DATASET_LABELS else 0) for name in arrays}
        index = len(self.shards)
        out = self.config.output
        sha = write_shard(self.folder, index, arrays, axis, out.compression, out.chunk_windows)
        self.shards.append({"file": schema.SHARD_PATTERN.format(index=index), "num_windows": n, "sha256": sha})


def _tokens(tokenizer: DNATokenizer, block: RowBlock, window: int, path: Path) -> np.ndarray:
    try:
        return tokenizer.encode_centred(block.sequences, window)
    except ValueError as err:
        where, problem = str(err).split(": ", 1)
        line = int(block.lines[int(where.split()[1])])
        hint = "; set window_length (a multiple of bin_size) or drop the row" if "longer than" in problem else ""
        raise InputError(f"{path}:{line}: {problem}{hint}") from None


def build(config: SequenceDataConfig, output_dir: Optional[str | Path] = None, progress: bool = True) -> dict[str, Path]:
    """Build the dataset; returns the split folders written.

    Raises:
        InputError: one line naming the file (and line) of the first bad input; nothing is left
            in the output folder.
    """
    output_dir = Path(output_dir or config.output.output_dir)
    files = _files(config)
    label_names = _label_names(config, files)
    all_files = [f for fs in files.values() for f in fs]
    window, total = config.window_length, None
    if window is None:
        longest, total = _longest(all_files)
        window = max(config.bin_size, -(-longest // config.bin_size) * config.bin_size)
        log.info("window_length %d bp (the longest sequence is %d bp, rounded up to bin_size %d)",
                 window, longest, config.bin_size)
    tokenizer = DNATokenizer(config.tokenizer.k)
    stage = output_dir / ".building"
    remove_owned(stage, output_dir)
    with_ids = all(f.id_column for f in all_files)
    sources = {split: [f.path for f in fs] for split, fs in files.items()}
    writers: dict[str, _SplitWriter] = {}
    bar = tqdm(total=total, unit="seq", unit_scale=True, desc="sequences", disable=not progress)
    try:
        for split_key, split_files in files.items():
            for file_index, f in enumerate(split_files):
                for block in f.blocks(label_names, READ_BLOCK):
                    part = {
                        schema.DATASET_WINDOW_CHROM: np.full(len(block.rows), file_index, dtype=np.int32),
                        schema.DATASET_WINDOW_START: block.rows,
                        schema.DATASET_TOKENS: _tokens(tokenizer, block, window, f.path),
                        schema.DATASET_LABELS: block.labels,
                        DATASET_SEQUENCE_LENGTH: np.fromiter(map(len, block.sequences), np.int32, len(block.rows)),
                    }
                    if with_ids:
                        part[DATASET_ROW_ID] = np.asarray(block.ids, dtype=object)
                    for split in (schema.SPLITS if split_key is None else (split_key,)):
                        rows = slice(None) if split_key is not None else np.flatnonzero(block.splits == split)
                        piece = {k: v[rows] for k, v in part.items()}
                        if len(piece[schema.DATASET_LABELS]):
                            if split not in writers:
                                writers[split] = _SplitWriter(split, stage / split, config, with_ids)
                            writers[split].add(piece)
                    bar.update(len(block.rows))
        if "train" not in writers:
            raise InputError(f"{all_files[0].path}: no training rows")
        for w in writers.values():
            w.close()
        for split, w in writers.items():
            _finish_split(config, w, stage / split, label_names, window, tokenizer,
                          sources.get(split, sources.get(None)), with_ids)
    except BaseException:
        remove_owned(stage, output_dir)
        raise
    finally:
        bar.close()
    written = {}
    for split in schema.SPLITS:
        final = output_dir / split
        if split in writers:
            remove_owned(final, output_dir)
            os.replace(stage / split, final)
            written[split] = final
    remove_owned(stage, output_dir)
    for split, w in writers.items():
        counts = ", ".join(f"{n} {int(p)}/{int(k)}" for n, p, k in zip(label_names, w.positives, w.known))
        log.info("%s: %d sequences (positives/labelled: %s)", written[split], sum(s["num_windows"] for s in w.shards), counts)
    return written


def _finish_split(config: SequenceDataConfig, writer: _SplitWriter, folder: Path, label_names: list[str],
                  window: int, tokenizer: DNATokenizer, paths: list[Path], with_ids: bool) -> None:
    names = [p.name for p in paths]
    contigs = names if len(set(names)) == len(names) else [str(p) for p in paths]
    params = data_params_header(
        kind="finetuning", split=writer.split, shards=writer.shards, contigs=contigs, regions=[],
        window_length=window, stride=window, bin_size=config.bin_size, k=tokenizer.k,
        vocab_size=tokenizer.vocab_size, cell_types=[config.cell_type], chromatin_states=None, tracks=None,
        labels={"names": label_names, "positives": writer.positives.tolist(), "labelled": writer.known.tolist(),
                "rule": "the table's value: 1 -> 1, 0 -> 0, -1/empty/NA -> -1 (missing)"},
    )
    params.update({
        "sequences": {
            "rows": "window_chrom = index of the input file in contigs, window_start = 0-based row in it",
            "row_ids": with_ids,
            "padding": "each sequence centred in window_length, [PAD] tokens on both sides (attention 0)",
        },
        "filters": {"candidate_windows": params["num_windows"]},
        "provenance": {
            "inputs": [{"role": "sequences", "path": str(p), "size": p.stat().st_size, "sha256": sha256_file(p)}
                       for p in paths],
            "config": config.model_dump(mode="json"),
        },
    })
    tokenizer.save_vocab(folder / schema.VOCAB_FILE)
    atomic_write_json(folder / schema.DATA_PARAMS_FILE, params)
