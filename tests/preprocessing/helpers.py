"""Plain helpers shared by the preprocessing tests: real input files written into tmp folders,
shards read back, and the check that a CLI failed cleanly."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyBigWig
import pyfaidx

from ebert_modelzoo.contract import schema

DATA = Path(__file__).resolve().parents[1] / "fixtures"


def assert_clean_failure(proc, *needles: str, out: Path) -> None:
    """Exit code 2, no traceback, a last line ``error: ...`` holding every needle, no file left in ``out``."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for needle in needles:
        assert needle in last, last
    leftovers = [p for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts] if out.exists() else []
    assert not leftovers, leftovers


def write_bw(path: Path, chroms: list[tuple[str, int]], values: list[float]) -> Path:
    """A bigWig with 100 bp intervals of ``values`` from 0 on its first contig."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(chroms)
    name = chroms[0][0]
    starts = list(range(0, 100 * len(values), 100))
    bw.addEntries([name] * len(values), starts, ends=[s + 100 for s in starts], values=values)
    bw.close()
    return path


def fixture_dna() -> str:
    """The bases of tests/fixtures/genome.fa (contig ``X``, 100 kb, case kept)."""
    return "".join((DATA / "genome.fa").read_text().splitlines()[1:])


def write_fasta(path: Path, records: dict[str, str], width: int = 60, index: bool = True) -> Path:
    """A plain FASTA of ``records`` with ``width`` bases a line, indexed by pyfaidx unless ``index`` is False."""
    with open(path, "w") as fh:
        for name, seq in records.items():
            fh.write(f">{name}\n")
            fh.writelines(seq[i:i + width] + "\n" for i in range(0, len(seq), width))
    if index:
        pyfaidx.Faidx(str(path)).close()
    return path


def load_split(split_dir: Path) -> dict[str, np.ndarray]:
    """Every dataset of a split's shards, concatenated along the window axis."""
    params = json.loads((split_dir / schema.DATA_PARAMS_FILE).read_text())
    parts: dict[str, list[np.ndarray]] = {}
    for shard in params["shards"]:
        with h5py.File(split_dir / shard["file"], "r") as f:
            for name in f:
                axis = 0 if name in (schema.DATASET_WINDOW_CHROM, schema.DATASET_WINDOW_START, schema.DATASET_TOKENS) else 1
                parts.setdefault(name, []).append((axis, f[name][...]))
    return {name: np.concatenate([a for _, a in arrs], axis=arrs[0][0]) for name, arrs in parts.items()}
