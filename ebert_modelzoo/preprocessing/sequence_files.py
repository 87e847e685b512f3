"""Reading labelled sequences from CSV/TSV tables and FASTA, in blocks of rows.

A table has a header line naming its columns (the sequence, optionally an id and a split, the
labels). A FASTA record carries its labels in the header: ``>id CTCF=1 NRF1=0`` (named labels) or
``>id 1`` (one label called ``label``). Label values: 1, 0, and -1 / empty / NA for missing.
Rows are streamed: a reader holds one block, never the file.
"""
from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from itertools import islice
from typing import Iterator, Optional, TextIO

import numpy as np

from ebert_modelzoo.contract import schema
from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.bed import READ_ERRORS, numbered_lines, read_failure

_LABEL_VALUES = {
    "1": schema.LABEL_BOUND, "1.0": schema.LABEL_BOUND, "true": schema.LABEL_BOUND, "True": schema.LABEL_BOUND,
    "0": schema.LABEL_UNBOUND, "0.0": schema.LABEL_UNBOUND, "false": schema.LABEL_UNBOUND,
    "False": schema.LABEL_UNBOUND,
    "-1": schema.LABEL_AMBIGUOUS, "": schema.LABEL_AMBIGUOUS, "NA": schema.LABEL_AMBIGUOUS,
    "nan": schema.LABEL_AMBIGUOUS, "NaN": schema.LABEL_AMBIGUOUS,
}
SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}
_FASTA_SUFFIXES = (".fa", ".fasta", ".fna")
_ID_COLUMNS = ("id", "name")


@dataclass
class RowBlock:
    """Consecutive rows of one file."""

    rows: np.ndarray
    """0-based data-row number in the file (int64)."""
    lines: np.ndarray
    """1-based line of each row in the file (for error messages)."""
    sequences: list[bytes]
    ids: Optional[list[str]]
    labels: np.ndarray
    """int8 [rows, K] in the dataset's label order; -1 = missing."""
    splits: Optional[np.ndarray]
    """Split name per row (table files with a split column), else None."""


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def file_format(path: str | Path) -> str:
    """``csv``, ``tsv`` or ``fasta`` from the file name (``.gz`` ignored)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(_FASTA_SUFFIXES):
        return "fasta"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".tsv", ".txt")):
        return "tsv"
    raise InputError(f"{path}: unknown file type (expected .csv, .tsv/.txt or .fa/.fasta/.fna, optionally .gz)")


def label_code(value: str, path: str | Path, line: int, name: str) -> int:
    """The stored label of one text value (1, 0 or -1 for missing)."""
    code = _LABEL_VALUES.get(value.strip())
    if code is None:
        raise InputError(f"{path}:{line}: label {name!r} is {value!r}; labels are 1, 0 or "
                         "-1/empty/NA for missing (for classes, use one 0/1 column per class)")
    return code


def _split_codes(names: list[str], path: Path, lines: np.ndarray) -> np.ndarray:
    """The split of each row from its split-column value; an unknown one is refused naming its line."""
    try:
        return np.array([SPLIT_NAMES[v] for v in names])
    except KeyError:
        bad = next(i for i, v in enumerate(names) if v not in SPLIT_NAMES)
        raise InputError(f"{path}:{int(lines[bad])}: split {names[bad]!r} is not train, "
                         "validation (dev, valid, val) or test") from None


def _label_codes(values: list[str], path: Path, lines: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.fromiter((_LABEL_VALUES[v.strip()] for v in values), dtype=np.int8, count=len(values))
    except KeyError:
        row = next(i for i, v in enumerate(values) if v.strip() not in _LABEL_VALUES)
        label_code(values[row], path, int(lines[row]), name)
        raise


def _plain_fields(text: str, delimiter: str, width: int) -> Optional[tuple[bytes, np.ndarray, np.ndarray]]:
    """Where each field of each line of ``text`` starts and ends (byte offsets [lines, width] into
    the returned bytes), located in one vectorised pass, when the block is plain: ASCII, no
    quotes, no whitespace but the line ends and the delimiter, no blank line, every line with
    ``width`` fields. None otherwise: the general path then reads the block (and names the line
    of any problem). For plain blocks both give the same rows."""
    if not text.isascii():
        return None
    chunk = text.encode("ascii") if text.endswith("\n") else text.encode("ascii") + b"\n"
    raw = np.frombuffer(chunk, dtype=np.uint8)
    sep = ord(delimiter)
    odd = (raw < 33) & (raw != 10) & (raw != 13) & (raw != sep)  # control characters, spaces, tabs in a CSV
    if odd.any() or b'"' in chunk or b"\n\n" in chunk or b"\n\r\n" in chunk or chunk.startswith((b"\n", b"\r")):
        return None
    ends_of_lines = np.flatnonzero(raw == 10)
    n = len(ends_of_lines)
    returns = np.count_nonzero(raw == 13)
    if returns:  # \r\n line ends (the csv module writes them), and no other \r
        if returns != n or not (raw[ends_of_lines - 1] == 13).all():
            return None
        line_ends = ends_of_lines - 1
    else:
        line_ends = ends_of_lines
    seps = np.flatnonzero(raw == sep)
    if len(seps) != n * (width - 1) or (width > 1 and not np.array_equal(
            np.searchsorted(seps, ends_of_lines), np.arange(1, n + 1) * (width - 1))):
        return None
    line_starts = np.concatenate(([0], ends_of_lines[:-1] + 1))
    inner = seps.reshape(n, width - 1)
    starts = np.concatenate((line_starts[:, None], inner + 1), axis=1)
    ends = np.concatenate((inner, line_ends[:, None]), axis=1)
    return chunk, starts, ends


class SequenceFile:
    """One input file: its columns (or FASTA label keys), read in blocks."""

    def __init__(self, path: str | Path, sequence_column: str = "sequence", id_column: Optional[str] = None,
                 split_column: Optional[str] = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: file not found")
        self.format = file_format(self.path)
        self.split_column = split_column
        if self.format == "fasta":
            self.columns = self._fasta_label_names()
            self.sequence_column, self.id_column = None, "id"
            if split_column:
                raise InputError(f"{self.path}: FASTA has no columns; give files per split instead of split_column")
            return
        try:
            with _open_text(self.path) as fh:
                header = next(csv.reader(fh, delimiter=self._delimiter), None)
        except READ_ERRORS as err:
            raise read_failure(self.path, err, 1) from None
        if not header:
            raise InputError(f"{self.path}:1: empty file (expected a header line naming the columns)")
        self.columns = [c.strip() for c in header]
        if sequence_column not in self.columns and sequence_column == "sequence" and "seq" in self.columns:
            sequence_column = "seq"
        if sequence_column not in self.columns:
            raise InputError(f"{self.path}:1: no column {sequence_column!r} (columns: {', '.join(self.columns)}); "
                             "set sequences.sequence_column")
        if split_column and split_column not in self.columns:
            raise InputError(f"{self.path}:1: no split column {split_column!r} (columns: {', '.join(self.columns)})")
        if id_column is None:
            id_column = next((c for c in _ID_COLUMNS if c in self.columns), None)
        elif id_column not in self.columns:
            raise InputError(f"{self.path}:1: no id column {id_column!r} (columns: {', '.join(self.columns)})")
        self.sequence_column, self.id_column = sequence_column, id_column

    @property
    def _delimiter(self) -> str:
        return "," if self.format == "csv" else "\t"

    @property
    def label_columns(self) -> list[str]:
        """Columns that are neither the sequence, the id nor the split (file order)."""
        other = {self.sequence_column, self.id_column, self.split_column}
        return [c for c in self.columns if c not in other]

    def _fasta_label_names(self) -> list[str]:
        for line_no, line in numbered_lines(self.path):
            if line.startswith(">"):
                return self._fasta_labels(line, line_no)[0]
            if line.strip():
                break
        raise InputError(f"{self.path}:1: not a FASTA file (expected a '>' header line)")

    def _fasta_labels(self, header: str, line_no: int) -> tuple[list[str], list[str]]:
        fields = header[1:].split()
        if not fields:
            raise InputError(f"{self.path}:{line_no}: FASTA header without an id")
        pairs = fields[1:]
        if len(pairs) == 1 and "=" not in pairs[0]:
            return ["label"], pairs
        names, values = [], []
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep:
                raise InputError(f"{self.path}:{line_no}: header field {pair!r}: expected NAME=VALUE "
                                 "(labels as >id CTCF=1 NRF1=0, or >id 1 for one label)")
            names.append(name)
            values.append(value)
        return names, values

    def blocks(self, label_names: list[str], size: int) -> Iterator[RowBlock]:
        """The file's rows in blocks of ``size``; labels this file lacks are -1 (missing).

        Raises:
            InputError: naming the file and line of a bad row, or of bytes that cannot be read
                (not UTF-8, a truncated or corrupt gzip stream).
        """
        line = 1
        try:
            for block in (self._fasta_blocks(label_names, size) if self.format == "fasta"
                          else self._table_blocks(label_names, size)):
                line = int(block.lines[-1]) + 1
                yield block
        except READ_ERRORS as err:
            raise read_failure(self.path, err, line) from None

    def _table_blocks(self, label_names: list[str], size: int) -> Iterator[RowBlock]:
        index = {c: i for i, c in enumerate(self.columns)}
        seq_i = index[self.sequence_column]
        id_i = index.get(self.id_column) if self.id_column else None
        split_i = index.get(self.split_column) if self.split_column else None
        label_i = [index.get(name) for name in label_names]
        width = len(self.columns)
        with _open_text(self.path) as fh:
            next(csv.reader(fh, delimiter=self._delimiter))
            first = 0
            while True:
                lines_text = list(islice(fh, size))
                if not lines_text:
                    return
                fields = _plain_fields("".join(lines_text), self._delimiter, width)
                if fields is not None:
                    yield self._plain_block(*fields, first, seq_i, id_i, split_i, label_i, label_names)
                    first += len(lines_text)
                    continue
                if any('"' in line for line in lines_text):  # quoting: the csv module's rules
                    rows = list(csv.reader(lines_text, delimiter=self._delimiter))
                else:  # plain fields: a split is several times faster than the csv module
                    sep = self._delimiter
                    rows = [line.rstrip("\r\n").split(sep) for line in lines_text]
                if any(not r or r == [""] for r in rows):  # blank lines
                    rows = [r for r in rows if r and r != [""]]
                if not rows:
                    continue
                lines = np.arange(first + 2, first + 2 + len(rows), dtype=np.int64)
                short = next((i for i, r in enumerate(rows) if len(r) != width), None)
                if short is not None:
                    raise InputError(f"{self.path}:{int(lines[short])}: {len(rows[short])} fields, the header has {width}")
                labels = np.full((len(rows), len(label_names)), schema.LABEL_AMBIGUOUS, dtype=np.int8)
                for k, col in enumerate(label_i):
                    if col is not None:
                        labels[:, k] = _label_codes([r[col] for r in rows], self.path, lines, label_names[k])
                splits = (_split_codes([r[split_i].strip() for r in rows], self.path, lines)
                          if split_i is not None else None)
                yield RowBlock(
                    rows=np.arange(first, first + len(rows), dtype=np.int64), lines=lines,
                    sequences=[r[seq_i].strip().encode("ascii", errors="replace") for r in rows],
                    ids=[r[id_i] for r in rows] if id_i is not None else None,
                    labels=labels, splits=splits,
                )
                first += len(rows)

    def _plain_block(self, chunk: bytes, starts: np.ndarray, ends: np.ndarray, first: int, seq_i: int,
                     id_i: Optional[int], split_i: Optional[int], label_i: list[Optional[int]],
                     label_names: list[str]) -> RowBlock:
        """The RowBlock of rows located by ``_plain_fields`` (what the general path makes of them)."""
        n = len(starts)
        lines = np.arange(first + 2, first + 2 + n, dtype=np.int64)

        def column(i: int) -> list[bytes]:
            return [chunk[a:b] for a, b in zip(starts[:, i].tolist(), ends[:, i].tolist())]

        labels = np.full((n, len(label_names)), schema.LABEL_AMBIGUOUS, dtype=np.int8)
        raw = np.frombuffer(chunk, dtype=np.uint8)
        for k, col in enumerate(label_i):
            if col is None:
                continue
            single = raw[starts[:, col]] if (ends[:, col] - starts[:, col] == 1).all() else None
            if single is not None and np.isin(single, (ord("0"), ord("1"))).all():  # the usual 0/1 table
                labels[:, k] = single - ord("0")
            else:
                labels[:, k] = _label_codes([v.decode("ascii") for v in column(col)], self.path, lines, label_names[k])
        splits = (_split_codes([v.decode("ascii") for v in column(split_i)], self.path, lines)
                  if split_i is not None else None)
        return RowBlock(rows=np.arange(first, first + n, dtype=np.int64), lines=lines, sequences=column(seq_i),
                        ids=[v.decode("ascii") for v in column(id_i)] if id_i is not None else None,
                        labels=labels, splits=splits)

    def _fasta_blocks(self, label_names: list[str], size: int) -> Iterator[RowBlock]:
        order = {name: k for k, name in enumerate(label_names)}
        ids: list[str] = []
        seqs: list[bytes] = []
        lines: list[int] = []
        values: list[list[str]] = []
        parts: list[str] = []
        first = 0

        def block() -> RowBlock:
            n = len(ids)
            line_arr = np.asarray(lines, dtype=np.int64)
            labels = np.full((n, len(label_names)), schema.LABEL_AMBIGUOUS, dtype=np.int8)
            for k, name in enumerate(label_names):
                column = [v[k] for v in values]
                labels[:, k] = _label_codes(column, self.path, line_arr, name)
            return RowBlock(np.arange(first, first + n, dtype=np.int64), line_arr, list(seqs), list(ids),
                            labels, None)

        with _open_text(self.path) as fh:
            for line_no, line in enumerate(fh, start=1):
                if line.startswith(">"):
                    if ids:
                        seqs.append("".join(parts).encode("ascii", errors="replace"))
                        parts = []
                        if len(ids) == size:
                            yield block()
                            first += len(ids)
                            ids, seqs, lines, values = [], [], [], []
                    names, vals = self._fasta_labels(line, line_no)
                    row = [""] * len(label_names)
                    for name, value in zip(names, vals):
                        if name in order:
                            row[order[name]] = value
                    ids.append(line[1:].split()[0])
                    lines.append(line_no)
                    values.append(row)
                elif ids:
                    parts.append(line.strip())
                elif line.strip():
                    raise InputError(f"{self.path}:{line_no}: sequence before the first '>' header")
            if ids:
                seqs.append("".join(parts).encode("ascii", errors="replace"))
                yield block()
