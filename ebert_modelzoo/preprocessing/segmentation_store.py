"""On-disk store of parsed segmentations, memory-mapped by the run.

Each dense segmentation BED is parsed once (one file in memory at a time) into
``<output_dir>/.cache/segmentations/<key>/``: ``starts.npy``, ``ends.npy``, ``states.npy`` (every
contig's segments one after another) and ``index.json`` (each contig's slice, the state names). The
key is a sha256 of the BED's sha256, the genome's contig names and lengths and ``FORMAT``, so a
rerun reuses an entry only for the same bytes on the same genome. The run opens the arrays with
``np.load(mmap_mode="r")``: their pages live in the page cache, shared by forked workers and
evictable, so the run's memory does not grow with the number of cell types.

An entry is written in a private hidden folder (``.<key>.<host>-<pid>.tmp``) and renamed into place
when complete, so neither a killed run nor another machine writing the same entry can leave a
partial entry under its final name; ``prune`` removes the folders of dead runs of this host and the
entries the current plan does not use.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np

from ebert_modelzoo.atomic import atomic_path, fsync_dir, tmp_name
from ebert_modelzoo.preprocessing.segmentation import Segmentation, read_segmentation
from ebert_modelzoo.preprocessing.writer import atomic_write_json

FORMAT = 1  # bump when the parsing rules or the entry layout change
INDEX = "index.json"
COLUMNS = ("starts", "ends", "states")


def entry_key(bed_sha256: str, genome_lengths: dict[str, int]) -> str:
    """Name of the entry holding a BED with content hash ``bed_sha256`` parsed against this genome."""
    what = {"format": FORMAT, "bed_sha256": bed_sha256, "genome": list(genome_lengths.items())}
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def open_segmentation(path: str | Path, bed_sha256: str, genome_lengths: dict[str, int], root: Path) -> Segmentation:
    """The segmentation of BED ``path`` with memory-mapped arrays, parsed and stored under ``root``
    unless an entry for the same bytes and genome is there already.

    Raises:
        InputError: from parsing (see ``read_segmentation``); nothing is stored for a bad file.
    """
    entry = root / entry_key(bed_sha256, genome_lengths)
    if not entry.is_dir():
        _store(read_segmentation(path, genome_lengths), entry)
    index = json.loads((entry / INDEX).read_text())
    arrays = [np.load(entry / f"{name}.npy", mmap_mode="r") for name in COLUMNS]
    return Segmentation(
        Path(path),
        segments={contig: tuple(a[lo:hi] for a in arrays) for contig, (lo, hi) in index["contigs"].items()},
        state_names={int(state): name for state, name in index["state_names"].items()},
    )


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _store(seg: Segmentation, entry: Path) -> None:
    """Write ``seg`` as ``entry``: in a private folder, fsynced, then renamed into place."""
    work = entry.with_name(tmp_name(f"{entry.name}.{_owner()}"))
    shutil.rmtree(work, ignore_errors=True)  # left by a dead run that had our pid
    work.mkdir(parents=True)
    contigs, offset = {}, 0
    for contig, (starts, _, _) in seg.segments.items():
        contigs[contig] = (offset, offset + len(starts))
        offset += len(starts)
    for i, name in enumerate(COLUMNS):
        with atomic_path(work / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.concatenate([cols[i] for cols in seg.segments.values()]))
    atomic_write_json(work / INDEX, {"source": str(seg.path), "contigs": contigs,
                                     "state_names": {str(s): n for s, n in sorted(seg.state_names.items())}})
    try:
        os.rename(work, entry)
    except OSError:
        if not entry.is_dir():
            raise
        shutil.rmtree(work)  # another run stored the same entry first
    fsync_dir(entry.parent)


def prune(root: Path, keep: set[str]) -> None:
    """Remove the entries under ``root`` whose key is not in ``keep`` and the unfinished entries
    left by dead runs of this host (those of live runs, or of other hosts, are left alone)."""
    if not root.is_dir():
        return
    host = socket.gethostname()
    for path in root.iterdir():
        if not path.name.startswith("."):
            if path.name not in keep:
                shutil.rmtree(path)
            continue
        owner = path.name[1:-len(".tmp")].partition(".")[2]
        owner_host, _, pid = owner.rpartition("-")
        if path.name.endswith(".tmp") and owner_host == host and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
