"""Windows from a BED of labelled regions (peaks plus background, say) instead of tiling a split.

``center`` puts one window on each region's midpoint; ``tile`` steps windows at the stride
through each region (a region shorter than a window gets one centred window). A window that would
leave its contig is dropped (counted). Its split comes from a BED column, or else from the split
section: the split whose region holds the whole window (windows outside every split region are
dropped, counted). Labels from BED columns are the same for every cell type. Each split's windows
are sorted into genome order (ties keep the file's order), so shards read the genome in one pass
and tracks of the predictions are in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ebert_modelzoo.contract import schema
from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.bed import numbered_lines, read_records
from ebert_modelzoo.preprocessing.config import RegionsConfig
from ebert_modelzoo.preprocessing.genome import ContigMap
from ebert_modelzoo.preprocessing.sequence_files import SPLIT_NAMES, label_code
from ebert_modelzoo.preprocessing.windows import Region


@dataclass
class SplitWindows:
    """One split's windows in genome order, with their BED-column labels."""

    contigs: list[str] = field(default_factory=list)
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int8))
    """int8 [W, K_columns]"""


def _header(path: Path) -> list[str]:
    first = next((line for _, line in numbered_lines(path)), "")
    return first[1:].strip().split("\t") if first.startswith("#") else []


def _column(spec: Union[int, str], header: list[str], path: Path, key: str) -> int:
    """0-based index of a 1-based column number or a header name."""
    if isinstance(spec, int):
        if spec < 1:
            raise InputError(f"regions.{key}: columns are numbered from 1, got {spec}")
        return spec - 1
    if spec not in header:
        raise InputError(f"{path}:1: regions.{key}: no column named {spec!r} in the '#' header "
                         f"({', '.join(header) or 'the BED has none'}); use a 1-based column number")
    return header.index(spec)


def region_windows(config: RegionsConfig, window_length: int, stride: int, genome_names: list[str],
                   genome_lengths: dict[str, int],
                   splits: Optional[dict[str, list[Region]]]) -> tuple[dict[str, SplitWindows], dict[str, int]]:
    """The windows of every split and the counts of dropped ones.

    Raises:
        InputError: naming the BED and line of a malformed record, label or split value.
    """
    path = Path(config.bed)
    header = _header(path)
    label_names = list(config.label_columns)
    label_cols = [_column(c, header, path, f"label_columns.{n}") for n, c in config.label_columns.items()]
    split_col = _column(config.split_column, header, path, "split_column") if config.split_column is not None else None
    need = max([2, *label_cols, *([split_col] if split_col is not None else [])]) + 1
    contig_map = ContigMap(str(path), genome_names)
    order = {name: i for i, name in enumerate(genome_names)}
    by_split: dict[str, list[tuple[int, int, int, tuple[int, ...]]]] = {s: [] for s in schema.SPLITS}
    dropped = {"dropped_contig_end": 0, "dropped_outside_split": 0, "regions": 0}
    row = 0
    for line_no, fields, start, end in read_records(path, min_columns=need):
        dropped["regions"] += 1
        contig = contig_map.get(fields[0])
        if contig is None:
            continue
        labels = tuple(label_code(fields[c], path, line_no, n) for n, c in zip(label_names, label_cols))
        split = None
        if split_col is not None:
            split = SPLIT_NAMES.get(fields[split_col].strip())
            if split is None:
                raise InputError(f"{path}:{line_no}: split {fields[split_col]!r} is not train, validation "
                                 "(dev, valid, val) or test")
        if config.windows == "tile" and end - start >= window_length:
            starts = range(start, end - window_length + 1, stride)
        else:
            starts = [(start + end) // 2 - window_length // 2]
        for s in starts:
            if s < 0 or s + window_length > genome_lengths[contig]:
                dropped["dropped_contig_end"] += 1
                continue
            target = split if split is not None else _split_of(splits, contig, s, s + window_length)
            if target is None:
                dropped["dropped_outside_split"] += 1
                continue
            by_split[target].append((order[contig], s, row, labels))
            row += 1
    contig_map.announce()
    out = {}
    for split, items in by_split.items():
        items.sort(key=lambda x: (x[0], x[1], x[2]))
        out[split] = SplitWindows(
            contigs=[genome_names[i[0]] for i in items],
            starts=np.asarray([i[1] for i in items], dtype=np.int64),
            labels=np.asarray([i[3] for i in items], dtype=np.int8).reshape(len(items), len(label_names)),
        )
    return out, dropped


def _split_of(splits: Optional[dict[str, list[Region]]], contig: str, start: int, end: int) -> Optional[str]:
    for split, regions in (splits or {}).items():
        if any(r.contig == contig and r.start <= start and end <= r.end for r in regions):
            return split
    return None

