"""Motifs from attributions: TF-MoDISco-lite seqlets and patterns, matched to JASPAR by
TOMTOM (memelite's implementation).

A pattern is reported by its position probability matrix (PPM, the bases of its seqlets) and its
contribution-weighted matrix (CWM), both trimmed to the positions whose total |CWM| is at least
30 % of the largest (as modisco-lite's own report does), then compared with every target matrix
on both strands. Targets: a motif JSON file (``ebert_modelzoo.data.motifs`` format, e.g. the demo's
JASPAR matrices) or a MEME-format file (JASPAR's downloads). TOMTOM's p-values use the targets'
columns as background, so they are only comparable across runs with the same target file; with
fewer than ~25 targets memelite warns that they shift with the target set.
"""
from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.data.motifs import BASES, load_motifs
from ebert_modelzoo.errors import InterpretError, MotifError
from ebert_modelzoo.interpret.attribution import Attributions, one_hot

TRIM_FRACTION = 0.3


@dataclass(frozen=True)
class Target:
    """A database motif: id (e.g. JASPAR matrix id), name (TF), probabilities [4, L]."""

    matrix_id: str
    name: str
    ppm: np.ndarray


@dataclass(frozen=True)
class Match:
    matrix_id: str
    name: str
    p_value: float
    score: float
    offset: int
    strand: str


@dataclass
class Pattern:
    """One TF-MoDISco pattern, trimmed."""

    name: str
    num_seqlets: int
    ppm: np.ndarray
    """[L, 4] base probabilities."""
    cwm: np.ndarray
    """[L, 4] mean contributions."""
    matches: list[Match] = field(default_factory=list)


def load_targets(path: str | Path) -> list[Target]:
    """Target motifs from a motif JSON file or a MEME file (by content: JSON starts with '{').

    Raises:
        FileNotFoundError: no such file.
        MotifError: a malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: motif file not found")
    if path.read_text(errors="replace").lstrip().startswith("{"):
        motif_set = load_motifs(path)
        return [Target(m.matrix_id, m.tf, m.counts / m.counts.sum(axis=0, keepdims=True)) for m in motif_set.motifs]
    from memelite.io import read_meme

    try:
        motifs = read_meme(str(path))
    except (ValueError, IndexError) as err:
        raise MotifError(f"{path}: not a readable MEME motif file ({err})") from None
    if not motifs:
        raise MotifError(f"{path}: no MOTIF entries")
    targets = []
    for key, matrix in motifs.items():
        parts = key.split()
        matrix = np.asarray(matrix, dtype=np.float64)
        targets.append(Target(parts[0], parts[1] if len(parts) > 1 else parts[0], matrix))
    return targets


def _trim(ppm: np.ndarray, cwm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score = np.abs(cwm).sum(axis=1)
    keep = np.flatnonzero(score >= score.max() * TRIM_FRACTION)
    return ppm[keep.min():keep.max() + 1], cwm[keep.min():keep.max() + 1]


def discover(attributions: Attributions, min_seqlets: int = 100, max_seqlets: int = 20000,
             window_size: int = 21, flank: int = 10, leiden_runs: int = 50) -> list[Pattern]:
    """Positive TF-MoDISco-lite patterns of ``attributions`` (hypothetical scores), most seqlets first.

    Args:
        min_seqlets: fewest seqlets to cluster (modisco's min_metacluster_size) and to keep a pattern.
        window_size, flank: seqlet core and flank (bp).
        leiden_runs: Leiden clusterings to take the best of.

    Raises:
        ValueError: modisco-lite could not cluster the seqlets (e.g. all-zero scores, or NaN
            similarities between seqlets that are zero where attributions were not computed).
    """
    from modiscolite.tfmodisco import TFMoDISco  # the optional `interpret` extra

    sequences = one_hot(attributions.codes)
    try:
        positive, _ = TFMoDISco(one_hot=sequences, hypothetical_contribs=attributions.hypothetical.astype(np.float32),
                                sliding_window_size=window_size, flank_size=flank, min_metacluster_size=min_seqlets,
                                max_seqlets_per_metacluster=max_seqlets, final_min_cluster_size=min(20, min_seqlets),
                                n_leiden_runs=leiden_runs, verbose=False)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # leidenalg raises a bare BaseException ("Cannot accept NaN weights")
        raise ValueError(f"TF-MoDISco could not cluster the seqlets: {err}") from err
    patterns = []
    for i, pattern in enumerate(positive or []):
        ppm, cwm = _trim(np.asarray(pattern.sequence), np.asarray(pattern.contrib_scores))
        patterns.append(Pattern(f"pos_pattern_{i}", len(pattern.seqlets), ppm, cwm))
    patterns.sort(key=lambda p: -p.num_seqlets)
    return patterns


def match(patterns: Sequence[Pattern], targets: Sequence[Target], top: int = 3) -> None:
    """Fill each pattern's ``matches``: its ``top`` targets by TOMTOM p-value (both strands)."""
    if not patterns:
        return
    from memelite import tomtom

    top = min(top, len(targets))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="tomtom was given")
        p, scores, offsets, _, strands, idxs = tomtom([pat.ppm.T for pat in patterns], [t.ppm for t in targets],
                                                       n_nearest=top)
    for i, pattern in enumerate(patterns):
        pattern.matches = [Match(targets[int(idxs[i, j])].matrix_id, targets[int(idxs[i, j])].name,
                                 float(p[i, j]), float(scores[i, j]), int(offsets[i, j]),
                                 "-" if int(strands[i, j]) else "+") for j in range(top)]


def write_results(out_dir: str | Path, patterns: Sequence[Pattern], title: str) -> Path:
    """``motifs.tsv`` (one row per pattern and match), ``motifs.json`` (matrices) and one logo
    PNG per pattern (CWM above PPM) under ``out_dir``; returns the TSV."""
    import logomaker
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tsv = out / "motifs.tsv"
    with atomic_path(tsv) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["pattern", "seqlets", "width", "rank", "match_id", "match_name", "tomtom_p", "score",
                         "offset", "strand", "consensus"])
        for pattern in patterns:
            consensus = "".join(BASES[b] for b in pattern.ppm.argmax(axis=1))
            for rank, m in enumerate(pattern.matches or [None], 1):
                row = [pattern.name, pattern.num_seqlets, len(pattern.ppm), rank if m else ""]
                row += [m.matrix_id, m.name, f"{m.p_value:.3g}", f"{m.score:.4g}", m.offset, m.strand] if m else [""] * 6
                writer.writerow(row + [consensus])
    record = [{"pattern": p.name, "seqlets": p.num_seqlets, "ppm": p.ppm.tolist(), "cwm": p.cwm.tolist(),
               "matches": [m.__dict__ for m in p.matches]} for p in patterns]
    with atomic_path(out / "motifs.json") as tmp:
        tmp.write_text(json.dumps({"title": title, "patterns": record}, indent=1))
    for pattern in patterns:
        fig, axes = plt.subplots(2, 1, figsize=(max(4.0, 0.35 * len(pattern.ppm)), 3.2))
        logomaker.Logo(pd.DataFrame(pattern.cwm, columns=list(BASES)), ax=axes[0])
        ic = pattern.ppm * np.log2(np.maximum(pattern.ppm, 1e-9) * 4)
        logomaker.Logo(pd.DataFrame(np.maximum(ic, 0), columns=list(BASES)), ax=axes[1])
        best = pattern.matches[0] if pattern.matches else None
        label = f" best match {best.matrix_id} {best.name} (p={best.p_value:.2g})" if best else ""
        axes[0].set_title(f"{title}: {pattern.name}, {pattern.num_seqlets} seqlets;{label}", fontsize=8)
        axes[0].set_ylabel("CWM", fontsize=8)
        axes[1].set_ylabel("bits", fontsize=8)
        fig.tight_layout()
        with atomic_path(out / f"{pattern.name}.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
    return tsv


def bound_windows(labels: np.ndarray, max_windows: int, seed: int = 0) -> np.ndarray:
    """Indices of the windows labelled bound (1) in ``labels`` [W], at most ``max_windows``
    (an even random subset, sorted).

    Raises:
        InterpretError: no bound window.
    """
    bound = np.flatnonzero(labels == 1)
    if not bound.size:
        raise InterpretError("no window is labelled bound for this cell type and label in the split")
    if bound.size > max_windows:
        bound = np.sort(np.random.default_rng(seed).choice(bound, max_windows, replace=False))
    return bound
