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

from ebert_modelzoo.contract.schema import LABEL_AMBIGUOUS, LABEL_BOUND, LABEL_UNBOUND
from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.bed import READ_ERRORS, open_binary, read_failure, read_records
from ebert_modelzoo.preprocessing.genome import ContigMap

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


def _decode(path: Path, chunk: bytes, first_line: int) -> str:
    """``chunk`` (whole lines from ``first_line`` on) as text; InputError naming the line of a
    byte that is not UTF-8."""
    try:
        return chunk.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # line ends as text mode reads them
    except UnicodeDecodeError as err:
        raise read_failure(path, err, first_line + chunk.count(b"\n", 0, err.start)) from None


def read_dream_tsv(path: str | Path, genome_lengths: dict[str, int], contigs: set[str],
                   chunk_bytes: int = 1 << 24) -> DreamLabels:
    """Read an ENCODE-DREAM label TSV (header ``chr start stop CELL...``), keeping ``contigs``.

    The file is read ``chunk_bytes`` of whole lines at a time and each chunk is checked and parsed
    column-wise; the first bad line is reported as a line-by-line reader would report it.

    Raises:
        InputError: naming file and line of a bad header, code, record or order.
    """
    path = Path(path)
    labels = DreamLabels()
    parts: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = {}
    first_line = 1
    try:
        with open_binary(path) as fh:
            header = _decode(path, fh.readline(), 1).rstrip("\n").split("\t")
            if len(header) < 4 or [h.lower() for h in header[:3]] != ["chr", "start", "stop"]:
                raise InputError(f"{path}:1: expected the header 'chr start stop CELL...' (ENCODE-DREAM labels)")
            labels.cell_types = header[3:]
            reader = _DreamChunks(path, len(header), ContigMap(str(path), genome_lengths), contigs)
            first_line = 2
            while chunk := fh.read(chunk_bytes):
                chunk += fh.readline()  # whole lines only
                n_lines, parsed = reader.parse(_decode(path, chunk, first_line), first_line)
                for contig, starts, ends, table in parsed:
                    row = parts.setdefault(contig, ([], [], []))
                    row[0].append(starts)
                    row[1].append(ends)
                    row[2].append(table)
                first_line += n_lines
    except READ_ERRORS as err:  # a truncated or corrupt .gz, an unreadable file
        raise read_failure(path, err, first_line) from None
    reader.contig_map.announce()
    for contig, (starts, ends, tables) in parts.items():
        labels.starts[contig] = np.concatenate(starts)
        labels.ends[contig] = np.concatenate(ends)
        table = np.concatenate(tables)  # (rows, cells) of U/A/B bytes
        for c, cell in enumerate(labels.cell_types):
            onehot = np.stack([table[:, c] == ord(x) for x in "UAB"], axis=1).astype(np.int64)
            labels.cumcounts[(cell, contig)] = np.vstack([np.zeros((1, 3), np.int64), np.cumsum(onehot, axis=0)])
    return labels


class _DreamChunks:
    """Column-wise checks and parsing of a DREAM TSV's lines, chunk by chunk, keeping the order
    state (previous record, contigs seen) across chunks."""

    def __init__(self, path: Path, n_columns: int, contig_map: ContigMap, keep: set[str]) -> None:
        self.path, self.n_columns, self.contig_map, self.keep = path, n_columns, contig_map, keep
        self.prev: tuple[str, int, int] | None = None
        self.seen: set[str] = set()

    def parse(self, text: str, first_line: int) -> tuple[int, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
        """The number of lines of ``text`` (whole lines) and, per run of kept rows, (genome contig,
        starts, ends, codes [rows, cells] uint8).

        Each check runs on the rows before the first error found so far, in the order a line-by-line
        reader checks one line, so the error raised is the one of the first bad line."""
        path, n_col = self.path, self.n_columns
        raw = np.frombuffer((text if text.endswith("\n") else text + "\n").encode(), dtype=np.uint8)
        line_ends = np.flatnonzero(raw == ord("\n"))
        n_lines = n = len(line_ends)
        error = ""

        def fail(row: int, message: str) -> None:
            nonlocal n, error
            if row < n:
                n, error = row, message

        tabs = np.diff(np.searchsorted(np.flatnonzero(raw == ord("\t")), line_ends), prepend=0)
        bad = np.flatnonzero(tabs != n_col - 1)
        if bad.size:
            fail(int(bad[0]), f"{path}:{first_line + bad[0]}: {tabs[bad[0]] + 1} columns, the header has {n_col}")
        if n < n_lines:
            text = raw[: line_ends[n - 1] + 1].tobytes().decode() if n else ""
        cols = np.array(text.replace("\n", "\t").split("\t")[: n * n_col], dtype=object).reshape(n, n_col)
        try:
            starts, ends = (np.fromiter(map(int, cols[:, c]), dtype=np.int64, count=n) for c in (1, 2))
        except (ValueError, OverflowError):
            r = next(i for i in range(n) if not (_is_int(cols[i, 1]) and _is_int(cols[i, 2])))
            fail(r, f"{path}:{first_line + r}: start/stop are not integers")
            starts, ends = (np.fromiter(map(int, cols[:n, c]), dtype=np.int64, count=n) for c in (1, 2))
        bad = np.flatnonzero(ends <= starts)
        if bad.size:
            fail(int(bad[0]), f"{path}:{first_line + bad[0]}: empty record")
        chrom = cols[:n, 0]
        prev = self.prev or (None, 0, 0)
        prev_start = np.concatenate([[prev[1]], starts[:-1]])
        prev_end = np.concatenate([[prev[2]], ends[:-1]])
        same = chrom == np.concatenate([np.array([prev[0]], dtype=object), chrom[:-1]])
        seen = set(self.seen)
        for row in np.flatnonzero(~same).tolist():
            if chrom[row] in seen:
                fail(row, f"{path}:{first_line + row}: {chrom[row]} records are not contiguous (unsorted BED)")
                break
            seen.add(chrom[row])
        bad = np.flatnonzero(same[:n] & (starts[:n] < prev_start[:n]))
        if bad.size:
            r = int(bad[0])
            fail(r, f"{path}:{first_line + r}: start {starts[r]} is before the previous start {prev_start[r]} (unsorted BED)")
        bad = np.flatnonzero(same[:n] & (ends[:n] < prev_end[:n]))
        if bad.size:
            fail(int(bad[0]), f"{path}:{first_line + bad[0]}: label windows must all have the same length")
        runs = [0] + [r for r in np.flatnonzero(~same[:n]).tolist() if r > 0] if n else []
        targets = []
        for r in runs:
            try:
                targets.append(self.contig_map.get(chrom[r]))
            except InputError as err:
                fail(r, str(err))
                break
        runs = [r for r in runs if r < n][:len(targets)]
        bounds = runs + [n]
        codes = cols[:n, 3:]
        valid = np.isin(codes, _CODE_STRINGS).all(axis=1)
        for lo, hi, target in zip(bounds[:-1], bounds[1:], targets):
            bad = np.flatnonzero(~valid[lo:hi]) if target in self.keep else ()
            if len(bad):
                r = lo + int(bad[0])
                fail(r, f"{path}:{first_line + r}: labels must be U, A or B, found {list(cols[r, 3:])!r}")
                break
        if error:
            raise InputError(error)
        self.seen = seen
        if n:
            self.prev = (chrom[n - 1], int(starts[n - 1]), int(ends[n - 1]))
        return n_lines, [(target, starts[lo:hi], ends[lo:hi],
                          np.frombuffer("".join(codes[lo:hi].ravel()).encode(), dtype=np.uint8).reshape(hi - lo, -1))
                         for lo, hi, target in zip(bounds[:-1], bounds[1:], targets) if target in self.keep]


_CODE_STRINGS = np.array(["U", "A", "B"], dtype=object)


def _is_int(text: str) -> bool:
    """An integer that fits int64."""
    try:
        value = int(text)
    except ValueError:
        return False
    return -(2**63) <= value < 2**63


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
