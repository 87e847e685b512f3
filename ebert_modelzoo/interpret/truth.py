"""Checks against a simulation's known truth: TF sites planted from JASPAR matrices, bound where
the site's chromatin is open (the demo's rule, data_processing/demo_data/README.md).

1. Motif recovery: TF-MoDISco patterns from the attributions over the bound windows of a cell
   type, matched by TOMTOM against the motif file; recovered = the TF's own matrix is the best
   match of the pattern with the most seqlets.
2. Core mutation: at the best strong match of the TF's matrix in each window (score >= the motif
   file's ``threshold`` for it), the ``core`` most informative columns are set to their least
   likely base; the change of the TF's logit is collected per (site, cell type) in two groups:
   *open* where the window is labelled bound in that cell type, *closed* where it is labelled
   unbound and the site's bin has accessibility-track signal below the split's median for that
   track (a cell type without the track gives no closed sites). The model learned "motif x open chromatin" if the open changes are large and negative
   and the closed ones much smaller.

Everything is read from the split's files (DNA, labels, signal); nothing from the simulator.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ebert_modelzoo.contract import schema
from ebert_modelzoo.data.motifs import MotifSet, load_motifs, reverse_complement_pwm, scan
from ebert_modelzoo.errors import InterpretError
from ebert_modelzoo.interpret.scoring import Samples, Scorer

DEFAULT_CORE = 4


@dataclass
class CoreMutation:
    """Logit changes of the TF when its sites' cores are mutated."""

    tf: str
    core_columns: list[int]
    num_sites: int
    open: np.ndarray
    """[n_open] changes where the site's window is bound."""
    closed: np.ndarray
    """[n_closed] changes where it is unbound and the site's chromatin closed."""
    open_cells: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        def stats(x: np.ndarray) -> dict[str, float]:
            if not x.size:
                return {"n": 0}
            q = np.quantile(x, [0.1, 0.25, 0.5, 0.75, 0.9])
            return {"n": int(x.size), "mean": float(x.mean()), "q10": float(q[0]), "q25": float(q[1]),
                    "median": float(q[2]), "q75": float(q[3]), "q90": float(q[4])}

        return {"tf": self.tf, "core_columns": self.core_columns, "sites": self.num_sites,
                "open": stats(self.open), "closed": stats(self.closed)}


def strong_threshold(motifs_path: str | Path, tf: str) -> float:
    """The motif file's ``threshold`` of ``tf`` (the demo's strong-match score).

    Raises:
        InterpretError: the file gives none.
    """
    for entry in json.loads(Path(motifs_path).read_text()).get("motifs", []):
        if entry.get("tf") == tf and "threshold" in entry:
            return float(entry["threshold"])
    raise InterpretError(f"{motifs_path}: no 'threshold' for TF {tf!r}; pass --threshold")


def core_columns(motifs: MotifSet, tf: str, core: int) -> np.ndarray:
    """The ``core`` columns of the TF's matrix with the most information (bits), in order."""
    counts = motifs.get(tf).counts
    probs = counts / counts.sum(axis=0, keepdims=True)
    bits = 2 + (probs * np.log2(np.maximum(probs, 1e-12))).sum(axis=0)
    return np.sort(np.argsort(-bits, kind="stable")[:core])


def mutate_cores(codes: np.ndarray, motifs: MotifSet, tf: str, threshold: float,
                 core: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows of ``codes`` [W, S] with a strong site: (window rows, site starts, mutated codes,
    core columns). The site is each window's best match; its core columns (read on the matching
    strand) get the matrix' least likely base."""
    pwm = motifs.log_odds(tf)
    width = pwm.shape[1]
    scores = scan(codes, pwm, np.float64)  # [W, S - L + 1], best of both strands
    best = scores.argmax(axis=1)
    rows = np.flatnonzero(scores[np.arange(len(codes)), best] >= threshold)
    columns = core_columns(motifs, tf, core)
    worst = motifs.get(tf).counts.argmin(axis=0)
    mutated = codes[rows].copy()
    for i, row in enumerate(rows):
        start = int(best[row])
        site = codes[row, start:start + width]
        forward = pwm[np.minimum(site, 3), np.arange(width)].sum()
        reverse = reverse_complement_pwm(pwm)[np.minimum(site, 3), np.arange(width)].sum()
        if forward >= reverse:
            mutated[i, start + columns] = worst[columns]
        else:  # the matrix' column j sits at start + width - 1 - j, complemented
            mutated[i, start + width - 1 - columns] = 3 - worst[columns]
    return rows, best[rows], mutated, columns


def core_mutation(scorer: Scorer, motifs_path: str | Path, tf: str, cells: list[str], track: str,
                  core: int = DEFAULT_CORE, threshold: Optional[float] = None,
                  progress: bool = True) -> CoreMutation:
    """The core-mutation check over every window of the split with a strong ``tf`` site.

    Raises:
        InterpretError: unknown TF/label/cell type/track, or no window with a strong site.
    """
    motifs = load_motifs(motifs_path)
    label = scorer.label_index(tf)
    if track not in scorer.data.track_names:
        raise InterpretError(f"track {track!r} is not in {scorer.data.path} (has {', '.join(scorer.data.track_names)})")
    threshold = strong_threshold(motifs_path, tf) if threshold is None else threshold
    windows = np.arange(scorer.num_windows)
    codes = scorer.codes(windows)
    rows, starts, mutated, columns = mutate_cores(codes, motifs, tf, threshold, core)
    if not rows.size:
        raise InterpretError(f"no window of {scorer.data.path.parent} holds a {tf} match scoring >= {threshold}")
    width = motifs.get(tf).width
    bins = (starts + width // 2) // (scorer.data.tokens_per_bin * scorer.tokenizer.k)
    t = scorer.data.track_names.index(track)
    open_, closed = [], []
    for name in cells:
        cell = scorer.cell_index(name)
        labels = scorer.labels(cell)[rows, label]
        signal = scorer.read(rows, cell)[schema.DATASET_SIGNAL][np.arange(rows.size), bins, t].astype(np.float32)
        track_values = scorer.read(windows, cell)[schema.DATASET_SIGNAL][..., t].astype(np.float32)
        # a cell type without the track (NaN = not measured) has no closed sites to offer
        median = np.nanmedian(track_values) if np.isfinite(track_values).any() else -np.inf
        samples = Samples(rows, np.full(rows.size, cell), np.full(rows.size, cell))
        ref = scorer.logits(samples)[:, label]
        alt = scorer.logits(Samples(rows, samples.cells, samples.epigenome_cells, mutated),
                            f"core mutations {name}" if progress else None)[:, label]
        change = alt - ref
        open_.append(change[labels == 1])
        closed.append(change[(labels == 0) & (signal < median)])
    return CoreMutation(tf, columns.tolist(), int(rows.size), np.concatenate(open_), np.concatenate(closed), cells)
