"""Deleting only what a run owns: paths inside its folder, reached without passing a symlink.

A run owns its output folder (preprocessing) or model_dir (training). A symlink anywhere between
that folder and a path, or ``..`` in the path, could lead a deletion elsewhere (a ``.cache``
linked to a shared disk, a ``runs/x`` linked to a user's folder), so such paths are refused, and
a symlink found at the path itself is removed as a link, never followed.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ebert_modelzoo.errors import NotOwnedError


def owned(path: str | Path, owner: str | Path) -> bool:
    """True when ``path`` lies inside ``owner`` (lexically, no ``..``) and no folder between
    them, ``owner`` itself included, is a symlink."""
    path, owner = Path(path), Path(owner)
    try:
        parts = path.relative_to(owner).parts
    except ValueError:
        return False
    if ".." in parts or owner.is_symlink():
        return False
    current = owner
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            return False
    return True


def remove_owned(path: str | Path, owner: str | Path) -> None:
    """Delete the file, folder tree or symlink (the link only) at ``path``, if it exists.

    Raises:
        NotOwnedError: ``path`` is not ``owned`` by ``owner``.
    """
    path = Path(path)
    if not owned(path, owner):
        raise NotOwnedError(f"{path}: not deleted: it is outside {owner} or reached through a symlink")
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)  # removes links inside as links (never follows them)
