"""PNG figures of the report: training curves and precision-recall curves per TF.

Uses matplotlib's object API (``Figure`` rendered by the Agg canvas), never pyplot, so importing
this module changes no global backend state and needs no display.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.metrics import precision_recall_curve

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
    """A matplotlib colour per name, in order, so one name has one colour across figures."""
    return {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(names))}


def plot_training_curves(curves: Sequence, path: Path, colours: Mapping[str, str]) -> None:
    """Loss vs step, one panel per stage (in first-seen order), one line per run.

    ``curves`` are report.TrainingCurve objects; ``colours`` maps each run name to its colour.
    Noisy curves (more than 40 points) are drawn faint with a trailing running mean (over 1/20 of
    the points) on top.
    """
    stages = list(dict.fromkeys(curve.stage for curve in curves))
    figure = Figure(figsize=(6.4 * len(stages), 4.4), layout="constrained")
    axes = figure.subplots(1, len(stages), squeeze=False)[0]
    for ax, stage in zip(axes, stages):
        for curve in (c for c in curves if c.stage == stage):
            colour = colours[curve.run]
            if len(curve.steps) > 40:
                ax.plot(curve.steps, curve.losses, color=colour, alpha=0.25, linewidth=0.8)
                smooth = _running_mean(curve.losses, max(2, len(curve.losses) // 20))
                ax.plot(curve.steps, smooth, color=colour, linewidth=1.8, label=curve.run)
            else:
                ax.plot(curve.steps, curve.losses, color=colour, linewidth=1.8, marker="o", markersize=3,
                        label=curve.run)
        ax.set_title(f"{stage}: training loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _save(figure, path)


def plot_pr_curves(variants: Sequence, label_names: Sequence[str], title: str, path: Path,
                   colours: Mapping[str, str]) -> None:
    """Precision vs recall, one panel per TF, one step line per variant, the chance level dashed.

    ``variants`` are report.VariantScores on the same labels; ``title`` names the evaluation set.
    """
    columns = min(len(label_names), 2)
    rows = math.ceil(len(label_names) / columns)
    figure = Figure(figsize=(5.2 * columns, 4.2 * rows + 0.9), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for k, (ax, name) in enumerate(zip(axes, label_names)):
        first = variants[0]
        known = first.weights[:, k] > 0
        bound = int(np.sum(first.labels[known, k] == 1))
        chance = float(np.average(first.labels[known, k], weights=first.weights[known, k])) if known.any() else 0.0
        for variant in variants:
            recall, precision = precision_recall_curve(variant.scores[:, k], variant.labels[:, k], variant.weights[:, k])
            if recall.size:
                ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="pre", color=colours[variant.name],
                        linewidth=1.6, label=variant.name)
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1.0, label="chance (fraction bound)")
        ax.set_title(f"{name} ({bound} bound / {int(known.sum())} labelled)")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[len(label_names):]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", ncols=min(3, len(names)), fontsize="small")
    figure.suptitle(title)
    _save(figure, path)


def plot_metric_bars(table: Mapping, variant_names: Sequence[str], label_names: Sequence[str], metric: str,
                     metric_title: str, path: Path, colours: Mapping[str, str]) -> None:
    """Grouped bars of one metric: groups = TFs and their mean, one bar per variant.

    ``table[variant][label][metric]`` holds the values (``label`` includes "mean").
    """
    groups = list(label_names) + ["mean"]
    width = 0.8 / len(variant_names)
    figure = Figure(figsize=(max(6.0, 1.3 * len(groups) * max(1, len(variant_names) / 3)), 4.4), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(groups))
    for i, variant in enumerate(variant_names):
        values = [table[variant][group][metric] for group in groups]
        ax.bar(x + (i - (len(variant_names) - 1) / 2) * width, np.nan_to_num(values), width, label=variant,
               color=colours[variant])
    ax.set_xticks(x, groups)
    ax.set_ylabel(metric_title)
    ax.set_ylim(0, 1.0)
    ax.set_title(f"{metric_title} per TF and variant")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(figure, path)
