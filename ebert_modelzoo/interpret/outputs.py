"""Attribution files: one .npz per run of ``attribute``, one bigWig per method, one logo plot.

npz keys (n windows, S bases, M methods in ``methods`` order):
    methods [M], label, cell_type, epigenome_cell_type, contigs [n], starts [n] (0-based window
    starts), codes [n, S] (A0 C1 G2 T3 N4), <method>_contributions [n, S, 4],
    <method>_hypothetical [n, S, 4], <method>_through (the inputs the method passes through: a
    gradient method only the DNA token embeddings, not the motif tracks of a run that has them)

bigWig: per-base contribution of each position's own base, at genomic coordinates; where windows
overlap, the mean of their values. Files are written under a temporary name and renamed, so a
crash never leaves a complete-looking file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.data.motifs import BASES
from ebert_modelzoo.interpret.attribution import Attributions
from ebert_modelzoo.interpret.scoring import Scorer


def save_npz(path: str | Path, scorer: Scorer, results: Sequence[Attributions]) -> Path:
    """Write the attributions of one (cell type, label, windows) by several methods."""
    first = results[0]
    arrays: dict[str, np.ndarray] = {
        "methods": np.array([r.method for r in results]), "label": np.array(first.label),
        "cell_type": np.array(first.cell), "epigenome_cell_type": np.array(first.epigenome_cell),
        "contigs": np.array([scorer.contigs[c] for c in scorer.window_chrom[first.windows]]),
        "starts": scorer.window_start[first.windows], "codes": first.codes,
    }
    for result in results:
        arrays[f"{result.method}_contributions"] = result.contributions
        arrays[f"{result.method}_hypothetical"] = result.hypothetical
        arrays[f"{result.method}_through"] = np.array(result.through)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return path


def per_position(scorer: Scorer, result: Attributions) -> dict[str, tuple[int, np.ndarray]]:
    """contig -> (first position, [span] mean per-base contribution, NaN where no window covers)."""
    values = result.per_base
    out: dict[str, tuple[int, np.ndarray]] = {}
    chroms = scorer.window_chrom[result.windows]
    starts = scorer.window_start[result.windows]
    length = values.shape[1]
    for chrom in np.unique(chroms):
        rows = np.flatnonzero(chroms == chrom)
        first, last = int(starts[rows].min()), int(starts[rows].max()) + length
        total = np.zeros(last - first)
        count = np.zeros(last - first)
        for row in rows:
            offset = int(starts[row]) - first
            total[offset:offset + length] += values[row]
            count[offset:offset + length] += 1
        with np.errstate(invalid="ignore"):
            out[scorer.contigs[chrom]] = (first, np.where(count > 0, total / np.maximum(count, 1), np.nan))
    return out


def save_bigwig(path: str | Path, scorer: Scorer, result: Attributions) -> Path:
    """Write ``result``'s per-base contributions as a bigWig (contig lengths: the split's window ends)."""
    import pyBigWig

    tracks = per_position(scorer, result)
    ends = {scorer.contigs[c]: int(scorer.window_start[scorer.window_chrom == c].max()) + scorer.window_length
            for c in np.unique(scorer.window_chrom)}
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = pyBigWig.open(os.fspath(tmp), "w")
        try:
            writer.addHeader([(name, ends[name]) for name in sorted(tracks)])
            for name in sorted(tracks):
                first, values = tracks[name]
                covered = ~np.isnan(values)
                # contiguous covered runs, each written as span-1 steps
                edges = np.flatnonzero(np.diff(np.concatenate(([0], covered.astype(np.int8), [0]))))
                for start, stop in zip(edges[::2], edges[1::2]):
                    writer.addEntries(name, int(first + start), values=values[start:stop].astype(np.float64).tolist(),
                                      span=1, step=1)
        finally:
            writer.close()
    return path


def save_logo(path: str | Path, scorer: Scorer, results: Sequence[Attributions], row: int,
              start: int, end: int, title: str) -> Path:
    """Sequence logos (logomaker) of window ``row``'s contributions over window positions
    ``[start, end)``, one panel per method."""
    import logomaker
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, axes = plt.subplots(len(results), 1, figsize=(max(6.0, 0.12 * (end - start)), 1.8 * len(results)),
                             squeeze=False)
    window_start = int(scorer.window_start[results[0].windows[row]])
    for ax, result in zip(axes[:, 0], results):
        frame = pd.DataFrame(result.contributions[row, start:end], columns=list(BASES),
                             index=np.arange(window_start + start, window_start + end))
        logomaker.Logo(frame, ax=ax, color_scheme="classic")
        ax.set_ylabel(result.method.replace("_", " "), fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.5)
    axes[0, 0].set_title(title, fontsize=9)
    axes[-1, 0].set_xlabel(f"{scorer.contigs[scorer.window_chrom[results[0].windows[row]]]} position (0-based)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
