"""One writer per folder: an exclusive lock on ``<folder>/.lock`` held for the whole run.

The lock is ``fcntl.flock`` on a file that stays in place. The kernel drops it when its process
ends, however it ends, so a lock file left by a killed run is taken over by the next run (no stale
lock to clean up, no pid guessing). The holder writes ``pid host`` into the file so that a refused
run names it (the parts' holders name themselves in their part's file). (filelock's UnixFileLock truncates the file before locking, which would erase the
holder's pid; the few lines here avoid that.)

``shared=True`` takes a shared lock on ``.lock`` and an exclusive one on ``.lock.<part>``:
preprocessing runs that each build a disjoint part of a dataset (``--shard I/N``) run side by side,
while a whole run, or a second run of the same part, is refused.
"""
from __future__ import annotations

import fcntl
import os
import socket
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Optional

from ebert_modelzoo.errors import FolderLockedError

LOCK_FILE = ".lock"


def _pid_in(path: Path) -> str:
    try:
        words = path.read_text().split()
    except OSError:
        words = []
    if len(words) >= 2 and words[0].isdigit():
        return f"pid {words[0]} on {words[1]}"
    return "a process that has not written its pid yet"


def _held(path: Path) -> bool:
    """Whether another process holds a lock on ``path`` (tried without waiting, released at once)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _holders(path: Path) -> str:
    """Who holds ``path``: for the folder's ``.lock``, the parts' holders if any hold it shared."""
    if path.name == LOCK_FILE:
        parts = [_pid_in(p) for p in sorted(path.parent.glob(f"{LOCK_FILE}.*")) if _held(p)]
        if parts:
            return ", ".join(parts)
    return _pid_in(path)


@contextmanager
def _flock(path: Path, exclusive: bool, folder: Path, what: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderLockedError(f"{folder}: in use by another {what} ({_holders(path)}); wait for it to "
                                    "end or use another folder") from None
        if exclusive:  # shared holders name themselves in their part's file
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def folder_lock(folder: str | Path, what: str = "run", part: Optional[str] = None) -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for this process until the block ends.

    Args:
        what: names the kind of run in the error ("preprocessing run", "training run").
        part: a shared lock on the folder plus an exclusive one on this part of it (see the
            module docstring); None = the whole folder, exclusively.

    Raises:
        FolderLockedError: another live process holds the folder (or the part).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stack = ExitStack()
        stack.enter_context(_flock(folder / LOCK_FILE, part is None, folder, what))
    except OSError as err:  # a name too long, no permission, a file in the way, .lock a symlink
        raise OSError(f"{folder}: cannot create or lock the folder ({err.strerror or err})") from None
    with stack:
        if part is not None:
            stack.enter_context(_flock(folder / f"{LOCK_FILE}.{part}", True, folder, f"{what} of part {part}"))
        yield folder
