"""The evaluation report: ENCODE-DREAM metrics per TF and variant, paired comparisons, plots.

``write_report(out_dir, variants, evaluation, ...)`` writes one folder:
    results.json        everything below as data (schema in ``write_report``'s docstring)
    results.md          the evaluation set, the metric table, the verdict
    pr_curves.png       precision-recall per TF, one line per variant
    auprc.png           auPRC per TF and variant
    training_curves.png loss vs step per run (when training curves are given)

Inputs are plain arrays: ``VariantScores`` (scores, labels, weights of one model variant over the
same evaluation samples, shape (..., K)), ``TrainingCurve`` (step, loss records; JSONL reader
below), ``EvaluationSet`` (which held-out cell types and regions, and how many consecutive windows the
verdicts' bootstrap resamples together) and ``Comparison`` (which pair of variants answers which
question). The metrics come from ``ebert_modelzoo.evaluation.metrics``.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from ebert_modelzoo.atomic import atomic_write_text
from ebert_modelzoo.evaluation.metrics import DREAM_FDRS, BinaryLabelMetrics, ResampledAUPRC
from ebert_modelzoo.evaluation.report_plots import colour_map, plot_metric_bars, plot_pr_curves, plot_training_curves
from ebert_modelzoo.evaluation.sample_scores import SampleScores

REPORT_SCHEMA_VERSION = 1
METRICS = ("auroc", "auprc") + tuple(f"recall_at_{round(f * 100)}_fdr" for f in DREAM_FDRS)
METRIC_TITLES = {"auroc": "auROC", "auprc": "auPRC", "recall_at_10_fdr": "recall at 10% FDR",
                 "recall_at_50_fdr": "recall at 50% FDR"}
MEAN = "mean"


@dataclass(frozen=True)
class VariantScores:
    """One model variant's scores on the evaluation samples.

    ``scores``, ``labels`` and ``weights`` have the same shape (..., K) and are flattened to [n, K]
    (every variant must list the samples in the same order for paired comparisons). ``labels`` may
    hold -1 (ambiguous); with ``weights`` None, the weight is 1 where the label is 0/1, else 0.
    """

    name: str
    label_names: tuple[str, ...]
    scores: np.ndarray
    labels: np.ndarray
    weights: Optional[np.ndarray] = None
    description: str = ""
    seed: Optional[int] = None
    """The training seed of this run: several runs of one variant share ``name``, one per seed,
    and the report shows their mean and spread. None for a single (or deterministic) scorer."""
    windows: int = field(init=False)
    """Windows per cell type: the second-to-last axis of ``scores`` as given ([C, W, K]; [n, K] is
    one cell type). The flattened rows are cell type after cell type, windows in genomic order."""

    def __post_init__(self) -> None:
        num = len(self.label_names)
        scores = np.asarray(self.scores, dtype=np.float64)
        labels = np.asarray(self.labels, dtype=np.float64)
        weights = (labels >= 0).astype(np.float64) if self.weights is None else np.asarray(self.weights, np.float64)
        if not scores.shape == labels.shape == weights.shape or scores.shape[-1:] != (num,):
            raise ValueError(
                f"variant {self.name!r}: scores {scores.shape}, labels {labels.shape}, weights {weights.shape} "
                f"must be equal shapes ending in {num} labels"
            )
        if not np.all(np.isfinite(scores[weights > 0])):
            raise ValueError(f"variant {self.name!r}: scores must be finite wherever the weight is > 0")
        object.__setattr__(self, "label_names", tuple(self.label_names))
        object.__setattr__(self, "windows", scores.shape[-2] if scores.ndim >= 2 else 1)
        object.__setattr__(self, "scores", scores.reshape(-1, num))
        object.__setattr__(self, "labels", np.where(weights > 0, labels, 0.0).reshape(-1, num))
        object.__setattr__(self, "weights", weights.reshape(-1, num))

    def window_range(self, start: int, stop: int) -> "VariantScores":
        """The same runs' scores on windows [start, stop) of every cell type."""
        shape = (-1, self.windows, len(self.label_names))
        part = [a.reshape(shape)[:, start:stop] for a in (self.scores, self.labels, self.weights)]
        return VariantScores(self.name, self.label_names, *part, description=self.description, seed=self.seed)

    @classmethod
    def of(cls, name: str, samples: SampleScores, description: str = "", seed: Optional[int] = None) -> "VariantScores":
        """The variant ``name`` scored by ``samples`` (a model's predictions or a baseline's scores)."""
        return cls(name, samples.label_names, samples.scores, samples.labels, samples.weights, description, seed)


@dataclass(frozen=True)
class TrainingCurve:
    """Training loss of one run: the (step, loss) records of its log, optionally with the
    validation loss at the steps it was evaluated."""

    run: str
    steps: np.ndarray
    losses: np.ndarray
    stage: str = "fine-tuning"
    """Runs of one stage share a plot panel (e.g. "pre-training", "fine-tuning")."""
    loss_name: str = "loss"
    """What the loss is (the panel's axis label), e.g. "binary cross-entropy"."""
    validation_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    validation_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seed: Optional[int] = None
    """Training seed (runs of one variant share ``run`` and colour)."""

    @classmethod
    def from_records(cls, run: str, records: Iterable[Mapping[str, Any]], stage: str = "fine-tuning",
                     loss_key: str = "loss") -> "TrainingCurve":
        """From records holding ``step`` and ``loss_key``; records without ``loss_key`` are skipped
        (e.g. eval lines in the same log). Sorted by step.

        Raises:
            ValueError: no record has ``loss_key``, or a step/loss is not a number.
        """
        pairs = []
        for i, record in enumerate(records):
            if loss_key not in record:
                continue
            try:
                pairs.append((float(record["step"]), float(record[loss_key])))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"run {run!r}: record {i} needs numeric 'step' and {loss_key!r}") from None
        if not pairs:
            raise ValueError(f"run {run!r}: no record has {loss_key!r}")
        steps, losses = np.array(sorted(pairs)).T
        return cls(run=run, steps=steps, losses=losses, stage=stage)


def read_training_curve(path: str | Path, run: str, stage: str = "fine-tuning", loss_key: str = "loss") -> TrainingCurve:
    """A run's curve from a JSONL log: one JSON object per line with ``step`` and ``loss_key``.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: a line is not a JSON object (naming file and line), or no line has the loss.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training log not found")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: invalid JSON: {err.msg}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        records.append(record)
    try:
        return TrainingCurve.from_records(run, records, stage, loss_key)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


@dataclass(frozen=True)
class EvaluationSet:
    """What the variants were evaluated on."""

    cell_types: tuple[str, ...]
    """Held-out cell type(s)."""
    regions: tuple[str, ...]
    """Held-out region(s), e.g. "chrX:49000000-49500000"."""
    note: str = ""
    """One sentence more (e.g. how the data were made)."""
    block_windows: int = 1
    """Consecutive windows the bootstrap resamples together (every cell type's rows of them at
    once). Overlapping windows share DNA, and neighbouring bound windows usually share one site, so
    resampling single windows treats dependent samples as independent and draws intervals that
    are too narrow; blocks a few times the span of that dependence keep it inside a block."""

    region_windows: tuple[int, ...] = ()
    """Windows per cell type in each of ``regions``, in order, when the rows hold the regions one
    after the other: the report then repeats every comparison on each region alone. Empty: no
    breakdown."""

    def __post_init__(self) -> None:
        if self.block_windows < 1:
            raise ValueError(f"EvaluationSet: block_windows must be >= 1, got {self.block_windows}")
        if self.region_windows and (len(self.region_windows) != len(self.regions) or min(self.region_windows) < 1):
            raise ValueError(f"EvaluationSet: region_windows must give each of the {len(self.regions)} regions "
                             f">= 1 windows, got {list(self.region_windows)}")

    def describe(self) -> str:
        text = (f"held-out cell type{'s' if len(self.cell_types) != 1 else ''} {', '.join(self.cell_types)}; "
                f"held-out region{'s' if len(self.regions) != 1 else ''} {', '.join(self.regions)}")
        return f"{text}. {self.note}".strip() if self.note else f"{text}."


@dataclass(frozen=True)
class Comparison:
    """A question one pair of variants answers: does ``variant`` beat ``reference`` on mean auPRC?"""

    question: str
    variant: str
    reference: str


@dataclass(frozen=True)
class ComparisonResult:
    """A paired comparison on mean auPRC with a bootstrap interval over evaluation samples."""

    comparison: Comparison
    variant_value: float
    reference_value: float
    interval: tuple[float, float]
    """2.5% and 97.5% quantiles of the mean-auPRC difference over bootstrap resamples."""
    per_label: dict[str, float]
    """auPRC difference per TF."""
    answer: str
    """"yes" (interval above 0), "no" (interval below 0: it hurts) or "unclear" (interval covers 0)."""
    text: str

    @property
    def difference(self) -> float:
        return self.variant_value - self.reference_value


@dataclass(frozen=True)
class RegionResults:
    """The comparisons repeated on one held-out region alone."""

    region: str
    windows: int
    labels: dict[str, dict[str, int]]
    """{TF: {"bound", "labelled"}} in the region."""
    results: tuple[ComparisonResult, ...]


@dataclass(frozen=True)
class ReportFiles:
    """Paths of a written report."""

    folder: Path
    results_json: Path
    results_md: Path
    plots: tuple[Path, ...]


def variant_metrics(variant: VariantScores) -> dict[str, dict[str, float]]:
    """{TF or "mean": {metric: value}} with the ENCODE-DREAM metrics (METRICS) of ``variant``."""
    accumulator = BinaryLabelMetrics(variant.label_names)
    accumulator.update(variant.scores, variant.labels, variant.weights)
    flat = accumulator.compute()
    return {
        label: {metric: flat[f"{metric}/{label}"] for metric in METRICS}
        for label in (*variant.label_names, MEAN)
    }


def _resampled_mean_auprc(variant: VariantScores) -> Callable[[np.ndarray], float]:
    """The mean over TFs of ``variant``'s auPRC for a resample given as per-row draw counts."""
    per_label = [ResampledAUPRC(variant.scores[:, k], variant.labels[:, k], variant.weights[:, k])
                 for k in range(len(variant.label_names))]

    def mean(counts: np.ndarray) -> float:
        finite = [v for v in (ap(counts) for ap in per_label) if not math.isnan(v)]
        return float(np.mean(finite)) if finite else math.nan
    return mean


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _check_same_samples(a: VariantScores, b: VariantScores) -> None:
    if (a.label_names != b.label_names or a.labels.shape != b.labels.shape or a.windows != b.windows
            or not np.array_equal(a.labels, b.labels) or not np.array_equal(a.weights > 0, b.weights > 0)):
        raise ValueError(
            f"variants {a.name!r} and {b.name!r} were not scored on the same samples in the "
            "same order (labels differ); score every variant on the evaluation split in one fixed order"
        )


def group_runs(variants: Sequence[VariantScores]) -> dict[str, list[VariantScores]]:
    """Runs by variant name, in first-seen order (one run per seed).

    Raises:
        ValueError: two runs of one variant have the same seed.
    """
    groups: dict[str, list[VariantScores]] = {}
    for v in variants:
        runs = groups.setdefault(v.name, [])
        if any(r.seed == v.seed for r in runs):
            raise ValueError(f"write_report: variant {v.name!r} has two runs with seed {v.seed}")
        runs.append(v)
    return groups


def seed_metrics(runs: Sequence[VariantScores]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """(metrics averaged over the runs, per-seed spread of the mean auPRC): {TF | "mean": {metric:
    value}} and {"seeds", "auprc" (one per run), "sd", "min", "max"}."""
    per_run = [variant_metrics(r) for r in runs]
    labels = list(per_run[0])
    with np.errstate(invalid="ignore"):
        mean = {label: {m: float(np.nanmean([t[label][m] for t in per_run]))
                        if any(not math.isnan(t[label][m]) for t in per_run) else math.nan
                        for m in METRICS} for label in labels}
    values = [t[MEAN]["auprc"] for t in per_run]
    spread = {"seeds": [r.seed for r in runs], "auprc": values,
              "auprc_per_label": {label: [t[label]["auprc"] for t in per_run] for label in labels},
              "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
              "min": float(np.min(values)), "max": float(np.max(values))}
    return mean, spread


def _runs_text(runs: Sequence[VariantScores], spread: Mapping[str, Any]) -> str:
    if len(runs) == 1:
        return "one run"
    return f"{len(runs)} seeds, sd {spread['sd']:.3f}"


def resample_rows(rng: np.random.Generator, samples: int, windows: int, block_windows: int) -> np.ndarray:
    """One block-bootstrap draw of row indices: ceil(windows / block_windows) blocks of
    ``block_windows`` consecutive windows drawn with replacement, each with its windows' rows in
    every cell type, for ``samples`` rows laid out cell type after cell type with ``windows`` each."""
    starts = np.arange(0, windows, block_windows)
    drawn = (starts[rng.integers(0, starts.size, starts.size)][:, None] + np.arange(block_windows)).ravel()
    drawn = drawn[drawn < windows]
    return (np.arange(samples // windows)[:, None] * windows + drawn).ravel()


def resample_seeds(rng: np.random.Generator, runs: int) -> np.ndarray:
    """One draw of run indices for a variant trained ``runs`` times: runs - 1 of them with
    replacement (one for a single run). The mean of n - 1 draws varies as s^2 / n, the sampling
    variance of the mean over n seeds; the mean of n draws would vary as s^2 (n - 1) / n^2, a
    third too little with three seeds."""
    return rng.integers(0, runs, max(1, runs - 1))


def compare(variant: Sequence[VariantScores], reference: Sequence[VariantScores], comparison: Comparison,
            table: Mapping[str, Any], spreads: Mapping[str, Any], bootstrap_samples: int = 500,
            seed: int = 0, block_windows: int = 1) -> ComparisonResult:
    """Mean auPRC of ``variant``'s runs vs ``reference``'s (averaged over each one's seeds), with a
    bootstrap over both what was evaluated and how training went.

    Each resample draws blocks of ``block_windows`` consecutive evaluation windows with
    replacement, as many as there are (the same blocks for both sides: paired; a block carries
    its windows' rows in every cell type), and, independently for each side, its seeds with
    replacement (``resample_seeds``), and takes the difference of the two sides' seed-averaged
    mean auPRC. So the 95% interval covers which stretches of genome happen to be in the
    evaluation set and seed-to-seed training noise; "yes" only when it lies above 0. A side with
    one run contributes no training noise (deterministic scorers).

    Raises:
        ValueError: the two variants do not hold the same samples (labels or weights differ).
    """
    for run in (*variant, *reference):
        _check_same_samples(variant[0], run)
    rng = np.random.default_rng(seed)
    samples, windows = variant[0].scores.shape[0], variant[0].windows
    scorers = [[_resampled_mean_auprc(run) for run in runs] for runs in (variant, reference)]
    differences = []
    for _ in range(bootstrap_samples):
        counts = np.bincount(resample_rows(rng, samples, windows, block_windows), minlength=samples)
        sides = []
        for side in scorers:
            drawn = resample_seeds(rng, len(side))
            values = {i: side[i](counts) for i in set(drawn.tolist())}
            sides.append(float(np.mean([values[i] for i in drawn])))
        differences.append(sides[0] - sides[1])
    finite = np.array([d for d in differences if not math.isnan(d)])
    low, high = (float(q) for q in np.quantile(finite, [0.025, 0.975])) if finite.size else (math.nan, math.nan)
    name, ref = variant[0].name, reference[0].name
    ours, theirs = table[name][MEAN]["auprc"], table[ref][MEAN]["auprc"]
    per_label = {label: table[name][label]["auprc"] - table[ref][label]["auprc"] for label in variant[0].label_names}
    wins = sum(1 for d in per_label.values() if d > 0)
    answer = "yes" if low > 0 else "no" if high < 0 else "unclear"
    lead = {"yes": "Yes", "no": "No, it is worse", "unclear": "Not shown"}[answer]
    text = (
        f"{comparison.question} {lead}: mean auPRC {_fmt(ours)} for {name} ({_runs_text(variant, spreads[name])}) "
        f"vs {_fmt(theirs)} for {ref} ({_runs_text(reference, spreads[ref])}): difference {ours - theirs:+.3f}, "
        f"95% interval [{low:+.3f}, {high:+.3f}] over seeds and evaluation windows; higher on {wins} of "
        f"{len(per_label)} TFs."
    )
    if answer == "unclear":
        text += " The interval includes 0: the gain is within seed and window noise."
    return ComparisonResult(comparison, ours, theirs, (low, high), per_label, answer, text)


def compare_by_region(groups: Mapping[str, Sequence[VariantScores]], comparisons: Sequence[Comparison],
                      evaluation: EvaluationSet, bootstrap_samples: int = 500, seed: int = 0) -> list[RegionResults]:
    """Every comparison on each region of ``evaluation`` alone, with the same bootstrap (empty
    without ``region_windows`` for two or more regions): whether a verdict holds in each held-out
    region or rests on one of them.

    Raises:
        ValueError: ``region_windows`` does not add up to the variants' windows per cell type.
    """
    if len(evaluation.region_windows) < 2 or not comparisons:
        return []
    first = next(iter(groups.values()))[0]
    if sum(evaluation.region_windows) != first.windows:
        raise ValueError(f"EvaluationSet: region_windows {list(evaluation.region_windows)} add up to "
                         f"{sum(evaluation.region_windows)} windows, the variants hold {first.windows} per cell type")
    bounds = np.cumsum((0, *evaluation.region_windows)).tolist()
    out = []
    for region, start, stop in zip(evaluation.regions, bounds[:-1], bounds[1:]):
        part = {name: [run.window_range(start, stop) for run in runs] for name, runs in groups.items()}
        table, spreads = {}, {}
        for name, runs in part.items():
            table[name], spreads[name] = seed_metrics(runs)
        results = tuple(compare(part[c.variant], part[c.reference], c, table, spreads, bootstrap_samples, seed,
                                evaluation.block_windows) for c in comparisons)
        out.append(RegionResults(region, stop - start, _label_counts(part[first.name][0]), results))
    return out


def _json_safe(value: Any) -> Any:
    """NaN -> null (strict JSON), numpy scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


def _label_counts(variant: VariantScores) -> dict[str, dict[str, int]]:
    counts = {}
    for k, name in enumerate(variant.label_names):
        known = variant.weights[:, k] > 0
        counts[name] = {"bound": int(np.sum(variant.labels[known, k] == 1)), "labelled": int(known.sum())}
    return counts


def _markdown(evaluation: EvaluationSet, groups: Mapping[str, Sequence[VariantScores]], table: Mapping[str, Any],
              spreads: Mapping[str, Any], counts: Mapping[str, Mapping[str, int]], results: Sequence[ComparisonResult],
              by_region: Sequence[RegionResults], verdict: str, plots: Sequence[str]) -> str:
    first = next(iter(groups.values()))[0]
    names = first.label_names
    lines = ["# TF-binding evaluation", "", f"Evaluated on {evaluation.describe()}", ""]
    lines += ["| TF | bound | labelled | auPRC of a random guess |", "|---|---:|---:|---:|"]
    for name in names:
        c = counts[name]
        lines.append(f"| {name} | {c['bound']} | {c['labelled']} | "
                     f"{_fmt(c['bound'] / c['labelled'] if c['labelled'] else math.nan)} |")
    lines += ["", "## Variants", ""]
    for variant, runs in groups.items():
        seeds = "" if len(runs) == 1 else f" ({len(runs)} training seeds: {', '.join(str(r.seed) for r in runs)})"
        lines.append(f"- **{variant}**" + (f": {runs[0].description}" if runs[0].description else "") + seeds)
    header = " | ".join(METRIC_TITLES[m] for m in METRICS)
    lines += ["", "## Metrics", "",
              "Variants trained with several seeds: the mean over seeds; auPRC also as mean +- sd over seeds "
              "[lowest, highest seed].", "",
              f"| TF | variant | {header} | auPRC over seeds |", "|---|---|" + "---:|" * len(METRICS) + "---|"]
    for label in (*names, MEAN):
        for variant, runs in groups.items():
            row = " | ".join(_fmt(table[variant][label][m]) for m in METRICS)
            per_seed = [v for v in spreads[variant]["auprc_per_label"][label] if not math.isnan(v)]
            seeds = (f"{np.mean(per_seed):.3f} +- {np.std(per_seed, ddof=1):.3f} [{min(per_seed):.3f}, {max(per_seed):.3f}]"
                     if len(per_seed) > 1 else "one run")
            tf = f"**{MEAN}** (over TFs)" if label == MEAN else label
            lines.append(f"| {tf} | {variant} | {row} | {seeds} |")
    lines += ["", "## Verdict", "", verdict, ""]
    if results:
        lines += ["| question | variant | reference | mean auPRC difference | 95% interval (seeds and windows) | answer |",
                  "|---|---|---|---:|---|---|"]
        for r in results:
            lines.append(f"| {r.comparison.question} | {r.comparison.variant} | {r.comparison.reference} | "
                         f"{r.difference:+.3f} | [{r.interval[0]:+.3f}, {r.interval[1]:+.3f}] | {r.answer} |")
        lines.append("")
    lines += _region_markdown(by_region, results, names)
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def _region_markdown(by_region: Sequence[RegionResults], results: Sequence[ComparisonResult],
                     names: Sequence[str]) -> list[str]:
    if not by_region:
        return []

    def cell(r: ComparisonResult) -> str:
        return f"{r.difference:+.3f} [{r.interval[0]:+.3f}, {r.interval[1]:+.3f}] {r.answer}"
    lines = ["## By region", "",
             "Each comparison on each held-out region alone (the same bootstrap), and on all of them (the verdict "
             "above): mean auPRC difference, 95% interval, answer.", "",
             "| question | " + " | ".join(f"{p.region} ({p.windows} windows)" for p in by_region) + " | all |",
             "|---|" + "---|" * (len(by_region) + 1),
             f"| bound windows ({' / '.join(names)}) | "
             + " | ".join(" / ".join(str(p.labels[n]["bound"]) for n in names) for p in by_region) + " | |"]
    for i, r in enumerate(results):
        lines.append(f"| {r.comparison.question} | " + " | ".join(cell(p.results[i]) for p in by_region)
                     + f" | {cell(r)} |")
    return lines + [""]


def write_report(
    out_dir: str | Path,
    variants: Sequence[VariantScores],
    evaluation: EvaluationSet,
    curves: Sequence[TrainingCurve] = (),
    comparisons: Sequence[Comparison] = (),
    extra: Optional[Mapping[str, Any]] = None,
    bootstrap_samples: int = 500,
    seed: int = 0,
) -> ReportFiles:
    """Write the report folder ``out_dir`` (replacing an earlier one only once the new one is complete).

    results.json::

        {"schema_version": 1,
         "evaluation": {"cell_types": [...], "regions": [...], "note": str, "samples": n,
                        "block_windows": int, "labels": {TF: {"bound": int, "labelled": int}}},
         "variants": [{"name", "description",
                       "metrics": {TF | "mean": {"auroc", "auprc", "recall_at_10_fdr", "recall_at_50_fdr"}},
                       "seeds": {"seeds": [seed | null per run], "auprc": [mean auPRC per run],
                                 "auprc_per_label": {TF | "mean": [per run]}, "sd", "min", "max"}}],
         "comparisons": [{"question", "variant", "reference", "metric": "auprc/mean", "variant_value",
                          "reference_value", "difference", "interval": [low, high],
                          "per_label_difference": {TF: float}, "answer": "yes" | "no" | "unclear", "text"}],
         "by_region": [{"region", "windows", "labels", "comparisons": [{"question", "variant_value",
                        "reference_value", "difference", "interval", "answer"}]}]   (with region_windows),
         "verdict": str, "plots": [file names], "extra": {...caller's details}}

    ``variants`` may hold several runs of one variant (same name, one ``seed`` each): "metrics"
    is then their mean over seeds, "seeds" their spread. A metric that is undefined (no
    positives) is null.

    Raises:
        ValueError: no variant, variants with different labels, two runs of one variant with one seed, a comparison
            naming an unknown variant, or comparing variants scored on different samples.
    """
    if not variants:
        raise ValueError("write_report: no variant to report")
    if any(v.label_names != variants[0].label_names for v in variants):
        raise ValueError("write_report: every variant must score the same labels in the same order")
    groups = group_runs(variants)
    names = list(groups)
    for c in comparisons:
        for name in (c.variant, c.reference):
            if name not in groups:
                raise ValueError(f"comparison {c.question!r}: no variant named {name!r} (variants: {', '.join(names)})")
    table, spreads = {}, {}
    for name, runs in groups.items():
        table[name], spreads[name] = seed_metrics(runs)
    results = [compare(groups[c.variant], groups[c.reference], c, table, spreads, bootstrap_samples, seed,
                       evaluation.block_windows) for c in comparisons]
    unit = (f"in blocks of {evaluation.block_windows} consecutive windows (neighbouring windows share DNA and "
            "binding sites)" if evaluation.block_windows > 1 else "one by one")
    caveat = (f"Intervals resample the evaluation windows {unit} and, for variants trained with several seeds, "
              "the seeds; a variant with one run adds no training noise.")
    verdict = " ".join([r.text for r in results] + ([caveat] if results else [])) or "No comparison was requested."
    counts = _label_counts(variants[0])
    by_region = compare_by_region(groups, comparisons, evaluation, bootstrap_samples, seed)

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        plots = ["pr_curves.png", "auprc.png"]
        colours = colour_map(names + [c.run for c in curves])
        chance = {label: c["bound"] / c["labelled"] if c["labelled"] else math.nan for label, c in counts.items()}
        plot_pr_curves(groups, table, variants[0].label_names,
                       f"Precision-recall on {evaluation.describe().split('. ')[0].rstrip('.')}", staging / plots[0], colours)
        plot_metric_bars(table, spreads, names, variants[0].label_names, chance, "auprc", "auPRC", staging / plots[1], colours)
        if curves:
            plots.append("training_curves.png")
            plot_training_curves(curves, staging / plots[-1], colours)
        results_json = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "evaluation": {"cell_types": list(evaluation.cell_types), "regions": list(evaluation.regions),
                           "note": evaluation.note, "samples": int(variants[0].scores.shape[0]),
                           "block_windows": evaluation.block_windows, "labels": counts},
            "variants": [{"name": name, "description": runs[0].description, "metrics": table[name],
                          "seeds": spreads[name]} for name, runs in groups.items()],
            "comparisons": [
                {"question": r.comparison.question, "variant": r.comparison.variant,
                 "reference": r.comparison.reference, "metric": "auprc/mean", "variant_value": r.variant_value,
                 "reference_value": r.reference_value, "difference": r.difference, "interval": list(r.interval),
                 "per_label_difference": r.per_label, "answer": r.answer, "text": r.text}
                for r in results
            ],
            "by_region": [
                {"region": p.region, "windows": p.windows, "labels": p.labels,
                 "comparisons": [{"question": r.comparison.question, "variant_value": r.variant_value,
                                  "reference_value": r.reference_value, "difference": r.difference,
                                  "interval": list(r.interval), "answer": r.answer} for r in p.results]}
                for p in by_region
            ],
            "verdict": verdict,
            "plots": plots,
            "extra": dict(extra or {}),
        }
        atomic_write_text(staging / "results.md",
                          _markdown(evaluation, groups, table, spreads, counts, results, by_region, verdict, plots))
        atomic_write_text(staging / "results.json", json.dumps(_json_safe(results_json), indent=1, allow_nan=False) + "\n")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            staging.rename(out_dir)
            shutil.rmtree(old)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ReportFiles(out_dir, out_dir / "results.json", out_dir / "results.md",
                       tuple(out_dir / p for p in plots))
