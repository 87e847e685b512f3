"""PNG figures of the report: training curves, precision-recall curves per TF, metric bars.

Uses matplotlib's object API (``Figure`` rendered by the Agg canvas), never pyplot, so importing
this module changes no global backend state and needs no display.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.evaluation.metrics import auprc, precision_recall_curve

DPI = 120


def _save(figure: Figure, path: Path) -> None:
    """Render with Agg and write the PNG atomically (no half-written PNG)."""
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        figure.savefig(handle, format="png", dpi=DPI)


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` points (shorter at the start)."""
    sums = np.cumsum(np.r_[0.0, values])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


def colour_map(names: Sequence[str]) -> dict[str, str]:
    """A matplotlib colour per name, in order, so one name has one colour across figures (the
    default cycle for up to 10 names, tab20 for up to 20, so no two names share one)."""
    unique = list(dict.fromkeys(names))
    if len(unique) <= 10:
        return {name: f"C{i}" for i, name in enumerate(unique)}
    cmap = colormaps["tab20"]
    return {name: to_hex(cmap(i % 20)) for i, name in enumerate(unique)}


def plot_training_curves(curves: Sequence, path: Path, colours: Mapping[str, str]) -> None:
    """Loss vs step, one panel per stage (in first-seen order), one line per run; the panel's axis
    names the loss. Validation losses (where a run has them) are drawn as dashed lines with
    markers in the run's colour. Runs of one variant (several seeds) share a colour and one legend
    entry. Noisy curves (more than 40 points) are drawn faint with a trailing running mean (over
    1/20 of the points) on top.

    ``curves`` are report.TrainingCurve objects; ``colours`` maps each run name to its colour.
    """
    stages = list(dict.fromkeys(curve.stage for curve in curves))
    figure = Figure(figsize=(6.4 * len(stages), 4.8), layout="constrained")
    axes = figure.subplots(1, len(stages), squeeze=False)[0]
    for ax, stage in zip(axes, stages):
        labelled: set[str] = set()
        for curve in (c for c in curves if c.stage == stage):
            colour = colours[curve.run]
            seeds = sum(1 for c in curves if c.stage == stage and c.run == curve.run)
            label = None
            if curve.run not in labelled:
                label = curve.run + (f" ({seeds} seeds)" if seeds > 1 else "")
                labelled.add(curve.run)
            if len(curve.steps) > 40:
                ax.plot(curve.steps, curve.losses, color=colour, alpha=0.15, linewidth=0.6)
                smooth = _running_mean(curve.losses, max(2, len(curve.losses) // 20))
                ax.plot(curve.steps, smooth, color=colour, linewidth=1.4, label=label)
            else:
                ax.plot(curve.steps, curve.losses, color=colour, linewidth=1.4, marker="o", markersize=3, label=label)
            if len(curve.validation_steps):
                ax.plot(curve.validation_steps, curve.validation_losses, color=colour, linestyle="--", marker="s",
                        markersize=4, linewidth=1.0)
        names = sorted({c.loss_name for c in curves if c.stage == stage})
        has_validation = any(len(c.validation_steps) for c in curves if c.stage == stage)
        ax.set_title(f"{stage}: training loss" + (" (solid) and validation loss (dashed, squares)" if has_validation else ""),
                     fontsize="medium")
        ax.set_xlabel("step")
        ax.set_ylabel(" / ".join(names))
        if stage == "fine-tuning":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    _save(figure, path)


def _median_run(runs: Sequence, k: int, values: Sequence[float]) -> int:
    """Index of the run whose auPRC for label k is the median of the runs' (the lower middle one)."""
    order = np.argsort(np.nan_to_num(np.asarray(values, dtype=float), nan=-1.0), kind="stable")
    return int(order[(len(runs) - 1) // 2])


def plot_pr_curves(groups: Mapping[str, Sequence], table: Mapping, label_names: Sequence[str], title: str,
                   path: Path, colours: Mapping[str, str]) -> None:
    """Precision vs recall, one panel per TF, one step line per variant (for a variant with several
    seeds, the run with the median auPRC on that TF), the chance level dashed. Each panel's legend
    gives every variant's auPRC on that TF (mean over seeds). Lines are drawn in variant order,
    each thinner than the one before, so a line drawn over an identical one leaves it visible.

    ``groups`` maps variant names to their runs (report.VariantScores on the same labels).
    """
    columns = min(len(label_names), 2)
    rows = math.ceil(len(label_names) / columns)
    figure = Figure(figsize=(6.0 * columns, 4.6 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    count = len(groups)
    for k, (ax, name) in enumerate(zip(axes, label_names)):
        first = next(iter(groups.values()))[0]
        known = first.weights[:, k] > 0
        bound = int(np.sum(first.labels[known, k] == 1))
        chance = float(np.average(first.labels[known, k], weights=first.weights[known, k])) if known.any() else 0.0
        for i, (variant, runs) in enumerate(groups.items()):
            values = [auprc(r.scores[:, k], r.labels[:, k], r.weights[:, k]) for r in runs]
            run = runs[_median_run(runs, k, values)]
            recall, precision = precision_recall_curve(run.scores[:, k], run.labels[:, k], run.weights[:, k])
            if recall.size:
                value = table[variant][name]["auprc"]
                label = f"{variant}: {value:.3f}" + (f" (mean of {len(runs)} seeds; curve: seed {run.seed}, the median)"
                                                     if len(runs) > 1 else "")
                ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="pre", color=colours[variant],
                        linewidth=2.6 - 1.8 * i / max(1, count - 1), label=label)
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1.0, label=f"chance: {chance:.3f}")
        ax.set_title(f"{name} ({bound} bound / {int(known.sum())} labelled); legend: auPRC", fontsize="medium")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="xx-small", loc="upper right")
    for ax in axes[len(label_names):]:
        ax.set_visible(False)
    figure.suptitle(title + "\n(later variants drawn thinner on top: an identical curve below stays visible)",
                    fontsize="medium")
    _save(figure, path)


def plot_metric_bars(table: Mapping, spreads: Mapping, variant_names: Sequence[str], label_names: Sequence[str],
                     chance: Mapping[str, float], metric: str, metric_title: str, path: Path,
                     colours: Mapping[str, str]) -> None:
    """Grouped bars of one metric: groups = TFs and their mean, one bar per variant (its mean over
    seeds), error bars from the lowest to the highest seed where a variant has several, and each
    group's chance level (fraction bound; for "mean" the mean over TFs) as a black line.

    ``table[variant][label][metric]`` holds the values (``label`` includes "mean");
    ``spreads[variant]["auprc_per_label"][label]`` the per-seed values of auPRC.
    """
    groups = list(label_names) + ["mean"]
    width = 0.8 / len(variant_names)
    figure = Figure(figsize=(max(7.0, 1.5 * len(groups) * max(1, len(variant_names) / 3)), 4.8), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(groups))
    for i, variant in enumerate(variant_names):
        values = np.nan_to_num([table[variant][group][metric] for group in groups])
        per_seed = spreads[variant]["auprc_per_label"] if metric == "auprc" else None
        errors = None
        if per_seed is not None and len(spreads[variant]["auprc"]) > 1:
            low = [values[g] - np.nanmin(per_seed[group]) for g, group in enumerate(groups)]
            high = [np.nanmax(per_seed[group]) - values[g] for g, group in enumerate(groups)]
            errors = np.maximum(0.0, np.array([low, high]))
        ax.bar(x + (i - (len(variant_names) - 1) / 2) * width, values, width, label=variant,
               color=colours[variant], yerr=errors, capsize=2, error_kw={"linewidth": 0.8})
    levels = [chance[g] for g in label_names]
    levels.append(float(np.nanmean(levels)) if levels else math.nan)
    for g, level in enumerate(levels):
        ax.hlines(level, g - 0.45, g + 0.45, colors="black", linewidth=1.5,
                  label="chance (fraction bound)" if g == 0 else None)
    ax.set_xticks(x, groups)
    ax.set_ylabel(metric_title)
    ax.set_ylim(0, 1.0)
    ax.set_title(f"{metric_title} per TF and variant (bars: mean over seeds; whiskers: lowest to highest seed)",
                 fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(figure, path)
