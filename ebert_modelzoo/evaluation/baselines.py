"""The motif-scan + accessibility baseline (after the ENCODE-DREAM winners' core features).

Per sample (window w, cell type c) and TF k, three features:
    motif          best two-strand log-odds score of TF k's motif in window w's DNA   [W, K]
    accessibility  mean of the accessibility track (DNase/ATAC, chosen by name) over the window's
                   central bins, as stored (transformed; the track normalisation the processors
                   apply is linear, so the baseline's own standardisation makes it moot)  [C, W]
    motif_x_accessibility  the product of the two after centring and scaling them with their
                   training mean and standard deviation (the AND of "has the motif" and "is open")
One L2-regularised logistic regression per TF (Newton's method, standardised features) is fitted on
the training split, with weight 0 for ambiguous labels (-1), and scores the evaluation split.

Missing accessibility (a cell type without the track, or NaN over all central bins): the sample
gets weight 0 when fitting, and the training mean (a neutral value) when scoring. Windows without
an N-free motif site get the motif's lowest possible score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ebert_modelzoo.contract import schema
from ebert_modelzoo.data.motifs import MotifSet, codes_from_tokens, max_score, min_score
from ebert_modelzoo.data.shards import ShardReader, check_shard_shapes, load_split
from ebert_modelzoo.errors import DatasetError
from ebert_modelzoo.evaluation.sample_scores import SampleScores
from ebert_modelzoo.tokenizer import DNATokenizer

FEATURES = ("motif", "accessibility", "motif_x_accessibility")


@dataclass(frozen=True)
class BaselineConfig:
    """Settings of the motif + accessibility baseline."""

    accessibility_track: str = "DNase"
    """Name of the signal track (data_params tracks.names) that measures accessibility."""
    central_bins: Optional[int] = None
    """Average the track over this many central bins of the window; None = all bins."""
    motif_region_bp: Optional[int] = None
    """Scan only this many central bases of the window (e.g. the labelled centre plus flanks);
    None = the whole window."""
    features: tuple[str, ...] = FEATURES
    """Which of FEATURES the regression uses (ablations drop some)."""
    l2: float = 1e-3
    """L2 penalty on the standardised coefficients (not the intercept), per unit of training weight."""
    max_iter: int = 100
    tol: float = 1e-10
    chunk_windows: int = 512
    """Windows scanned at once (bounds the scan's memory to chunk x window length floats)."""

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise ValueError(f"baseline features must be a non-empty subset of {FEATURES}, got {self.features}")
        for key in ("central_bins", "motif_region_bp"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"{key} must be >= 1 or None, got {value}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")


@dataclass(frozen=True)
class SplitFeatures:
    """The baseline's raw features and the labels of one split folder."""

    label_names: tuple[str, ...]
    cell_types: tuple[str, ...]
    motif: np.ndarray
    """[W, K] float32 best motif score per window and TF."""
    accessibility: np.ndarray
    """[C, W] float32 mean accessibility over the central bins; NaN = missing."""
    labels: np.ndarray
    """[C, W, K] int8: 1 bound, 0 unbound, -1 ambiguous."""


def _central(total: int, width: Optional[int], path: Path, what: str, unit: str) -> slice:
    """The central ``width`` of ``total`` positions (all of them for None)."""
    if width is None:
        return slice(0, total)
    if width > total:
        raise DatasetError(f"{path}: {what} = {width} but windows have {total} {unit}")
    start = (total - width) // 2
    return slice(start, start + width)


def read_split_features(
    data_dir: str | Path, motifs: MotifSet, config: BaselineConfig, cell_types: Optional[Sequence[str]] = None
) -> SplitFeatures:
    """Scan every window of a fine-tuning split for each label's motif and read accessibility.

    ``cell_types`` picks cell types by name, in that order (None = all of the split), like the
    data processors' ``cell_types`` key.

    Raises:
        FileNotFoundError / DatasetError: the split folder is incomplete or not a fine-tuning split,
            it has no track named ``config.accessibility_track``, or no cell type of that name.
        MotifError: a label has no motif in ``motifs``.
    """
    data_dir = Path(data_dir)
    params, _ = load_split(data_dir)
    if not params.label_names:
        raise DatasetError(f"{params.path}: no labels (the baseline needs a fine-tuning split)")
    names = tuple(params.cell_types if cell_types is None else cell_types)
    unknown = [c for c in names if c not in params.cell_types]
    if unknown or not names:
        raise DatasetError(
            f"{params.path}: cell types {unknown or '[]'} not in the split (it has: {', '.join(params.cell_types)})"
        )
    if config.accessibility_track not in params.track_names:
        raise DatasetError(
            f"{params.path}: no signal track {config.accessibility_track!r} for accessibility "
            f"(tracks: {', '.join(params.track_names) or 'none'})"
        )
    pwms = [motifs.log_odds(name) for name in params.label_names]
    tokenizer = DNATokenizer.from_vocab_file(data_dir / schema.VOCAB_FILE)  # load_split checked it
    track = params.track_names.index(config.accessibility_track)
    bins = _central(params.num_bins, config.central_bins, params.path, "central_bins", "bins")
    window_bp = params.tokens_per_window * tokenizer.k
    region = _central(window_bp, config.motif_region_bp, params.path, "motif_region_bp", "bp")
    fields = (schema.DATASET_TOKENS, schema.DATASET_SIGNAL, schema.DATASET_LABELS)
    check_shard_shapes(params, fields)
    dna = ShardReader(params, (schema.DATASET_TOKENS,))
    epigenome = ShardReader(params, (schema.DATASET_SIGNAL, schema.DATASET_LABELS))
    motif_parts, access_parts, label_parts = [], [], []
    try:
        for shard, windows in enumerate(params.shard_windows):
            for start in range(0, windows, config.chunk_windows):
                stop = min(windows, start + config.chunk_windows)
                tokens = dna.read(shard, start, stop, 0)[schema.DATASET_TOKENS]
                codes = codes_from_tokens(tokens, tokenizer)[:, region]
                scores = np.stack([np.maximum(max_score(codes, pwm), min_score(pwm)) for pwm in pwms], axis=-1)
                motif_parts.append(scores.astype(np.float32))
            access, labels = [], []
            for cell in (params.cell_types.index(c) for c in names):
                arrays = epigenome.read(shard, 0, windows, cell)
                central = arrays[schema.DATASET_SIGNAL][:, bins, track].astype(np.float32)  # [w, n]
                present = ~np.isnan(central)
                total = np.where(present, central, 0.0).sum(axis=1)
                count = present.sum(axis=1)
                access.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
                labels.append(arrays[schema.DATASET_LABELS])
            access_parts.append(np.stack(access))
            label_parts.append(np.stack(labels))
    finally:
        dna.close()
        epigenome.close()
    return SplitFeatures(
        label_names=params.label_names,
        cell_types=names,
        motif=np.concatenate(motif_parts),
        accessibility=np.concatenate(access_parts, axis=1).astype(np.float32),
        labels=np.concatenate(label_parts, axis=1).astype(np.int8),
    )


# --------------------------------------------------------------------------- logistic regression


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class LogisticModel:
    """A fitted logistic regression on standardised features."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    """[F] coefficients of the standardised features."""
    intercept: float
    iterations: int

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """[n] logits of raw features ``x`` [n, F]."""
        return ((x - self.mean) / self.std) @ self.coef + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n] probabilities of class 1."""
        return _sigmoid(self.decision_function(x))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, *, l2: float = 1e-3, max_iter: int = 100, tol: float = 1e-10
) -> LogisticModel:
    """Weighted, L2-penalised logistic regression by Newton's method with step halving.

    Minimises ``sum(w * logloss) / sum(w) + l2 / 2 * |coef|^2`` over standardised columns of ``x``
    [n, F] (mean/std over weight > 0 rows; constant columns get std 1), labels ``y`` [n] in {0, 1}
    where weight > 0. Deterministic: no randomness anywhere.

    Raises:
        ValueError: shapes disagree, no positive weight, or a label outside {0, 1} with weight > 0.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or w.shape != y.shape:
        raise ValueError(f"fit_logistic: x {x.shape}, y {y.shape}, weights {w.shape} do not line up")
    keep = w > 0
    if not keep.any():
        raise ValueError("fit_logistic: no sample has weight > 0")
    x, y, w = x[keep], y[keep], w[keep] / w[keep].sum()
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("fit_logistic: labels must be 0 or 1 wherever the weight is > 0")
    mean = np.average(x, axis=0, weights=w)
    std = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    std = np.where(std > 0, std, 1.0)
    design = np.hstack([(x - mean) / std, np.ones((x.shape[0], 1))])  # [n, F + 1], intercept last
    penalty = np.r_[np.full(x.shape[1], l2), 0.0]

    def objective(beta: np.ndarray) -> float:
        z = design @ beta
        return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(penalty * beta**2))

    beta = np.zeros(design.shape[1])
    beta[-1] = math.log(max(np.sum(w * y), 1e-12) / max(np.sum(w * (1 - y)), 1e-12))
    loss = objective(beta)
    iteration = 0
    for iteration in range(1, max_iter + 1):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (w * (p - y)) + penalty * beta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-12 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-8:
            candidate = beta - scale * step
            new_loss = objective(candidate)
            if new_loss <= loss:
                break
            scale *= 0.5
        else:
            break
        beta, improvement, loss = candidate, loss - new_loss, new_loss
        if improvement < tol or np.max(np.abs(scale * step)) < 1e-9:
            break
    return LogisticModel(mean=mean, std=std, coef=beta[:-1], intercept=float(beta[-1]), iterations=iteration)


# --------------------------------------------------------------------------------- the baseline


def design_matrix(
    features: SplitFeatures, k: int, motif_centre: np.ndarray, access_centre: np.ndarray, names: tuple[str, ...]
) -> np.ndarray:
    """[C * W, F] features ``names`` of TF ``k`` (missing accessibility -> the training mean).

    ``motif_centre`` [K, 2] and ``access_centre`` [2] are the training (mean, std) that centre and
    scale the motif score and accessibility before their product is taken.
    """
    n_cells = len(features.cell_types)
    z_motif = (features.motif[:, k] - motif_centre[k, 0]) / motif_centre[k, 1]
    z_motif = np.broadcast_to(z_motif, (n_cells, z_motif.shape[0]))
    z_access = np.nan_to_num((features.accessibility - access_centre[0]) / access_centre[1], nan=0.0)
    columns = {"motif": z_motif, "accessibility": z_access, "motif_x_accessibility": z_motif * z_access}
    return np.stack([columns[name].reshape(-1) for name in names], axis=-1)


@dataclass(frozen=True)
class MotifAccessibilityBaseline:
    """Per-TF logistic regressions on FEATURES, fitted by ``fit_baseline``."""

    config: BaselineConfig
    label_names: tuple[str, ...]
    motif_centre: np.ndarray
    """[K, 2] training mean and std of the motif score per TF."""
    access_centre: np.ndarray
    """[2] training mean and std of accessibility."""
    models: tuple[LogisticModel, ...]
    dropped_missing_accessibility: int = 0
    """Training samples (with a label) left out because their accessibility was missing."""
    coefficients: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per TF, the standardised coefficient of each feature (for reports)."""

    def score(self, features: SplitFeatures) -> SampleScores:
        """Probabilities [C, W, K] for every sample of ``features``.

        Raises:
            DatasetError: the split's labels differ from those the baseline was fitted on.
        """
        if features.label_names != self.label_names:
            raise DatasetError(
                f"baseline fitted for labels {list(self.label_names)}, split has {list(features.label_names)}"
            )
        shape = features.labels.shape
        scores = np.stack(
            [
                self.models[k].predict_proba(
                    design_matrix(features, k, self.motif_centre, self.access_centre, self.config.features)
                ).reshape(shape[:2])
                for k in range(shape[2])
            ],
            axis=-1,
        )
        weights = (features.labels >= 0).astype(np.float32)
        return SampleScores(
            label_names=features.label_names,
            cell_types=features.cell_types,
            scores=scores.astype(np.float32),
            labels=np.clip(features.labels, 0, 1).astype(np.int8),
            weights=weights,
        )


def _mean_std(values: np.ndarray, name: str) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise DatasetError(f"baseline: no training sample has a {name} value")
    std = float(finite.std())
    return float(finite.mean()), std if std > 0 else 1.0


def fit_baseline(train: SplitFeatures, config: BaselineConfig) -> MotifAccessibilityBaseline:
    """Fit one logistic regression per TF on a training split's features.

    Raises:
        DatasetError: no training sample has accessibility, or a TF has no labelled sample.
    """
    uses_access = any(name != "motif" for name in config.features)
    motif_centre = np.array([_mean_std(train.motif[:, k], "motif") for k in range(train.motif.shape[1])])
    access_centre = (
        np.array(_mean_std(train.accessibility, f"{config.accessibility_track} accessibility"))
        if uses_access else np.array([0.0, 1.0])
    )
    has_access = ~np.isnan(train.accessibility) if uses_access else np.ones(train.accessibility.shape, bool)
    models, coefficients, dropped = [], {}, 0
    for k, name in enumerate(train.label_names):
        labels = train.labels[:, :, k]
        weights = ((labels >= 0) & has_access).astype(np.float64)
        dropped += int(np.sum((labels >= 0) & ~has_access))
        if not weights.any():
            raise DatasetError(f"baseline: TF {name} has no labelled training sample with accessibility")
        model = fit_logistic(
            design_matrix(train, k, motif_centre, access_centre, config.features), np.clip(labels, 0, 1).reshape(-1), weights.reshape(-1),
            l2=config.l2, max_iter=config.max_iter, tol=config.tol,
        )
        models.append(model)
        coefficients[name] = {f: float(c) for f, c in zip(config.features, model.coef)}
    return MotifAccessibilityBaseline(
        config=config,
        label_names=train.label_names,
        motif_centre=motif_centre,
        access_centre=access_centre,
        models=tuple(models),
        dropped_missing_accessibility=dropped,
        coefficients=coefficients,
    )


def run_baseline(
    train_dir: str | Path,
    eval_dir: str | Path,
    motifs: MotifSet,
    config: BaselineConfig = BaselineConfig(),
    train_cell_types: Optional[Sequence[str]] = None,
    eval_cell_types: Optional[Sequence[str]] = None,
) -> tuple[MotifAccessibilityBaseline, SampleScores]:
    """Fit on split folder ``train_dir`` (its ``train_cell_types``) and score ``eval_dir`` (its
    ``eval_cell_types``); None = every cell type of the split.

    The scores are [C, W, K] in the eval split's window order and the given cell-type order.
    """
    baseline = fit_baseline(read_split_features(train_dir, motifs, config, train_cell_types), config)
    return baseline, baseline.score(read_split_features(eval_dir, motifs, config, eval_cell_types))

