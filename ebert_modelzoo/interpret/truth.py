"""Checks against a simulation's known truth: TF sites planted from JASPAR matrices, bound where
the site's chromatin is open (the demo's rule, data_processing/demo_data/README.md).

1. Motif recovery: TF-MoDISco patterns from the attributions over the bound windows of a cell
   type, matched by TOMTOM against the motif file; recovered = the TF's own matrix is the best
   match of the pattern with the most seqlets.
2. Core mutation, in one cell type (e.g. the held-out one): at the best strong match of the TF's
   matrix in each window (score >= the motif file's ``threshold`` for it), the ``core`` most
   informative columns are set to their least likely base; the change of the TF's logit is
   collected in three groups: *open* where the window is labelled bound in that cell type,
   *closed* where it is labelled unbound and the site's bin has accessibility-track signal below
   that cell type's median for the track, and *what if* for those closed sites whose window is
   bound in another cell type of the split: the same cell type (its identity, the same DNA) read
   with that donor's epigenome (the donor with the most signal at the site). The model learned
   "motif x open chromatin" if the open and what-if changes are large and negative and the closed
   ones much smaller: the what-if pairs differ from the closed ones only by the epigenome.

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
    """Logit changes of the TF when its sites' cores are mutated, in cell type ``cell``."""

    tf: str
    cell: str
    core_columns: list[int]
    num_sites: int
    open: np.ndarray
    """[n_open] changes where the site's window is bound."""
    closed: np.ndarray
    """[n_closed] changes where it is unbound and the site's chromatin closed."""
    what_if: np.ndarray
    """[n_what_if] changes at the closed sites bound elsewhere, read with the donor's epigenome."""
    what_if_closed: np.ndarray
    """[n_what_if] the same sites' changes with their own (closed) epigenome: the pairs' other half."""
    donors: list[str] = field(default_factory=list)
    """[n_what_if] the cell type whose epigenome each what-if site was read with."""

    def summary(self) -> dict[str, object]:
        return {"tf": self.tf, "cell_type": self.cell, "core_columns": self.core_columns, "sites": self.num_sites,
                "open": distribution(self.open), "closed": distribution(self.closed),
                "what_if": {**distribution(self.what_if), "paired_closed": distribution(self.what_if_closed),
                            "donors": {name: self.donors.count(name) for name in sorted(set(self.donors))}},
                "open_to_closed": effect_ratio(self.open, self.closed)}


def distribution(x: np.ndarray) -> dict[str, float]:
    """n, mean and quantiles (10, 25, 50, 75, 90 %) of ``x``; just n when empty."""
    if not x.size:
        return {"n": 0}
    q = np.quantile(x, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"n": int(x.size), "mean": float(x.mean()), "q10": float(q[0]), "q25": float(q[1]),
            "median": float(q[2]), "q75": float(q[3]), "q90": float(q[4])}


def effect_ratio(strong: np.ndarray, weak: np.ndarray) -> Optional[float]:
    """|median of ``strong``| / max(|median of ``weak``|, 1e-3): how many times larger the effect is
    in the first group; None when a group is empty."""
    if not strong.size or not weak.size:
        return None
    return float(abs(np.median(strong)) / max(abs(np.median(weak)), 1e-3))


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


def core_mutation(scorer: Scorer, motifs_path: str | Path, tf: str, cell: str, track: str,
                  donors: Optional[list[str]] = None, core: int = DEFAULT_CORE, threshold: Optional[float] = None,
                  progress: bool = True) -> CoreMutation:
    """The core-mutation check in cell type ``cell`` over every window of the split with a strong
    ``tf`` site; what-if epigenomes come from ``donors`` (default every other cell type of the split).

    Raises:
        InterpretError: unknown TF/label/cell type/track, or no window with a strong site.
    """
    motifs = load_motifs(motifs_path)
    label = scorer.label_index(tf)
    if track not in scorer.data.track_names:
        raise InterpretError(f"track {track!r} is not in {scorer.data.path} (has {', '.join(scorer.data.track_names)})")
    threshold = strong_threshold(motifs_path, tf) if threshold is None else threshold
    codes = scorer.codes(np.arange(scorer.num_windows))
    rows, starts, mutated, columns = mutate_cores(codes, motifs, tf, threshold, core)
    if not rows.size:
        raise InterpretError(f"no window of {scorer.data.path.parent} holds a {tf} match scoring >= {threshold}")
    width = motifs.get(tf).width
    bins = (starts + width // 2) // (scorer.data.tokens_per_bin * scorer.tokenizer.k)
    t = scorer.data.track_names.index(track)
    own = scorer.cell_index(cell)
    donors = [d for d in (donors if donors is not None else scorer.cell_types) if d != cell]
    donor_ids = [scorer.cell_index(d) for d in donors]

    def site_signal(epigenome: int) -> np.ndarray:
        return scorer.read(rows, epigenome)[schema.DATASET_SIGNAL][np.arange(rows.size), bins, t].astype(np.float32)

    def change(sites: np.ndarray, epigenome: np.ndarray, what: str) -> np.ndarray:
        samples = Samples(rows[sites], np.full(sites.size, own), epigenome)
        ref = scorer.logits(samples)[:, label]
        alt = scorer.logits(Samples(samples.windows, samples.cells, epigenome, mutated[sites]),
                            f"core mutations, {what}" if progress else None)[:, label]
        return alt - ref

    labels = scorer.labels(own)[rows, label]
    track_values = scorer.read(np.arange(scorer.num_windows), own)[schema.DATASET_SIGNAL][..., t].astype(np.float32)
    signal = track_values[rows, bins]
    # a cell type without the track (NaN = not measured) has no closed sites to offer
    median = np.nanmedian(track_values) if np.isfinite(track_values).any() else -np.inf
    everything = change(np.arange(rows.size), np.full(rows.size, own), cell)
    is_open, is_closed = labels == 1, (labels == 0) & (signal < median)
    # what if: each closed site bound in a donor, read with the epigenome of the donor most open there
    donor = np.full(rows.size, -1)
    if donor_ids:
        bound = np.stack([scorer.labels(d)[rows, label] == 1 for d in donor_ids])  # [D, sites]
        openness = np.where(bound, np.nan_to_num(np.stack([site_signal(d) for d in donor_ids]), nan=-np.inf), -np.inf)
        best = openness.argmax(axis=0)
        has = is_closed & bound.any(axis=0)
        donor[has] = np.asarray(donor_ids)[best[has]]
    swapped = np.flatnonzero(donor >= 0)
    what_if = change(swapped, donor[swapped], "what if") if swapped.size else np.zeros(0, dtype=np.float32)
    return CoreMutation(tf, cell, columns.tolist(), int(rows.size), everything[is_open], everything[is_closed],
                        what_if, everything[swapped], [scorer.cell_types[d] for d in donor[swapped]])
