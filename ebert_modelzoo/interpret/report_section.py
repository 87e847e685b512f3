"""The known-truth checks as one result with a figure, and the demo report's section on them.

``truth_checks`` runs both checks of truth.py (motif recovery over a cell type's bound windows,
core mutations in open vs closed chromatin); ``write_truth`` writes truth.json and truth.png;
``demo_section`` runs them on a demo run and appends a section to the demo report's results.md.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ebert_modelzoo.atomic import atomic_path, atomic_write_text
from ebert_modelzoo.data.motifs import BASES, load_motifs
from ebert_modelzoo.errors import InterpretError
from ebert_modelzoo.interpret.attribution import attribute
from ebert_modelzoo.interpret.scoring import Scorer
from ebert_modelzoo.interpret.truth import CoreMutation, core_mutation

LOGGER = logging.getLogger("ebert_modelzoo")
SECTION_TITLE = "## What the model learned: planted motifs and open chromatin"


@dataclass
class TruthResult:
    tf: str
    matrix_id: str
    cell_type: str
    bound_windows: int
    patterns: list  # motif_discovery.Pattern, most seqlets first
    mutation: CoreMutation
    planted_ppm: np.ndarray
    """[L, 4] probabilities of the TF's planted matrix."""

    @property
    def recovered(self) -> bool:
        """The pattern with the most seqlets has the TF's own matrix as its best TOMTOM match."""
        return bool(self.patterns and self.patterns[0].matches and self.patterns[0].matches[0].matrix_id == self.matrix_id)

    def summary(self) -> dict[str, object]:
        return {
            "tf": self.tf, "planted_matrix": self.matrix_id, "cell_type": self.cell_type,
            "bound_windows": self.bound_windows, "recovered": self.recovered,
            "patterns": [{"pattern": p.name, "seqlets": p.num_seqlets,
                          "consensus": "".join(BASES[b] for b in p.ppm.argmax(axis=1)),
                          "matches": [{"matrix_id": m.matrix_id, "name": m.name, "tomtom_p": m.p_value}
                                      for m in p.matches]} for p in self.patterns],
            "core_mutation": self.mutation.summary(),
        }


def truth_checks(scorer: Scorer, motifs_path: str | Path, tf: str, cell_type: str, cells: Sequence[str], track: str,
                 core: int = 4, max_windows: int = 2000, min_seqlets: int = 100, leiden_runs: int = 50,
                 method: str = "gradient", motif_dir: Optional[Path] = None, progress: bool = True) -> TruthResult:
    """Both checks for ``tf``: motifs over the bound windows of ``cell_type`` (matched against
    ``motifs_path``) and core mutations in ``cells``."""
    from ebert_modelzoo.interpret import motif_discovery as md

    planted = load_motifs(motifs_path).get(tf)
    cell, label = scorer.cell_index(cell_type), scorer.label_index(tf)
    windows = md.bound_windows(scorer.labels(cell)[:, label], max_windows)
    attributions = attribute(scorer, windows, cell_type, tf, method, progress=progress)
    try:
        patterns = md.discover(attributions, min_seqlets=min_seqlets, leiden_runs=leiden_runs)
    except (ValueError, IndexError) as err:  # modisco-lite fails on degenerate (e.g. all-zero) scores
        LOGGER.warning("TF-MoDISco found no pattern: %s", err)
        patterns = []
    md.match(patterns, md.load_targets(motifs_path))
    if motif_dir is not None:
        md.write_results(motif_dir, patterns, f"{tf} in {cell_type} ({method})")
    mutation = core_mutation(scorer, motifs_path, tf, list(cells), track, core, progress=progress)
    ppm = (planted.counts / planted.counts.sum(axis=0, keepdims=True)).T
    return TruthResult(tf, planted.matrix_id, cell_type, int(windows.size), patterns, mutation, ppm)


def _logo(ax, matrix: np.ndarray, title: str) -> None:
    import logomaker
    import pandas as pd

    ic = matrix * np.log2(np.maximum(matrix, 1e-9) * 4)
    logomaker.Logo(pd.DataFrame(np.maximum(ic, 0), columns=list(BASES)), ax=ax)
    ax.set_ylim(0, 2)
    ax.set_title(title, fontsize=8)
    ax.set_ylabel("bits", fontsize=8)


def plot_truth(path: Path, results: Sequence[TruthResult]) -> Path:
    """One row per TF: core-mutation changes (open vs closed), planted matrix, recovered pattern."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 3, figsize=(12, 2.6 * len(results)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.2, 1, 1]})
    for row, result in zip(axes, results):
        m = result.mutation
        values = [v for v in (m.open, m.closed) if v.size]
        if values:
            bins = np.linspace(min(v.min() for v in values), max(v.max() for v in values), 40)
            if m.open.size:
                row[0].hist(m.open, bins=bins, alpha=0.6, color="tab:red", label=f"open, bound (n={m.open.size})")
            if m.closed.size:
                row[0].hist(m.closed, bins=bins, alpha=0.6, color="tab:blue", label=f"closed (n={m.closed.size})")
            row[0].legend(fontsize=7)
        row[0].set_xlabel(f"{result.tf} logit change, motif core mutated", fontsize=8)
        row[0].set_title(f"{result.tf}: {m.num_sites} strong sites", fontsize=8)
        _logo(row[1], result.planted_ppm, f"planted: JASPAR {result.matrix_id} {result.tf}")
        if result.patterns:
            top = result.patterns[0]
            best = top.matches[0] if top.matches else None
            note = f"best match {best.matrix_id} {best.name}, p={best.p_value:.2g}" if best else "no match"
            _logo(row[2], top.ppm, f"recovered in {result.cell_type}: {top.num_seqlets} seqlets\n{note}")
        else:
            row[2].text(0.5, 0.5, "no TF-MoDISco pattern", ha="center", va="center")
            row[2].set_axis_off()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_truth(out_dir: Path, result: TruthResult) -> list[Path]:
    """truth.json and truth.png under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "truth.json", json.dumps(result.summary(), indent=1) + "\n")
    return [out_dir / "truth.json", plot_truth(out_dir / "truth.png", [result])]


def _fmt(stats: dict) -> str:
    if not stats.get("n"):
        return "none"
    return f"median {stats['median']:+.2g} (IQR {stats['q25']:+.2g} to {stats['q75']:+.2g}, n={stats['n']})"


def section_markdown(results: Sequence[TruthResult], figure: str, command: str) -> str:
    """The report section: a table per TF and the figure."""
    lines = [SECTION_TITLE, "",
             "The simulation planted JASPAR motifs and bound a TF only where its site's chromatin is open. "
             "Motif recovery: TF-MoDISco-lite on gradient x input over the bound windows of the held-out cell "
             "type, best TOMTOM match (memelite) of the pattern with the most seqlets among the demo's motifs. "
             "Core mutation: the 4 most informative columns of each strong site set to their least likely base; "
             "the TF's logit change where the window is bound (open) and where it is unbound with below-median "
             "DNase (closed).", "",
             "| TF | bound windows | top pattern (seqlets) | best match (TOMTOM p) | recovered | core mutation, open | "
             "core mutation, closed |", "|---|---:|---|---|---|---|---|"]
    for r in results:
        top = r.patterns[0] if r.patterns else None
        consensus = "".join(BASES[b] for b in top.ppm.argmax(axis=1)) if top else "none"
        best = top.matches[0] if top and top.matches else None
        match = f"{best.matrix_id} {best.name} ({best.p_value:.2g})" if best else "n/a"
        summary = r.mutation.summary()
        lines.append(f"| {r.tf} | {r.bound_windows} | {consensus} ({top.num_seqlets if top else 0}) | {match} | "
                     f"{'yes' if r.recovered else 'no'} | {_fmt(summary['open'])} | {_fmt(summary['closed'])} |")
    lines += ["", f"![{figure}]({figure})", "", f"Reproduce one TF: `{command}`", ""]
    return "\n".join(lines)


def demo_section(report_dir: Path, params_file: Path, data_dir: Path, motifs_path: Path, cell_type: str,
                 tfs: Sequence[str], track: str = "DNase", quick: bool = False, progress: bool = True) -> str:
    """Run the checks for each TF on a demo fine-tuning run, write interpretation.{json,png} into
    the report folder and append the section to its results.md; returns the section."""
    scorer = Scorer(params_file, data_dir=data_dir)
    results = []
    try:
        for tf in tfs:
            try:
                results.append(truth_checks(scorer, motifs_path, tf, cell_type, list(scorer.cell_types), track,
                                            max_windows=2000, min_seqlets=20,
                                            leiden_runs=5 if quick else 50, progress=progress))
            except InterpretError as err:
                LOGGER.warning("interpretation of %s skipped: %s", tf, err)
    finally:
        scorer.close()
    if not results:
        return ""
    plot_truth(report_dir / "interpretation.png", results)
    atomic_write_text(report_dir / "interpretation.json",
                      json.dumps([r.summary() for r in results], indent=1) + "\n")
    command = (f"python -m ebert_modelzoo.interpret truth -p {params_file} --data_dir {data_dir} "
               f"--motifs {motifs_path} --tf {tfs[0]} --cell_type {cell_type} --out interpretation")
    text = section_markdown(results, "interpretation.png", command)
    results_md = report_dir / "results.md"
    if results_md.is_file():
        atomic_write_text(results_md, results_md.read_text().rstrip("\n") + "\n\n" + text)
    return text
