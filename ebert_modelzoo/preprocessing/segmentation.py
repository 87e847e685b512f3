"""ChromHMM dense segmentation BEDs (``chrom start end state [score strand ... itemRgb]``).

The state id is the leading number of the state name (``1_TssA`` -> 1, ``E7`` -> 7, ``12`` -> 12).
A bin gets the state of the segment covering its midpoint (``bin_start + bin_size // 2``), 0 if no
segment covers it. A parsed file is three arrays per contig: starts and ends (int32, or int64 for a
genome with a contig of 2^31 bp or more) and states (uint8); a run keeps them on disk
(``segmentation_store``), not in memory.
"""
from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.bed import check_order, read_records
from ebert_modelzoo.preprocessing.genome import ContigMap

MAX_STATE = 254  # uint8 storage, and S + 1 must still fit as the [MASK] state
_STATE_ID = re.compile(r"^[A-Za-z]*(\d+)")


@dataclass
class Segmentation:
    """One cell type's segmentation: per genome contig, sorted non-overlapping segments."""

    path: Path
    segments: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    state_names: dict[int, str] = field(default_factory=dict)

    def states_at(self, contig: str, positions: np.ndarray) -> np.ndarray:
        """State id (uint8) of the segment covering each position (on the contig), 0 where none does."""
        if contig not in self.segments:
            return np.zeros(positions.shape, dtype=np.uint8)
        return states_at(*self.segments[contig], positions)


def states_at(starts: np.ndarray, ends: np.ndarray, states: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """State id (uint8) of the segment (sorted, non-overlapping ``[starts, ends)`` with ``states``)
    covering each position, 0 where none does."""
    if not len(starts):
        return np.zeros(positions.shape, dtype=np.uint8)
    positions = np.asarray(positions).astype(starts.dtype, copy=False)  # else searchsorted copies ``starts``
    idx = np.searchsorted(starts, positions, side="right") - 1
    safe = np.clip(idx, 0, len(starts) - 1)
    inside = (idx >= 0) & (positions < ends[safe])
    return np.where(inside, states[safe], 0).astype(np.uint8)


def parse_state(path: Path, line_no: int, name: str) -> int:
    """State id of a ChromHMM state name."""
    match = _STATE_ID.match(name)
    if not match:
        raise InputError(f"{path}:{line_no}: state {name!r} has no state number (expected e.g. 1_TssA, E1, 3)")
    state = int(match.group(1))
    if not 1 <= state <= MAX_STATE:
        raise InputError(f"{path}:{line_no}: state {name!r}: number must be in 1..{MAX_STATE}")
    return state


def coordinate_dtype(genome_lengths: dict[str, int]) -> np.dtype:
    """The smallest integer dtype holding every coordinate of the genome: int32 unless a contig
    has 2^31 bp or more."""
    longest = max(genome_lengths.values(), default=0)
    return np.dtype(np.int32 if longest <= np.iinfo(np.int32).max else np.int64)


def read_segmentation(path: str | Path, genome_lengths: dict[str, int]) -> Segmentation:
    """Read and check a dense segmentation BED; contigs are renamed to the genome's.

    Raises:
        InputError: naming file and line of an empty, unsorted or overlapping record, a bad state,
            a segment past the contig's end, or a file with no record on any genome contig.
    """
    path = Path(path)
    seg = Segmentation(path)
    # typed buffers (8 + 8 + 1 bytes a segment while parsing), not lists of Python ints
    columns: dict[str, tuple[array, array, array]] = {}
    prev, seen = None, set()
    contigs = ContigMap(str(path), genome_lengths)
    for line_no, fields, start, end in read_records(path, min_columns=4):
        contig = fields[0]
        check_order(path, line_no, contig, start, prev, seen, allow_overlap=False)
        prev = (contig, start, end)
        target = contigs.get(contig)
        if target is None:
            continue
        if end > genome_lengths[target]:
            raise InputError(f"{path}:{line_no}: segment ends at {end}, past the end of {target} "
                             f"({genome_lengths[target]} bp; another genome build?)")
        state = parse_state(path, line_no, fields[3])
        known = seg.state_names.setdefault(state, fields[3])
        if known != fields[3]:
            raise InputError(f"{path}:{line_no}: state {state} is named both {known!r} and {fields[3]!r}")
        cols = columns.get(target) or columns.setdefault(target, (array("q"), array("q"), array("B")))
        cols[0].append(start)
        cols[1].append(end)
        cols[2].append(state)
    if prev is None:
        raise InputError(f"{path}: no segments (empty segmentation BED)")
    if not columns:
        raise InputError(f"{path}: no contig name matches the genome FASTA's (e.g. {contigs.skipped[0]!r})")
    contigs.announce()
    coords = coordinate_dtype(genome_lengths)
    seg.segments = {
        c: (np.frombuffer(s, dtype=np.int64).astype(coords), np.frombuffer(e, dtype=np.int64).astype(coords),
            np.frombuffer(st, dtype=np.uint8).copy())
        for c, (s, e, st) in columns.items()
    }
    return seg
