"""Crash-safe file writes: write under a hidden temporary name, fsync, rename, fsync the folder.

A crash or kill at any point leaves either the previous file or none under the final name, never a
partial one; the temporary name (``.<name>.tmp``) is never matched by the readers' globs.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(name: str) -> str:
    """The hidden name a file called ``name`` is written under until it is complete (a glob
    pattern gives the pattern of its temporaries)."""
    return f".{name}.tmp"


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
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
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
