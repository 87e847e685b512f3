"""Fine-tuning labels: ENCODE-DREAM label TSVs and narrowPeak/BED positives, per (cell type, TF).

The label of a range R (a window's central ``center_bp`` bases, or one bin for bin labels):
  DREAM TSV   over the label windows lying wholly inside R: 1 if any is B, else -1 if any is A,
              else 0 if any is U; -1 if none lies inside R (not labelled).
  peaks       1 if a peak summit (narrowPeak column 10, else the peak's midpoint) lies in R,
              else -1 if a peak overlaps R (bound nearby: ambiguous, not negative), else 0.
A cell type a TF has no labels for gets -1 (missing) for that TF.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ebert_modelzoo.data.schema import LABEL_AMBIGUOUS, LABEL_BOUND, LABEL_UNBOUND
from ebert_modelzoo.preprocessing.bed import check_order, open_text, read_records
from ebert_modelzoo.preprocessing.errors import InputError
from ebert_modelzoo.preprocessing.genome import ContigMap

_CODES = {"U": 0, "A": 1, "B": 2}


@dataclass
class DreamLabels:
    """Per genome contig: label-window starts/ends and, per cell type, cumulative U/A/B counts."""

    starts: dict[str, np.ndarray] = field(default_factory=dict)
    ends: dict[str, np.ndarray] = field(default_factory=dict)
    cumcounts: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (cell, contig) -> [n+1, 3]
    cell_types: list[str] = field(default_factory=list)

    def label(self, cell: str, contig: str, r_start: np.ndarray, r_end: np.ndarray) -> np.ndarray:
        if (cell, contig) not in self.cumcounts:
            return np.full(r_start.shape, LABEL_AMBIGUOUS, dtype=np.int8)
        lo = np.searchsorted(self.starts[contig], r_start, side="left")
        hi = np.maximum(np.searchsorted(self.ends[contig], r_end, side="right"), lo)
        cum = self.cumcounts[(cell, contig)]
        counts = cum[hi] - cum[lo]  # (ranges, U/A/B)
        out = np.full(r_start.shape, LABEL_AMBIGUOUS, dtype=np.int8)
        out[counts[:, 0] > 0] = LABEL_UNBOUND
        out[counts[:, 1] > 0] = LABEL_AMBIGUOUS
        out[counts[:, 2] > 0] = LABEL_BOUND
        return out


def read_dream_tsv(path: str | Path, genome_lengths: dict[str, int], contigs: set[str]) -> DreamLabels:
    """Read an ENCODE-DREAM label TSV (header ``chr start stop CELL...``), keeping ``contigs``.

    Raises:
        InputError: naming file and line of a bad header, code, record or order.
    """
    path = Path(path)
    labels = DreamLabels()
    rows: dict[str, tuple[list[int], list[int], list[str]]] = {}
    with open_text(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if len(header) < 4 or [h.lower() for h in header[:3]] != ["chr", "start", "stop"]:
            raise InputError(f"{path}:1: expected the header 'chr start stop CELL...' (ENCODE-DREAM labels)")
        labels.cell_types = header[3:]
        contig_map = ContigMap(str(path), genome_lengths)
        prev, seen = None, set()
        for line_no, line in enumerate(fh, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(header):
                raise InputError(f"{path}:{line_no}: {len(fields)} columns, the header has {len(header)}")
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise InputError(f"{path}:{line_no}: start/stop are not integers") from None
            if end <= start:
                raise InputError(f"{path}:{line_no}: empty record")
            check_order(path, line_no, fields[0], start, prev, seen, allow_overlap=True)
            if prev is not None and prev[0] == fields[0] and end < prev[2]:
                raise InputError(f"{path}:{line_no}: label windows must all have the same length")
            prev = (fields[0], start, end)
            contig = contig_map.get(fields[0])
            if contig not in contigs:
                continue
            codes = "".join(fields[3:])
            if codes.strip("UAB"):
                raise InputError(f"{path}:{line_no}: labels must be U, A or B, found {fields[3:]!r}")
            row = rows.setdefault(contig, ([], [], []))
            row[0].append(start)
            row[1].append(end)
            row[2].append(codes)
    contig_map.announce()
    for contig, (starts, ends, codes) in rows.items():
        labels.starts[contig] = np.asarray(starts, dtype=np.int64)
        labels.ends[contig] = np.asarray(ends, dtype=np.int64)
        table = np.frombuffer("".join(codes).encode(), dtype=np.uint8).reshape(len(codes), -1)  # (rows, cells)
        for c, cell in enumerate(labels.cell_types):
            onehot = np.stack([table[:, c] == ord(x) for x in "UAB"], axis=1).astype(np.int64)
            labels.cumcounts[(cell, contig)] = np.vstack([np.zeros((1, 3), np.int64), np.cumsum(onehot, axis=0)])
    return labels


@dataclass
class PeakLabels:
    """One cell type's peaks per genome contig: sorted summits, starts and ends."""

    summits: dict[str, np.ndarray] = field(default_factory=dict)
    starts: dict[str, np.ndarray] = field(default_factory=dict)
    ends: dict[str, np.ndarray] = field(default_factory=dict)

    def label(self, contig: str, r_start: np.ndarray, r_end: np.ndarray) -> np.ndarray:
        out = np.zeros(r_start.shape, dtype=np.int8)
        if contig not in self.summits:
            return out
        summits = self.summits[contig]
        n_summit = np.searchsorted(summits, r_end, side="left") - np.searchsorted(summits, r_start, side="left")
        # a peak overlaps [a, b) iff start < b and end > a; no peak can end <= a and start >= b
        n_overlap = (np.searchsorted(self.starts[contig], r_end, side="left")
                     - np.searchsorted(self.ends[contig], r_start, side="right"))
        out[n_overlap > 0] = LABEL_AMBIGUOUS
        out[n_summit > 0] = LABEL_BOUND
        return out


def read_peaks(path: str | Path, genome_lengths: dict[str, int]) -> PeakLabels:
    """Read a narrowPeak (summit offset in column 10) or plain BED of peaks, in any order."""
    path = Path(path)
    raw: dict[str, list[tuple[int, int, int]]] = {}
    contig_map = ContigMap(str(path), genome_lengths)
    empty = True
    for line_no, fields, start, end in read_records(path):
        empty = False
        contig = contig_map.get(fields[0])
        if contig is None:
            continue
        summit = (start + end) // 2
        if len(fields) >= 10 and fields[9] not in ("", "-1"):
            try:
                summit = start + int(fields[9])
            except ValueError:
                raise InputError(f"{path}:{line_no}: narrowPeak summit offset (column 10) is not an integer") from None
            if not start <= summit < end:
                raise InputError(f"{path}:{line_no}: summit offset {fields[9]} lies outside the peak")
        raw.setdefault(contig, []).append((start, end, summit))
    if empty:
        raise InputError(f"{path}: no peaks (empty file)")
    contig_map.announce()
    peaks = PeakLabels()
    for contig, rows in raw.items():
        arr = np.asarray(rows, dtype=np.int64)
        peaks.starts[contig] = np.sort(arr[:, 0])
        peaks.ends[contig] = np.sort(arr[:, 1])
        peaks.summits[contig] = np.sort(arr[:, 2])
    return peaks
