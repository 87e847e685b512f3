"""The motif + accessibility baseline on real shard folders where binding = motif AND accessible."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from ebert_modelzoo.contract import schema
from ebert_modelzoo.data import motifs
from ebert_modelzoo.errors import DatasetError, MotifError
from ebert_modelzoo.evaluation.baselines import FEATURES, BaselineConfig, fit_baseline, fit_logistic, read_split_features, run_baseline
from ebert_modelzoo.evaluation.metrics import auprc, auroc

from tests.data.split_builder import FIRST_KMER, N_ID, build_split

# two 8-bp motifs (counts, A C G T rows): consensus TGACTCAT and GGGCGCAA
PFMS = {
    "TFA": np.array([[2, 2, 90, 2, 2, 2, 90, 2], [2, 2, 2, 90, 2, 90, 2, 2],
                     [2, 90, 2, 2, 2, 2, 2, 2], [90, 2, 2, 2, 90, 2, 2, 90]], float),
    "TFB": np.array([[2, 2, 2, 2, 2, 2, 90, 90], [2, 2, 2, 90, 2, 90, 2, 2],
                     [90, 90, 90, 2, 90, 2, 2, 2], [2, 2, 2, 2, 2, 2, 2, 2]], float),
}
TOKENS_PER_BIN, NUM_BINS = 10, 6
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def write_motif_file(path: Path) -> Path:
    entries = [{"tf": tf, "matrix_id": f"T_{tf}", "counts": {b: m[i].tolist() for i, b in enumerate("ACGT")}}
               for tf, m in PFMS.items()]
    path.write_text(json.dumps({"background": [0.25] * 4, "pseudocount": 0.8, "motifs": entries}))
    return path


def motif_and_open_split(root: Path, cells: tuple[str, ...], windows: tuple[int, ...], seed: int,
                         no_dnase: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """A fine-tuning split whose label is 'has a motif site' AND 'DNase open', with 2% label noise."""
    split = build_split(root, shard_windows=windows, cell_types=cells, k=1, tokens_per_bin=TOKENS_PER_BIN,
                        num_bins=NUM_BINS, num_states=0, tracks=("H3K27ac", "DNase"), labels=tuple(PFMS), seed=seed)
    rng = np.random.default_rng(seed + 100)
    total, length = split.tokens.shape
    tokens = rng.integers(FIRST_KMER, FIRST_KMER + 4, (total, length)).astype(np.uint16)
    tokens[rng.random(tokens.shape) < 0.01] = N_ID
    has_site = rng.random((total, len(PFMS))) < 0.35
    for w, k in zip(*np.nonzero(has_site)):
        site = "".join("ACGT"[i] for i in list(PFMS.values())[k].argmax(axis=0))
        if rng.random() < 0.5:
            site = site.translate(COMPLEMENT)[::-1]
        at = int(rng.integers(0, length - len(site) + 1))
        tokens[w, at : at + len(site)] = [FIRST_KMER + "ACGT".index(b) for b in site]
    is_open = rng.random((len(cells), total)) < 0.4
    signal = rng.normal(size=(len(cells), total, NUM_BINS, 2)).astype(np.float32)
    signal[..., 1] = np.where(is_open[..., None], 1.2, -0.6) + 0.6 * rng.normal(size=(len(cells), total, NUM_BINS))
    signal[rng.random(signal.shape) < 0.05] = np.nan
    for cell in no_dnase:
        signal[cells.index(cell), :, :, 1] = np.nan
    labels = (has_site[None] & is_open[..., None]).astype(np.int8)
    flip = rng.random(labels.shape) < 0.02
    labels[flip] = 1 - labels[flip]
    labels[rng.random(labels.shape) < 0.05] = -1
    offset = 0
    for index, count in enumerate(windows):
        with h5py.File(root / schema.SHARD_PATTERN.format(index=index), "r+") as f:
            f[schema.DATASET_TOKENS][...] = tokens[offset : offset + count]
            f[schema.DATASET_SIGNAL][...] = signal[:, offset : offset + count].astype(np.float16)
            f[schema.DATASET_LABELS][...] = labels[:, offset : offset + count]
        offset += count
    return {"tokens": tokens, "labels": labels}


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("baseline")
    motif_and_open_split(root / "train", ("c1", "c2", "c3"), (180, 120), seed=1, no_dnase=("c3",))
    motif_and_open_split(root / "test", ("held_out",), (250,), seed=2)
    return {"train": root / "train", "test": root / "test", "motifs": write_motif_file(root / "motifs.json")}


def evaluate(splits: dict[str, Path], config: BaselineConfig) -> tuple[list[float], list[float], np.ndarray]:
    _, scores = run_baseline(splits["train"], splits["test"], motifs.load_motifs(splits["motifs"]), config)
    s, y, w = (a.reshape(-1, 2) for a in (scores.scores, scores.labels, scores.weights))
    return [auroc(s[:, k], y[:, k], w[:, k]) for k in range(2)], [auprc(s[:, k], y[:, k], w[:, k]) for k in range(2)], s


def test_features_read_through_the_shards(splits: dict[str, Path]) -> None:
    motif_set = motifs.load_motifs(splits["motifs"])
    features = read_split_features(splits["train"], motif_set, BaselineConfig(chunk_windows=64))
    assert features.motif.shape == (300, 2) and features.accessibility.shape == (3, 300)
    assert features.labels.shape == (3, 300, 2) and features.label_names == ("TFA", "TFB")
    with h5py.File(splits["train"] / "shard-00001.h5") as f:
        tokens, dnase = f["tokens"][7], f["signal"][1, 7, :, 1].astype(np.float32)
    codes = np.where(tokens == N_ID, 4, tokens.astype(np.int64) - FIRST_KMER)
    pwm = motif_set.log_odds("TFB")
    assert features.motif[187, 1] == pytest.approx(max(motifs.max_score(codes, pwm), motifs.min_score(pwm)), rel=1e-6)
    assert features.accessibility[1, 187] == pytest.approx(np.nanmean(dnase), rel=1e-3)
    assert np.all(np.isnan(features.accessibility[2]))  # c3 has no DNase
    central = read_split_features(splits["train"], motif_set, BaselineConfig(central_bins=2))
    assert central.accessibility[1, 187] == pytest.approx(np.nanmean(dnase[2:4]), rel=1e-3, nan_ok=True)


def test_baseline_beats_chance_and_needs_both_features(splits: dict[str, Path]) -> None:
    roc, pr, _ = evaluate(splits, BaselineConfig())
    with h5py.File(splits["test"] / "shard-00000.h5") as f:
        labels = f["labels"][0]
    chance = [np.mean(labels[labels[:, k] >= 0, k]) for k in range(2)]
    assert min(roc) > 0.85
    assert all(pr[k] > 2 * chance[k] for k in range(2)), (pr, chance)
    roc_motif, pr_motif, _ = evaluate(splits, BaselineConfig(features=("motif",)))
    roc_access, pr_access, _ = evaluate(splits, BaselineConfig(features=("accessibility",)))
    for k in range(2):
        assert pr[k] > pr_motif[k] + 0.1, (pr, pr_motif)
        assert pr[k] > pr_access[k] + 0.1, (pr, pr_access)
        assert roc[k] > roc_motif[k] and roc[k] > roc_access[k]


def test_deterministic_and_missing_accessibility_dropped(splits: dict[str, Path]) -> None:
    _, _, first = evaluate(splits, BaselineConfig())
    _, _, second = evaluate(splits, BaselineConfig())
    np.testing.assert_array_equal(first, second)
    motif_set = motifs.load_motifs(splits["motifs"])
    baseline = fit_baseline(read_split_features(splits["train"], motif_set, BaselineConfig()), BaselineConfig())
    with h5py.File(splits["train"] / "shard-00000.h5") as a, h5py.File(splits["train"] / "shard-00001.h5") as b:
        c3_labelled = int(np.sum(a["labels"][2] >= 0) + np.sum(b["labels"][2] >= 0))
    assert baseline.dropped_missing_accessibility == c3_labelled
    for name in ("TFA", "TFB"):
        assert baseline.coefficients[name]["motif"] > 0 and baseline.coefficients[name]["accessibility"] > 0
    # a cell type without the track is still scored (with the neutral training mean)
    scores = baseline.score(read_split_features(splits["train"], motif_set, BaselineConfig()))
    assert np.all(np.isfinite(scores.scores)) and np.all(scores.weights[scores.labels > 0] == 1)


def test_errors_name_the_problem(splits: dict[str, Path], tmp_path: Path) -> None:
    motif_set = motifs.load_motifs(splits["motifs"])
    with pytest.raises(DatasetError, match=r"data_params.json: no signal track 'ATAC'.*H3K27ac, DNase"):
        read_split_features(splits["train"], motif_set, BaselineConfig(accessibility_track="ATAC"))
    with pytest.raises(DatasetError, match="central_bins = 7 but windows have 6 bins"):
        read_split_features(splits["train"], motif_set, BaselineConfig(central_bins=7))
    only_a = tmp_path / "a.json"
    payload = json.loads(splits["motifs"].read_text())
    payload["motifs"] = payload["motifs"][:1]
    only_a.write_text(json.dumps(payload))
    with pytest.raises(MotifError, match="no motif for TF 'TFB'"):
        read_split_features(splits["train"], motifs.load_motifs(only_a), BaselineConfig())
    with pytest.raises(ValueError, match="subset of"):
        BaselineConfig(features=("motif", "gc"))


def objective_gradient(model, x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> np.ndarray:
    z = (x - model.mean) / model.std
    p = 1 / (1 + np.exp(-(z @ model.coef + model.intercept)))
    w = w / w.sum()
    return np.r_[z.T @ (w * (p - y)) + l2 * model.coef, np.sum(w * (p - y))]


def test_fit_logistic_is_the_penalised_optimum() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    y = (rng.random(400) < 1 / (1 + np.exp(-(x[:, 0] + 0.2 * x[:, 1] - 1)))).astype(float)
    w = rng.random(400) * (rng.random(400) > 0.1)
    model = fit_logistic(x, y, w, l2=1e-2)
    assert np.max(np.abs(objective_gradient(model, x, y, w, 1e-2))) < 1e-8
    # weight-0 rows do not count, whatever their label; an integer weight equals repeated rows
    flipped = y.copy()
    flipped[w == 0] = 1 - flipped[w == 0]
    np.testing.assert_allclose(fit_logistic(x, flipped, w, l2=1e-2).coef, model.coef, atol=1e-10)
    counts = rng.integers(0, 3, 400)
    repeated = fit_logistic(np.repeat(x, counts, axis=0), np.repeat(y, counts), np.ones(counts.sum()), l2=1e-2)
    np.testing.assert_allclose(fit_logistic(x, y, counts.astype(float), l2=1e-2).coef, repeated.coef, atol=1e-6)
    # separable data stay finite thanks to the penalty
    separable = fit_logistic(x[:, :1], (x[:, 0] > 0).astype(float), np.ones(400), l2=1e-3)
    assert np.all(np.isfinite(separable.coef)) and separable.coef[0] > 0
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        fit_logistic(x, y * 2, np.ones(400))
    with pytest.raises(ValueError, match="no sample has weight > 0"):
        fit_logistic(x, y, np.zeros(400))


def absolute_paths(node: object, base: Path) -> object:
    """The config with every relative path ("../...") resolved against ``base``."""
    if isinstance(node, dict):
        return {k: absolute_paths(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [absolute_paths(v, base) for v in node]
    return str((base / node).resolve()) if isinstance(node, str) and node.startswith("../") else node


@pytest.mark.slow
def test_demo_data_through_the_preprocessing_cli(tmp_path: Path) -> None:
    """The shipped demo (real chrX DNA and JASPAR motifs): held-out cell type, held-out stretch."""
    root = Path(__file__).resolve().parents[2]
    configs = root / "data_processing" / "configs"
    config = absolute_paths(yaml.safe_load((configs / "demo_finetuning.yaml").read_text()), configs)
    config["output"]["output_dir"] = str(tmp_path / "out")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run([sys.executable, str(root / "data_processing" / "create_finetuning_data.py"), "--config",
                          str(tmp_path / "config.yaml"), "--no_progress"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)
    assert run.returncode == 0, run.stderr
    motif_set = motifs.load_motifs(root / "data_processing" / "demo_data" / "motifs.json")
    train_cells = ["sim_blood1", "sim_blood2", "sim_blood3", "sim_tissue2", "sim_tissue3"]
    results = {}
    for name, features in (("full", FEATURES), ("motif", ("motif",))):
        config = BaselineConfig(central_bins=1, motif_region_bp=400, features=features)
        _, scores = run_baseline(tmp_path / "out" / "train", tmp_path / "out" / "test", motif_set, config,
                                 train_cells, ["sim_tissue1"])
        s, y, w = (a.reshape(-1, 4) for a in (scores.scores, scores.labels, scores.weights))
        results[name] = [auprc(s[:, k], y[:, k], w[:, k]) for k in range(4)]
        chance = [np.average(y[:, k], weights=w[:, k]) for k in range(4)]
    assert all(pr > 10 * c for pr, c in zip(results["full"], chance)), (results, chance)
    assert np.mean(results["full"]) > np.mean(results["motif"]) + 0.1, results
