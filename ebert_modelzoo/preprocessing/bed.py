"""Line-checked reading of BED-like text files (plain or gzipped), shared by every BED reader."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator

from ebert_modelzoo.errors import InputError


def open_binary(path: str | Path):
    """Open a file for reading bytes, transparently gunzipping ``.gz``/bgzip files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


MAX_COORDINATE = 2**62
"""Coordinates at or past this are refused (they would overflow the int64 arrays readers build)."""
READ_ERRORS = (UnicodeDecodeError, EOFError, OSError, zlib.error)
"""What reading a damaged text file raises: bytes that are not UTF-8, a truncated or corrupt gzip
stream, a folder or an unreadable file."""


def read_failure(path: str | Path, err: BaseException, line_no: int) -> InputError:
    """The one-line InputError for one of READ_ERRORS met at ``line_no`` of ``path``."""
    if isinstance(err, UnicodeDecodeError):
        problem = f"not UTF-8 text (byte 0x{err.object[err.start]:02x})"
    elif isinstance(err, EOFError):
        problem = "the compressed file ends early (truncated .gz)"
    elif isinstance(err, (zlib.error, gzip.BadGzipFile)):
        problem = f"corrupt gzip data ({err})"
    else:
        problem = f"cannot read: {getattr(err, 'strerror', None) or err}"
    return InputError(f"{path}:{line_no}: {problem}")


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line_no, line)`` of a UTF-8 text file (plain or gzipped).

    Raises:
        InputError: naming the file and the line that cannot be read (see READ_ERRORS).
    """
    line_no = 0
    try:
        with open_binary(path) as fh:
            for raw in fh:
                text = raw.decode("utf-8").replace("\r\n", "\n")
                pieces = text.split("\r")  # a lone CR ends a line too (as text mode reads it)
                for piece in pieces[:-1]:
                    line_no += 1
                    yield line_no, piece + "\n"
                line_no += 1
                yield line_no, pieces[-1]
    except READ_ERRORS as err:
        raise read_failure(path, err, line_no + 1) from None


def read_records(path: str | Path, min_columns: int = 3) -> Iterator[tuple[int, list[str], int, int]]:
    """Yield ``(line_no, fields, start, end)`` of each data line; ``track``/``browser``/``#`` lines
    are skipped.

    Raises:
        InputError: naming the file and line of a short line, bad coordinate, empty record, or
            bytes that cannot be read as text.
    """
    path = Path(path)
    for line_no, line in numbered_lines(path):
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
        if end >= MAX_COORDINATE:
            raise InputError(f"{path}:{line_no}: end {end} is beyond any genome")
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
