"""Predictions as files a genomics user opens: TSV, BED, bedGraph and bigWig, with coordinates.

Each row of the split's shards is one window; its coordinates (``window_chrom``/``window_start``,
data_params ``contigs`` and ``window_length``) or, for labelled sequences, its input file, row and
id come from the shards, read one shard at a time. Scores are probabilities (sigmoid of the
logits), one column per label.

- ``.tsv`` / ``.tsv.gz``: genome windows ``chrom start end cell_type <label>...``; sequences
  ``source row id cell_type <label>...``. One line per (cell type, window), cell types in turn.
- ``.bed``: the same genome columns as BED3+ (0-based, half-open; a ``#`` header line).
- ``.bedGraph`` / ``.bw``: one file per cell type and label, ``<stem>.<cell>.<label>.<ext>``, each
  window's score over its central ``min(stride, window_length)`` bp (so tiled windows do not
  overlap; windows closer than that are cut at the previous one's end).
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pyBigWig

from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.contract import schema
from ebert_modelzoo.contract.data_params import DataParams
from ebert_modelzoo.evaluation.sample_scores import SampleScores

FORMATS = (".npz", ".tsv", ".tsv.gz", ".bed", ".bedGraph", ".bw")
ROW_ID = "row_id"


def output_format(path: str | Path) -> str:
    """The format an output name asks for (one of FORMATS)."""
    name = str(path)
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext) or (ext == ".bedGraph" and name.lower().endswith(".bedgraph")) or (
                ext == ".bw" and name.endswith(".bigWig")):
            return ext
    raise ValueError(f"{path}: unknown output type; name it {', '.join('*' + e for e in FORMATS)}")


def is_sequence_data(params: DataParams) -> bool:
    """Whether the split was built from labelled sequences (rows, not genome windows)."""
    return "sequences" in params.raw


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Sigmoid of the logits, float32."""
    return (1.0 / (1.0 + np.exp(-scores.astype(np.float64)))).astype(np.float32)


def _shard_rows(params: DataParams) -> Iterator[dict[str, np.ndarray]]:
    """Coordinates (and ids) of the split's windows, shard by shard, in file order."""
    for file in params.shard_files:
        with h5py.File(file, "r") as f:
            rows = {"chrom": f[schema.DATASET_WINDOW_CHROM][:], "start": f[schema.DATASET_WINDOW_START][:]}
            if ROW_ID in f:
                rows["id"] = f[ROW_ID][:]
        yield rows


def window_coordinates(params: DataParams) -> tuple[np.ndarray, np.ndarray]:
    """(contig index into data_params ``contigs``, 0-based start) of every window, in file order."""
    chrom, start = zip(*((r["chrom"], r["start"]) for r in _shard_rows(params)))
    return np.concatenate(chrom), np.concatenate(start)


def _lines(params: DataParams, preds: SampleScores, with_header: bool) -> Iterator[str]:
    """Text blocks of the TSV/BED (header first), cell type by cell type, shard by shard."""
    probs = probabilities(preds.scores)
    contigs = params.raw["contigs"]
    length = int(params.raw["window_length"])
    seq = is_sequence_data(params)
    if with_header:
        yield (("source\trow\tid" if seq else "#chrom\tstart\tend") + "\tcell_type\t"
               + "\t".join(preds.label_names) + "\n")
    template = "%s\t%d\t%s\t%s" + "\t%.5g" * probs.shape[2]
    for c, cell in enumerate(preds.cell_types):
        offset = 0
        for rows in _shard_rows(params):
            n = len(rows["start"])
            names = [contigs[i] for i in rows["chrom"].tolist()]
            starts = rows["start"].tolist()
            if not seq:
                third = (rows["start"] + length).tolist()
            elif "id" in rows:
                third = [i.decode() for i in rows["id"].tolist()]
            else:
                third = [f"{f}:{r}" for f, r in zip(names, starts)]
            scores = probs[c, offset:offset + n].tolist()
            offset += n
            yield "\n".join([template % (f, s, t, cell, *p) for f, s, t, p in zip(names, starts, third, scores)]) + "\n"


def write_table(path: Path, params: DataParams, preds: SampleScores, bed: bool = False) -> Path:
    """Write the TSV (or the BED3+, genome windows only) atomically."""
    if bed and is_sequence_data(params):
        raise ValueError(f"{path}: labelled sequences have no genome coordinates; write a .tsv")
    with atomic_path(path) as tmp:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(tmp, "wt") as fh:
            for block in _lines(params, preds, with_header=True):
                fh.write(block)
    return path


def _intervals(params: DataParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contig index, start, end) of every window's central piece, in file order, non-overlapping."""
    length, stride = int(params.raw["window_length"]), int(params.raw["stride"])
    width = min(stride, length)
    chrom, start = window_coordinates(params)
    lo = start + (length - width) // 2
    hi = lo + width
    same = np.r_[False, chrom[1:] == chrom[:-1]]
    if np.any(same & (lo < np.r_[0, lo[:-1]])):
        raise ValueError(f"{params.path}: windows are not in genome order; write a .tsv or .bed")
    prev_hi = np.r_[0, hi[:-1]]
    lo = np.where(same, np.maximum(lo, prev_hi), lo)
    return chrom, lo, hi


def _chrom_sizes(params: DataParams, chrom: np.ndarray, hi: np.ndarray) -> list[tuple[str, int]]:
    """Contig lengths from the genome index named in data_params' provenance, else the last window end."""
    contigs = params.raw["contigs"]
    sizes = {name: int(hi[chrom == i].max()) if np.any(chrom == i) else 1 for i, name in enumerate(contigs)}
    fasta = (params.raw.get("provenance", {}).get("config", {}).get("genome") or {}).get("fasta")
    fai = Path(f"{fasta}.fai") if fasta else None
    if fai is not None and fai.is_file():
        for line in fai.read_text().splitlines():
            name, size = line.split("\t")[:2]
            if name in sizes:
                sizes[name] = int(size)
    return list(sizes.items())


def write_tracks(path: Path, params: DataParams, preds: SampleScores) -> list[Path]:
    """One bedGraph or bigWig per (cell type, label): ``<stem>.<cell>.<label><ext>``."""
    if is_sequence_data(params):
        raise ValueError(f"{path}: labelled sequences have no genome coordinates; write a .tsv")
    fmt = output_format(path)
    suffix = Path(path).suffix
    stem = str(path)[: -len(suffix)]
    chrom, lo, hi = _intervals(params)
    keep = hi > lo
    chrom, lo, hi = chrom[keep], lo[keep], hi[keep]
    names = np.asarray(params.raw["contigs"])[chrom]
    probs = probabilities(preds.scores)[:, keep]
    written = []
    sizes = _chrom_sizes(params, chrom, hi) if fmt == ".bw" else []
    for c, cell in enumerate(preds.cell_types):
        for k, label in enumerate(preds.label_names):
            out = Path(f"{stem}.{cell}.{label}{suffix}")
            with atomic_path(out) as tmp:
                if fmt == ".bw":
                    bw = pyBigWig.open(str(tmp), "w")
                    bw.addHeader(sizes)
                    bw.addEntries(names.tolist(), lo.tolist(), ends=hi.tolist(),
                                  values=probs[c, :, k].astype(np.float64).tolist())
                    bw.close()
                else:
                    with open(tmp, "w") as fh:
                        fh.write(f'track type=bedGraph name="{cell} {label}" description="EBERT probability"\n')
                        fh.write("".join([f"{n}\t{a}\t{b}\t{v:.5g}\n" for n, a, b, v in
                                          zip(names.tolist(), lo.tolist(), hi.tolist(), probs[c, :, k].tolist())]))
            written.append(out)
    return written


def write_predictions(path: str | Path, params: DataParams, preds: SampleScores) -> list[Path]:
    """Write ``preds`` (scores of ``params``' split) in the format ``path``'s name asks for."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == ".npz":
        return [preds.save(path)]
    if fmt in (".tsv", ".tsv.gz", ".bed"):
        return [write_table(path, params, preds, bed=fmt == ".bed")]
    return write_tracks(path, params, preds)


def describe(paths: list[Path]) -> str:
    """The written files, for one log line."""
    return ", ".join(str(p) for p in paths) if len(paths) <= 4 else f"{paths[0]} ... ({len(paths)} files)"

