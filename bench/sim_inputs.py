"""Preprocessing inputs for the data-path benchmarks: real GRCh37 chrX DNA (Debian
`smalt-examples`) and a simulated, seeded epigenome over it (bigWigs with 25-100 bp intervals,
dense ChromHMM-like segmentations in 200 bp multiples), plus the pipeline config that reads them."""
from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pyBigWig
import pyfaidx
import yaml

SOURCE = Path("/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz")
CONTIG = "X"  # the FASTA's name; the bigWigs and BEDs use "chrX" (the pipeline matches them)
SIGNAL_CONTIG = "chrX"
START = 2_700_000  # past the PAR1 N gaps


def missing_source() -> Optional[str]:
    """Why the real DNA cannot be used here, or None when it can."""
    if not SOURCE.is_file():
        return (f"{SOURCE} not found: install Debian's smalt-examples "
                "(apt-get install -y smalt-examples tabix); figure not measured")
    return None


def read_dna(start: int, length: Optional[int]) -> str:
    """``length`` bases of chrX from ``start`` (``None``: to the end)."""
    with gzip.open(SOURCE, "rt") as fh:
        fh.readline()
        seq = "".join(line.strip() for line in fh)
    return seq[start:] if length is None else seq[start:start + length]


def write_fasta(path: Path, seq: str) -> Path:
    """A plain FASTA holding ``seq`` as contig X, with its .fai."""
    with open(path, "w") as fh:
        fh.write(f">{CONTIG}\n")
        fh.writelines(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60))
    pyfaidx.Faidx(str(path))
    return path


def bgzip_whole_chromosome(folder: Path) -> Path:
    """The whole source chromosome bgzip-compressed with .fai/.gzi indexes (``bgzip`` from tabix)."""
    bgzip = shutil.which("bgzip")
    if bgzip is None:
        raise FileNotFoundError("bgzip not found: apt-get install -y tabix")
    path = folder / "chrX.fa.gz"
    # the source is plain gzip: decompress here and pipe into bgzip
    with open(path, "wb") as dst:
        proc = subprocess.Popen([bgzip, "-c"], stdin=subprocess.PIPE, stdout=dst)
        with gzip.open(SOURCE, "rb") as src:
            shutil.copyfileobj(src, proc.stdin, 1 << 20)
        proc.stdin.close()
        if proc.wait():
            raise RuntimeError(f"bgzip exited with {proc.returncode}")
    pyfaidx.Faidx(str(path), build_index=True)
    return path


def write_bigwig(path: Path, length: int, rng: np.random.Generator) -> Path:
    """Log-normal signal in contiguous 25-100 bp intervals covering ``chrX:0-length``."""
    widths = rng.integers(25, 101, size=length // 25 + 1)
    ends = np.minimum(np.cumsum(widths), length)
    ends = ends[: np.searchsorted(ends, length) + 1]
    starts = np.concatenate([[0], ends[:-1]])
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(SIGNAL_CONTIG, length)])
    values = rng.lognormal(0, 1, size=len(starts))
    step = 1 << 20  # add in pieces so the lists stay small
    for i in range(0, len(starts), step):
        bw.addEntries([SIGNAL_CONTIG] * len(starts[i:i + step]), starts[i:i + step].tolist(),
                      ends=ends[i:i + step].tolist(), values=values[i:i + step].tolist())
    bw.close()
    return path


def write_segmentation(path: Path, length: int, rng: np.random.Generator, states: int = 15) -> Path:
    """A dense segmentation of ``chrX:0-length`` in 200 bp-multiple segments, states E1..E<states>."""
    bounds = np.minimum(np.cumsum(200 * rng.integers(1, 20, size=length // 200 + 1)), length)
    bounds = bounds[: np.searchsorted(bounds, length) + 1]
    lows = np.concatenate([[0], bounds[:-1]])
    labels = rng.integers(1, states + 1, size=len(bounds))
    path.write_text("".join(f"{SIGNAL_CONTIG}\t{a}\t{b}\tE{s}\n" for a, b, s in zip(lows, bounds, labels)))
    return path


def write_epigenome(folder: Path, length: int, cells: int, assays: Sequence[str],
                    rng: np.random.Generator) -> list[dict[str, Any]]:
    """Per cell type a segmentation and one bigWig per assay over ``chrX:0-length``; returns the
    config's ``cell_types`` entries."""
    manifest = []
    for c in range(cells):
        tracks = {assay: str(write_bigwig(folder / f"cell{c}.{assay}.bw", length, rng)) for assay in assays}
        seg = write_segmentation(folder / f"cell{c}.bed", length, rng)
        manifest.append({"name": f"cell{c}", "segmentation": str(seg), "tracks": tracks})
    return manifest


def write_config(path: Path, fasta: Path, manifest: list[dict[str, Any]], train: list[str], output_dir: Path,
                 window: int, bin_size: int, k: int = 1, windows_per_shard: int = 2048) -> Path:
    """A pre-training preprocessing YAML over the given inputs (all windows in the train split)."""
    cfg = {"genome": {"fasta": str(fasta)}, "split": {"train": train},
           "windows": {"window_length": window, "stride": window, "bin_size": bin_size},
           "tokenizer": {"k": k}, "chromatin_states": {"num_states": 15}, "cell_types": manifest,
           "output": {"output_dir": str(output_dir), "windows_per_shard": windows_per_shard,
                      "chunk_windows": 64}}
    path.write_text(yaml.safe_dump(cfg))
    return path
