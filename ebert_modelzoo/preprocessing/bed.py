"""Line-checked reading of BED-like text files (plain or gzipped), shared by every BED reader."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

from ebert_modelzoo.preprocessing.errors import InputError


def open_text(path: str | Path):
    """Open a text file, transparently gunzipping ``.gz``/bgzip files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt") if magic == b"\x1f\x8b" else open(path, "rt")


def read_records(path: str | Path, min_columns: int = 3) -> Iterator[tuple[int, list[str], int, int]]:
    """Yield ``(line_no, fields, start, end)`` of each data line; ``track``/``browser``/``#`` lines
    are skipped.

    Raises:
        InputError: naming the file and line of a short line, bad coordinate or empty record.
    """
    path = Path(path)
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < min_columns:
                fields = line.split()
            if len(fields) < min_columns:
                raise InputError(f"{path}:{line_no}: expected at least {min_columns} columns, found {len(fields)}")
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise InputError(f"{path}:{line_no}: start/end are not integers: {fields[1]!r} {fields[2]!r}") from None
            if start < 0 or end <= start:
                raise InputError(f"{path}:{line_no}: empty or negative record {fields[0]}:{start}-{end}")
            yield line_no, fields, start, end


def check_order(path: Path, line_no: int, contig: str, start: int, prev: tuple[str, int, int] | None,
                seen: set[str], allow_overlap: bool) -> None:
    """Raise if a record is out of order (by contig block, then start) or overlaps the previous one."""
    if prev is None or prev[0] != contig:
        if contig in seen:
            raise InputError(f"{path}:{line_no}: {contig} records are not contiguous (unsorted BED)")
        seen.add(contig)
        return
    if start < prev[1]:
        raise InputError(f"{path}:{line_no}: start {start} is before the previous start {prev[1]} (unsorted BED)")
    if not allow_overlap and start < prev[2]:
        raise InputError(f"{path}:{line_no}: overlaps the previous record (ends at {prev[2]})")
