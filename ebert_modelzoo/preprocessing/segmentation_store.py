"""On-disk store of parsed segmentations: a run's memory for them does not grow with the cell types.

Each dense segmentation BED is parsed once (one file in memory at a time) into
``<output_dir>/.cache/segmentations/<key>/``: ``starts.bin``, ``ends.bin``, ``states.bin`` (raw
arrays, every contig's segments one after another) and ``index.json`` (dtype, each contig's slice,
every ``COARSE_STEP``-th start, the state names). The key is a sha256 of the BED's sha256, the
genome's contig names and lengths and ``FORMAT``, so an entry is reused only for the same bytes on
the same genome (a rerun skips the parsing).

A run holds only the coarse starts (4 bytes per ``COARSE_STEP`` segments); a lookup finds the
slice of segments that can cover its positions there and reads just that slice from disk. Memory
mapping the arrays instead would leave every page a run has touched in its resident set.

An entry is written in a private hidden folder (``.<key>.<host>-<pid>.tmp``) and renamed into place
by ``commit`` once every input of the run has been checked, so neither a bad later input, a killed
run nor another machine writing the same entry can leave an entry under its final name; ``prune``
removes the folders of dead runs of this host and the entries a plan does not use, and deletes
nothing when the store is reached through a symlink.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ebert_modelzoo.atomic import atomic_path, fsync_dir, tmp_name
from ebert_modelzoo.owned import owned, remove_owned
from ebert_modelzoo.preprocessing.segmentation import Segmentation, read_segmentation, states_at
from ebert_modelzoo.preprocessing.writer import atomic_write_json

FORMAT = 1  # bump when the parsing rules or the entry layout change
COARSE_STEP = 1024  # segments between two coarse starts: a lookup reads at most 2 x this many extra
INDEX = "index.json"
COLUMNS = ("starts", "ends", "states")
log = logging.getLogger(__name__)


@dataclass
class StoredContig:
    """One contig's segments in an entry: ``count`` of them from flat index ``first``, and
    ``coarse`` = every COARSE_STEP-th start."""

    first: int
    count: int
    coarse: np.ndarray


@dataclass
class StoredSegmentation:
    """One cell type's segmentation in the store (see the module docstring)."""

    path: Path
    entry: Path
    """The entry's folder (the run's private folder until ``commit``)."""
    coordinates: np.dtype
    contigs: dict[str, StoredContig]
    state_names: dict[int, str]
    final: Optional[Path] = None
    """Where ``commit`` moves a newly parsed entry (None: ``entry`` is in place already)."""

    def states_at(self, contig: str, positions: np.ndarray) -> np.ndarray:
        """State id (uint8) of the segment covering each position (on the contig), 0 where none does."""
        stored = self.contigs.get(contig)
        if stored is None or positions.size == 0:
            return np.zeros(positions.shape, dtype=np.uint8)
        # segments [lo, hi) hold the last segment starting at or before each position
        lo = max(int(np.searchsorted(stored.coarse, positions.min(), side="right")) - 1, 0) * COARSE_STEP
        hi = min(int(np.searchsorted(stored.coarse, positions.max(), side="right")) * COARSE_STEP, stored.count)
        dtypes = (self.coordinates, self.coordinates, np.dtype(np.uint8))
        columns = [np.fromfile(self.entry / f"{name}.bin", dtype=dtype, count=hi - lo,
                               offset=(stored.first + lo) * dtype.itemsize)
                   for name, dtype in zip(COLUMNS, dtypes)]
        return states_at(*columns, positions)


def entry_key(bed_sha256: str, genome_lengths: dict[str, int]) -> str:
    """Name of the entry holding a BED with content hash ``bed_sha256`` parsed against this genome."""
    what = {"format": FORMAT, "bed_sha256": bed_sha256, "genome": list(genome_lengths.items())}
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def open_segmentation(path: str | Path, bed_sha256: str, genome_lengths: dict[str, int],
                      root: Path) -> StoredSegmentation:
    """The segmentation of BED ``path`` (content hash ``bed_sha256``), parsed into a private folder
    under ``root`` (see ``commit``) unless an entry for the same bytes and genome is there already.

    Raises:
        InputError: from parsing (see ``read_segmentation``); nothing is stored for a bad file.
    """
    entry = root / entry_key(bed_sha256, genome_lengths)
    final = None
    if not entry.is_dir():
        entry, final = _store(read_segmentation(path, genome_lengths), entry), entry
    index = json.loads((entry / INDEX).read_text())
    coordinates = np.dtype(index["coordinates"])
    return StoredSegmentation(
        path=Path(path), entry=entry, coordinates=coordinates,
        contigs={name: StoredContig(c["first"], c["count"], np.asarray(c["coarse"], dtype=coordinates))
                 for name, c in index["contigs"].items()},
        state_names={int(state): name for state, name in index["state_names"].items()},
        final=final,
    )


def commit(seg: StoredSegmentation) -> None:
    """Move a newly parsed entry from the run's private folder into place (no-op for others)."""
    if seg.final is None:
        return
    try:
        os.rename(seg.entry, seg.final)
    except OSError:
        if not seg.final.is_dir():
            raise
        shutil.rmtree(seg.entry)  # another run stored the same entry first
    fsync_dir(seg.final.parent)
    seg.entry, seg.final = seg.final, None


def discard(seg: StoredSegmentation) -> None:
    """Remove a newly parsed entry that will not be committed (a later input was bad)."""
    if seg.final is not None:
        shutil.rmtree(seg.entry, ignore_errors=True)


def _store(seg: Segmentation, entry: Path) -> Path:
    """Write ``seg`` into the private folder of ``entry`` (fsynced); returns that folder."""
    work = entry.with_name(tmp_name(entry.name))
    shutil.rmtree(work, ignore_errors=True)  # left by a dead run that had our pid
    work.mkdir(parents=True)
    contigs, first = {}, 0
    for contig, (starts, _, _) in seg.segments.items():
        contigs[contig] = {"first": first, "count": len(starts), "coarse": starts[::COARSE_STEP].tolist()}
        first += len(starts)
    for i, name in enumerate(COLUMNS):
        with atomic_path(work / f"{name}.bin") as tmp:
            np.concatenate([cols[i] for cols in seg.segments.values()]).tofile(tmp)
    coordinates = next(iter(seg.segments.values()))[0].dtype
    atomic_write_json(work / INDEX, {"source": str(seg.path), "coordinates": coordinates.name, "contigs": contigs,
                                     "state_names": {str(s): n for s, n in sorted(seg.state_names.items())}})
    return work


def prune(root: Path, keep: set[str], owner: Path) -> None:
    """Remove the entries under ``root`` whose key is not in ``keep`` and the unfinished entries
    left by dead runs of this host (those of live runs, or of other hosts, are left alone).
    Nothing is removed when ``root`` is reached from ``owner`` (the output folder) through a
    symlink: what lies there is not the run's to delete."""
    if not root.is_dir():
        return
    if not owned(root / "entry", owner):
        log.warning("%s: reached through a symlink: unused entries are not pruned", root)
        return
    host = socket.gethostname()
    for path in root.iterdir():
        if not path.name.startswith("."):
            if path.name not in keep:
                remove_owned(path, owner)
            continue
        owner_host, _, pid = path.name[1:-len(".tmp")].partition(".")[2].rpartition("-")
        if path.name.endswith(".tmp") and owner_host == host and pid.isdigit() and not _alive(int(pid)):
            remove_owned(path, owner)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
