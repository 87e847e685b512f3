"""Crash-safe file writes: write under a hidden temporary name, fsync, rename, fsync the folder.

A crash or kill at any point leaves either the previous file or none under the final name, never a
partial one; the temporary name (``.<name>.<host>-<pid>.tmp``, one per writer, so that two
processes writing the same file never rename each other's) is never matched by the readers' globs.
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Make a file's content durable."""
    _fsync(path)


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable."""
    _fsync(folder)


def tmp_name(name: str) -> str:
    """The hidden name under which this process writes a file called ``name`` until it is complete."""
    return f".{name}.{socket.gethostname()}-{os.getpid()}.tmp"


def tmp_pattern(name: str) -> str:
    """Glob pattern of every process's temporaries of ``name`` (itself a name or a pattern)."""
    return f".{name}.*.tmp"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write ``path``'s content to; when the block ends normally the
    file is fsynced and renamed over ``path``. After an exception the temporary stays behind, as
    after a kill: readers never look at it and the next write of ``path`` replaces it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(tmp_name(path.name))
    tmp.unlink(missing_ok=True)
    yield tmp
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
