"""The known-truth checks as one result with a figure, and the demo report's section on them.

``truth_checks`` runs both checks of truth.py for one TF (motif recovery over a cell type's bound
windows by each attribution method asked for, core mutations in open, closed and what-if
chromatin); ``write_truth`` writes truth.json and truth.png; ``demo_section`` runs them on demo
runs and appends a section to the demo report's results.md.

What a recovery means depends on the run's inputs. A model fed known-motif tracks computed from
the JASPAR matrices (``motif_file``) is handed the planted motifs: ISM, which recomputes the
tracks from every mutant, recovers them whenever the model reads its tracks, so that recovery
shows use, not learning. The gradient methods pass through the DNA token embeddings only (the
scan is discrete), so on such a model they show what it learned from the DNA itself.
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
class Recovery:
    """TF-MoDISco patterns of one attribution method over the bound windows."""

    method: str
    through: str
    """The inputs the attributions pass through (attribution.inputs_through)."""
    windows: int
    """Bound windows attributed."""
    patterns: list  # motif_discovery.Pattern, most seqlets first

    def planted_p(self, matrix_id: str) -> Optional[float]:
        """TOMTOM p-value of the planted matrix against the pattern with the most seqlets (None: no pattern)."""
        if not self.patterns:
            return None
        return next((m.p_value for m in self.patterns[0].matches if m.matrix_id == matrix_id), None)

    def recovered(self, matrix_id: str) -> bool:
        """The pattern with the most seqlets has the planted matrix as its best TOMTOM match."""
        return bool(self.patterns and self.patterns[0].matches and self.patterns[0].matches[0].matrix_id == matrix_id)


@dataclass
class TruthResult:
    tf: str
    matrix_id: str
    cell_type: str
    variant: str
    """The run checked, in words (e.g. the demo's variant name)."""
    motif_inputs: bool
    """The run reads known-motif tracks computed from the DNA (handed the planted matrices)."""
    bound_windows: int
    recoveries: list[Recovery]
    mutation: CoreMutation
    planted_ppm: np.ndarray
    """[L, 4] probabilities of the TF's planted matrix."""

    @property
    def recovered(self) -> bool:
        """Every method's top pattern has the planted matrix as its best match."""
        return bool(self.recoveries) and all(r.recovered(self.matrix_id) for r in self.recoveries)

    def summary(self) -> dict[str, object]:
        return {
            "tf": self.tf, "planted_matrix": self.matrix_id, "cell_type": self.cell_type, "variant": self.variant,
            "motif_inputs": self.motif_inputs, "bound_windows": self.bound_windows, "recovered": self.recovered,
            "recoveries": [{
                "method": r.method, "through": r.through, "windows": r.windows, "recovered": r.recovered(self.matrix_id),
                "planted_tomtom_p": r.planted_p(self.matrix_id),
                "patterns": [{"pattern": p.name, "seqlets": p.num_seqlets,
                              "consensus": "".join(BASES[b] for b in p.ppm.argmax(axis=1)),
                              "matches": [{"matrix_id": m.matrix_id, "name": m.name, "tomtom_p": m.p_value}
                                          for m in p.matches]} for p in r.patterns]} for r in self.recoveries],
            "core_mutation": self.mutation.summary(),
        }


def default_methods(scorer: Scorer) -> tuple[str, ...]:
    """ISM (the whole model) and gradient x input (the DNA tokens alone) for a run fed motif
    tracks; gradient x input alone (which then is the whole model's DNA path) otherwise."""
    return ("ism", "gradient") if scorer.dna_derived_inputs else ("gradient",)


def central_positions(scorer: Scorer, span_bp: int) -> np.ndarray:
    """The window's central ``span_bp`` positions (its labelled centre and flanks), to limit ISM to."""
    length = scorer.sequence_length
    first = max(0, (length - span_bp) // 2)
    return np.arange(first, min(length, first + span_bp))


def truth_checks(scorer: Scorer, motifs_path: str | Path, tf: str, cell_type: str, track: str,
                 methods: Optional[Sequence[str]] = None, donors: Optional[Sequence[str]] = None, core: int = 4,
                 max_windows: int = 2000, min_seqlets: int = 100, leiden_runs: int = 50,
                 ism_windows: Optional[int] = None, ism_positions: Optional[np.ndarray] = None, variant: str = "",
                 motif_dir: Optional[Path] = None, progress: bool = True) -> TruthResult:
    """Both checks for ``tf`` in ``cell_type``: motifs over its bound windows (at most
    ``max_windows``) from each of ``methods`` (default ``default_methods``), matched against
    ``motifs_path``, and core mutations (what-if epigenomes from ``donors``, default all other cell
    types). ISM, 3 forward passes per base, can be limited to the first ``ism_windows`` of those
    windows and to ``ism_positions`` of each; a method's patterns need ``min_seqlets`` seqlets, or
    as many as it had windows when fewer."""
    from ebert_modelzoo.interpret import motif_discovery as md

    planted = load_motifs(motifs_path).get(tf)
    targets = md.load_targets(motifs_path)
    cell, label = scorer.cell_index(cell_type), scorer.label_index(tf)
    windows = md.bound_windows(scorer.labels(cell)[:, label], max_windows)
    recoveries = []
    for method in methods or default_methods(scorer):
        ism = method == "ism"
        chosen = windows[:ism_windows] if ism and ism_windows else windows
        attributions = attribute(scorer, chosen, cell_type, tf, method, positions=ism_positions if ism else None,
                                 progress=progress)
        try:
            patterns = md.discover(attributions, min_seqlets=min(min_seqlets, int(chosen.size)),
                                   leiden_runs=leiden_runs)
        except (ValueError, IndexError) as err:  # modisco-lite fails on degenerate (e.g. all-zero) scores
            LOGGER.warning("TF-MoDISco found no pattern in the %s attributions: %s", method, err)
            patterns = []
        md.match(patterns, targets, top=len(targets))
        if motif_dir is not None:
            md.write_results(motif_dir / method, patterns, f"{tf} in {cell_type} ({method})")
        recoveries.append(Recovery(method, attributions.through, int(chosen.size), patterns))
    mutation = core_mutation(scorer, motifs_path, tf, cell_type, track, None if donors is None else list(donors),
                             core, progress=progress)
    ppm = (planted.counts / planted.counts.sum(axis=0, keepdims=True)).T
    return TruthResult(tf, planted.matrix_id, cell_type, variant, bool(scorer.dna_derived_inputs), int(windows.size),
                       recoveries, mutation, ppm)


def _logo(ax, matrix: np.ndarray, title: str) -> None:
    import logomaker
    import pandas as pd

    ic = matrix * np.log2(np.maximum(matrix, 1e-9) * 4)
    logomaker.Logo(pd.DataFrame(np.maximum(ic, 0), columns=list(BASES)), ax=ax)
    ax.set_ylim(0, 2)
    ax.set_title(title, fontsize=7)
    ax.set_ylabel("bits", fontsize=7)


GROUPS = (("open", "open\n(bound)", "tab:red"), ("closed", "closed", "tab:blue"),
          ("what_if", "closed, what if\n(donor epigenome)", "tab:orange"))


def _distributions(ax, mutation: CoreMutation, title: str) -> None:
    """Box plots with every value as a jittered point: open, closed and what-if core-mutation changes."""
    rng = np.random.default_rng(0)
    for i, (key, name, colour) in enumerate(GROUPS):
        values = getattr(mutation, key)
        if values.size:
            ax.boxplot([values], positions=[i], widths=0.5, showfliers=False)
            ax.scatter(i + rng.uniform(-0.18, 0.18, values.size), values, s=5, alpha=0.5, color=colour)
    ax.set_xticks(range(len(GROUPS)),
                  [f"{name}\nn={getattr(mutation, key).size}" for key, name, _ in GROUPS], fontsize=6)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel(f"{mutation.tf} logit change", fontsize=7)
    ax.set_title(title, fontsize=7)


def plot_truth(path: Path, results: Sequence[TruthResult]) -> Path:
    """One row per TF: each run's core-mutation changes (open, closed, what if), the planted
    matrix, and each run and method's top recovered pattern."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tfs = list(dict.fromkeys(r.tf for r in results))
    variants = list(dict.fromkeys(r.variant for r in results))
    logos = list(dict.fromkeys((r.variant, rec.method) for r in results for rec in r.recoveries))
    columns = len(variants) + 1 + len(logos)
    fig, axes = plt.subplots(len(tfs), columns, figsize=(2.6 * columns, 2.5 * len(tfs)), squeeze=False)
    by_key = {(r.tf, r.variant): r for r in results}
    for row, tf in zip(axes, tfs):
        for ax in row:
            ax.set_axis_off()
        for j, variant in enumerate(variants):
            if (tf, variant) in by_key:
                row[j].set_axis_on()
                result = by_key[tf, variant]
                _distributions(row[j], result.mutation, f"{variant}: {tf} core mutated, {result.cell_type}\n"
                                                        f"{result.mutation.num_sites} strong sites in the split")
        first = next(r for r in results if r.tf == tf)
        row[len(variants)].set_axis_on()
        _logo(row[len(variants)], first.planted_ppm, f"planted: JASPAR {first.matrix_id} {tf}")
        for j, (variant, method) in enumerate(logos, len(variants) + 1):
            result = by_key.get((tf, variant))
            recovery = next((r for r in result.recoveries if r.method == method), None) if result else None
            if recovery is None:
                continue
            row[j].set_axis_on()
            if recovery.patterns:
                top = recovery.patterns[0]
                best = top.matches[0] if top.matches else None
                note = f"best {best.matrix_id} {best.name}, p={best.p_value:.2g}" if best else "no match"
                _logo(row[j], top.ppm, f"{variant}, {method}: {top.num_seqlets} seqlets\n{note}")
            else:
                row[j].text(0.5, 0.5, f"{variant}, {method}:\nno TF-MoDISco pattern", ha="center", va="center",
                            fontsize=7)
                row[j].set_axis_off()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
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
    return f"{stats['median']:+.2g} ({stats['q25']:+.2g} to {stats['q75']:+.2g}, n={stats['n']})"


def section_markdown(results: Sequence[TruthResult], figure: str, command: str) -> str:
    """The report section: what each run was handed, motif recovery and core mutations per TF and run, the figure."""
    cell = results[0].cell_type if results else ""
    lines = [SECTION_TITLE, "",
             "The simulation planted JASPAR motifs and bound a TF only where its site's chromatin is open. "
             f"Motif recovery: TF-MoDISco-lite on the attributions over the bound windows of {cell}; the best "
             "TOMTOM match (memelite) of the pattern with the most seqlets among the demo's four matrices, and the "
             "TOMTOM p of the planted one. Core mutation: the 4 most informative columns of each strong site set to "
             f"their least likely base; the TF's logit change in {cell} where the window is bound (open), where it "
             "is unbound with below-median DNase at the site (closed), and at those closed sites bound in another "
             f"cell type with that cell type's epigenome swapped in (what if: same DNA, same {cell} identity).", ""]
    for variant in dict.fromkeys(r.variant for r in results):
        first = next(r for r in results if r.variant == variant)
        if first.motif_inputs:
            lines.append(f"- {variant} is handed the planted matrices: its known-motif tracks are JASPAR scans of the "
                         "DNA. ISM recomputes the tracks from every mutant, so a recovered motif by ISM shows that the "
                         "model reads its tracks, not that it learned the motif; gradient x input passes through the "
                         "DNA tokens only and shows what it learned from the DNA itself. Its core-mutation contrast "
                         "is the model combining the tracks with the epigenome.")
        else:
            lines.append(f"- {variant} sees the DNA only as k-mer tokens: whatever motif its attributions show, it "
                         "learned.")
    lines += ["", "| TF | run | attributions (through) | windows | top pattern (seqlets) | best match (TOMTOM p) "
                  "| planted p | recovered |", "|---|---|---|---:|---|---|---|---|"]
    for r in results:
        for rec in r.recoveries:
            top = rec.patterns[0] if rec.patterns else None
            consensus = "".join(BASES[b] for b in top.ppm.argmax(axis=1)) if top else "none"
            best = top.matches[0] if top and top.matches else None
            match = f"{best.matrix_id} {best.name} ({best.p_value:.2g})" if best else "n/a"
            planted = rec.planted_p(r.matrix_id)
            lines.append(f"| {r.tf} | {r.variant} | {rec.method} ({rec.through}) | {rec.windows} of {r.bound_windows} | {consensus} "
                         f"({top.num_seqlets if top else 0}) | {match} | {'n/a' if planted is None else f'{planted:.2g}'} "
                         f"| {'yes' if rec.recovered(r.matrix_id) else 'no'} |")
    lines += ["", f"Core-mutation logit changes in {cell}: median (IQR, n); open/closed = |median open| / "
                  "|median closed|.", "",
              "| TF | run | strong sites | open | closed | open/closed | what if | same sites, closed |",
              "|---|---|---:|---|---|---:|---|---|"]
    for r in results:
        s = r.mutation.summary()
        ratio = "n/a" if s["open_to_closed"] is None else f"{s['open_to_closed']:.1f}"
        lines.append(f"| {r.tf} | {r.variant} | {s['sites']} | {_fmt(s['open'])} | {_fmt(s['closed'])} | {ratio} | "
                     f"{_fmt(s['what_if'])} | {_fmt(s['what_if']['paired_closed'])} |")
    lines += ["", f"![{figure}]({figure})", "", f"Reproduce one TF and run: `{command}`", ""]
    return "\n".join(lines)


def demo_section(report_dir: Path, runs: Sequence[tuple[str, Path]], data_dir: Path, motifs_path: Path, cell_type: str,
                 tfs: Sequence[str], track: str = "DNase", ism_windows: int = 8, ism_span_bp: Optional[int] = None,
                 quick: bool = False, progress: bool = True) -> str:
    """Run the checks for each TF on each of ``runs`` ((name, params file)) in ``cell_type``,
    write interpretation.{json,png} into the report folder and append the section to its
    results.md; returns the section. Gradient attributions use up to 2000 bound windows, and
    TF-MoDISco takes the best of 10 Leiden clusterings (its default 50 cost the demo about 45 s
    on the 1.5 Mb test, for a check that needs the planted motif found, not the best split); ISM
    (runs fed motif tracks) the first ``ism_windows`` of them, over the central ``ism_span_bp``
    (default the whole window) only: it costs 3 forward passes per base."""
    results = []
    for name, params_file in runs:
        scorer = Scorer(params_file, data_dir=data_dir)
        try:
            span = None if ism_span_bp is None else central_positions(scorer, ism_span_bp)
            for tf in tfs:
                try:
                    results.append(truth_checks(scorer, motifs_path, tf, cell_type, track, max_windows=2000,
                                                min_seqlets=20, leiden_runs=5 if quick else 10, ism_windows=ism_windows,
                                                ism_positions=span, variant=name, progress=progress))
                except InterpretError as err:
                    LOGGER.warning("interpretation of %s for %s skipped: %s", name, tf, err)
        finally:
            scorer.close()
    if not results:
        return ""
    plot_truth(report_dir / "interpretation.png", results)
    atomic_write_text(report_dir / "interpretation.json",
                      json.dumps([r.summary() for r in results], indent=1) + "\n")
    command = (f"python -m ebert_modelzoo.interpret truth -p {runs[0][1]} --data_dir {data_dir} "
               f"--motifs {motifs_path} --tf {tfs[0]} --cell_type {cell_type} --out interpretation")
    text = section_markdown(results, "interpretation.png", command)
    results_md = report_dir / "results.md"
    if results_md.is_file():
        atomic_write_text(results_md, results_md.read_text().rstrip("\n") + "\n\n" + text)
    return text
