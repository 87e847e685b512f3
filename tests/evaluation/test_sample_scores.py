"""Per-sample scores files: a baseline's and a checkpoint's share one .npz layout."""
from __future__ import annotations

import numpy as np

from ebert_modelzoo.evaluation.predict import Predictions
from ebert_modelzoo.evaluation.report import VariantScores
from ebert_modelzoo.evaluation.sample_scores import SampleScores

TFS = ("CTCF", "REST")


def samples() -> SampleScores:
    rng = np.random.default_rng(0)
    labels = (rng.random((2, 5, 2)) < 0.3).astype(np.float32)
    weights = (rng.random((2, 5, 2)) < 0.9).astype(np.float32)
    return SampleScores(TFS, ("E003", "E017"), rng.normal(size=(2, 5, 2)).astype(np.float32), labels * weights, weights)


def test_save_load_round_trip_and_no_temporary_left(tmp_path):
    original = samples()
    path = original.save(tmp_path / "scores.npz")
    loaded = SampleScores.load(path)
    assert loaded.label_names == TFS and loaded.cell_types == ("E003", "E017")
    for key in ("scores", "labels", "weights"):
        assert np.array_equal(getattr(loaded, key), getattr(original, key))
    assert [p.name for p in tmp_path.iterdir()] == ["scores.npz"]


def test_predictions_file_adds_the_step_and_reads_as_sample_scores(tmp_path):
    base = samples()
    found = Predictions(base.label_names, base.cell_types, base.scores, base.labels, base.weights, 120, {"loss": 0.5})
    path = found.save(tmp_path / "predictions.npz")
    with np.load(path) as data:
        assert sorted(data.files) == ["cell_types", "label_names", "labels", "scores", "step", "weights"]
    again = Predictions.load(path)
    assert again.step == 120 and again.metrics == {} and np.array_equal(again.scores, found.scores)
    assert np.array_equal(SampleScores.load(path).weights, found.weights)


def test_variant_of_sample_scores_flattens_cells_and_windows():
    base = samples()
    variant = VariantScores.of("baseline", base, "motif x DNase")
    assert variant.name == "baseline" and variant.description == "motif x DNase"
    assert variant.scores.shape == (10, 2) and np.array_equal(variant.weights, base.weights.reshape(10, 2))
