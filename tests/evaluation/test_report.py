"""The report folder: results.json schema, the markdown table, valid PNGs, and an honest verdict."""
from __future__ import annotations

import json
import re
from pathlib import Path

from dataclasses import replace

import numpy as np
import pytest

from ebert_modelzoo.evaluation.metrics import auprc, auroc, precision_recall_curve
from ebert_modelzoo.evaluation.report import (
    Comparison,
    EvaluationSet,
    TrainingCurve,
    VariantScores,
    read_training_curve,
    resample_rows,
    resample_seeds,
    write_report,
)

TFS = ("CTCF", "NRF1", "REST")
EVAL = EvaluationSet(("sim_tissue1",), ("chrX:49000000-49500000",), "Simulated epigenome on real DNA.")
EPIGENOME = Comparison("Does the epigenome help?", "DNA + epigenome", "DNA only")
PRETRAINING = Comparison("Does pre-training help?", "DNA + epigenome", "from scratch")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def labels(seed: int = 0, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = (rng.random((1, n, len(TFS))) < 0.15).astype(np.int8)  # [C, W, K] as the shards hold them
    out[rng.random(out.shape) < 0.05] = -1
    return out


def variant(name: str, y: np.ndarray, separation: float, seed: int) -> VariantScores:
    """Scores that separate bound from unbound by ``separation`` standard deviations."""
    noise = np.random.default_rng(seed).normal(size=y.shape)
    return VariantScores(name, TFS, np.clip(y, 0, 1) * separation + noise, y, description=f"separation {separation}")


def curves() -> list[TrainingCurve]:
    rng = np.random.default_rng(9)
    out = []
    for run, stage in (("DNA + epigenome", "pre-training"), ("DNA + epigenome", "fine-tuning"), ("DNA only", "fine-tuning")):
        steps = np.arange(0, 120, 2)
        out.append(TrainingCurve(run, steps, 1.0 + np.exp(-steps / 30) + 0.05 * rng.normal(size=steps.size), stage))
    return out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def helps(tmp_path_factory: pytest.TempPathFactory):
    """A report where the epigenome clearly helps and pre-training makes no difference."""
    y = labels()
    variants = [variant("DNA + epigenome", y, 2.5, 1), variant("DNA only", y, 0.8, 2),
                variant("from scratch", y, 2.5, 3), variant("motif + accessibility", y, 1.2, 4)]
    out = tmp_path_factory.mktemp("report") / "report"
    files = write_report(out, variants, EVAL, curves(), [EPIGENOME, PRETRAINING], extra={"seed": 0},
                         bootstrap_samples=120)
    return files, variants


def test_results_json_schema_and_values(helps) -> None:
    files, variants = helps
    results = json.loads(files.results_json.read_text())
    assert set(results) == {"schema_version", "evaluation", "variants", "comparisons", "by_region", "verdict",
                            "plots", "extra"}
    assert results["by_region"] == []  # one region: no breakdown
    assert results["evaluation"]["cell_types"] == ["sim_tissue1"]
    assert results["evaluation"]["regions"] == ["chrX:49000000-49500000"]
    assert results["evaluation"]["samples"] == 600 and results["evaluation"]["block_windows"] == 1
    assert [v["name"] for v in results["variants"]] == [v.name for v in variants]
    y = variants[0].labels
    for k, tf in enumerate(TFS):
        known = variants[0].weights[:, k] > 0
        assert results["evaluation"]["labels"][tf] == {"bound": int(y[known, k].sum()), "labelled": int(known.sum())}
    for entry, v in zip(results["variants"], variants):
        assert set(entry["metrics"]) == set(TFS) | {"mean"}
        for k, tf in enumerate(TFS):
            metrics = entry["metrics"][tf]
            assert set(metrics) == {"auroc", "auprc", "recall_at_10_fdr", "recall_at_50_fdr"}
            assert metrics["auroc"] == pytest.approx(auroc(v.scores[:, k], v.labels[:, k], v.weights[:, k]))
            assert metrics["auprc"] == pytest.approx(auprc(v.scores[:, k], v.labels[:, k], v.weights[:, k]))
            assert 0 <= metrics["recall_at_10_fdr"] <= metrics["recall_at_50_fdr"] <= 1
        assert entry["metrics"]["mean"]["auprc"] == pytest.approx(np.mean([entry["metrics"][t]["auprc"] for t in TFS]))
    assert results["plots"] == ["pr_curves.png", "auprc.png", "training_curves.png"]
    assert results["extra"] == {"seed": 0}
    comparison = results["comparisons"][0]
    assert comparison["variant"] == "DNA + epigenome" and comparison["reference"] == "DNA only"
    assert comparison["difference"] == pytest.approx(comparison["variant_value"] - comparison["reference_value"])
    assert comparison["interval"][0] <= comparison["difference"] <= comparison["interval"][1]


def test_markdown_has_a_row_per_tf_and_variant(helps) -> None:
    files, variants = helps
    text = files.results_md.read_text()
    assert "held-out cell type sim_tissue1; held-out region chrX:49000000-49500000" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for tf in (*TFS, "**mean** (over TFs)"):
        for v in variants:
            matching = [r for r in rows if r.startswith(f"| {tf} | {v.name} |")]
            assert len(matching) == 1, (tf, v.name)
            cells = [c.strip() for c in matching[0].strip("|").split("|")]
            assert len(cells) == 7 and all(re.fullmatch(r"\d\.\d{3}", c) for c in cells[2:6])
            assert cells[6] == "one run"
    for plot in ("pr_curves.png", "auprc.png", "training_curves.png"):
        assert f"]({plot})" in text


def test_pngs_are_valid_images_of_sensible_size(helps) -> None:
    files, _ = helps
    assert [p.name for p in files.plots] == ["pr_curves.png", "auprc.png", "training_curves.png"]
    for path in files.plots:
        width, height = png_size(path)
        assert 500 <= width <= 2500 and 300 <= height <= 2500, (path, width, height)
        assert path.stat().st_size > 10_000  # drawn, not blank
    assert not list(files.folder.parent.glob(".report*"))  # no staging folder left behind


def test_verdict_when_epigenome_helps_and_pretraining_does_not(helps) -> None:
    files, _ = helps
    results = json.loads(files.results_json.read_text())
    epigenome, pretraining = results["comparisons"]
    assert epigenome["answer"] == "yes" and epigenome["interval"][0] > 0
    assert pretraining["answer"] == "unclear" and pretraining["interval"][0] < 0 < pretraining["interval"][1]
    verdict = results["verdict"]
    assert verdict.startswith("Does the epigenome help? Yes: mean auPRC ")
    assert (f"{epigenome['variant_value']:.3f} for DNA + epigenome (one run) vs {epigenome['reference_value']:.3f} "
            "for DNA only (one run)") in verdict
    assert "Does pre-training help? Not shown" in verdict and "within seed and window noise" in verdict
    assert verdict in files.results_md.read_text()


def test_verdict_when_epigenome_hurts(tmp_path: Path) -> None:
    y = labels(seed=5)
    variants = [variant("DNA + epigenome", y, 0.6, 1), variant("DNA only", y, 2.5, 2)]
    files = write_report(tmp_path / "r", variants, EVAL, comparisons=[EPIGENOME], bootstrap_samples=100)
    results = json.loads(files.results_json.read_text())
    assert results["comparisons"][0]["answer"] == "no"
    assert results["verdict"].startswith("Does the epigenome help? No, it is worse: mean auPRC ")
    assert "higher on 0 of 3 TFs" in results["verdict"]
    assert results["plots"] == ["pr_curves.png", "auprc.png"]  # no training curves given


def test_deterministic_and_rewrites_in_place(tmp_path: Path) -> None:
    y = labels(seed=2)
    variants = [variant("DNA + epigenome", y, 1.5, 1), variant("DNA only", y, 1.0, 2)]
    first = write_report(tmp_path / "r", variants, EVAL, comparisons=[EPIGENOME], bootstrap_samples=50, seed=3)
    before = first.results_json.read_text()
    (tmp_path / "r" / "stale.txt").write_text("from an earlier run")
    second = write_report(tmp_path / "r", variants, EVAL, comparisons=[EPIGENOME], bootstrap_samples=50, seed=3)
    assert second.results_json.read_text() == before
    assert not (tmp_path / "r" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_undefined_metrics_are_null(tmp_path: Path) -> None:
    y = labels(seed=3)
    y[..., 1] = np.where(y[..., 1] >= 0, 0, -1)  # NRF1: no bound sample in the evaluation set
    files = write_report(tmp_path / "r", [variant("DNA only", y, 1.0, 1)], EVAL)
    metrics = json.loads(files.results_json.read_text())["variants"][0]["metrics"]
    assert metrics["NRF1"]["auprc"] is None and metrics["NRF1"]["auroc"] is None
    assert metrics["mean"]["auprc"] == pytest.approx(np.mean([metrics["CTCF"]["auprc"], metrics["REST"]["auprc"]]))
    assert "| NRF1 | DNA only | n/a | n/a |" in files.results_md.read_text()


def test_bad_inputs(tmp_path: Path) -> None:
    y = labels()
    good = variant("DNA only", y, 1.0, 1)
    with pytest.raises(ValueError, match="no variant named 'DNA \\+ epigenome'"):
        write_report(tmp_path / "r", [good], EVAL, comparisons=[EPIGENOME])
    with pytest.raises(ValueError, match="has two runs with seed None"):
        write_report(tmp_path / "r", [good, good], EVAL)
    shuffled = VariantScores("DNA + epigenome", TFS, good.scores, good.labels[::-1], good.weights[::-1])
    with pytest.raises(ValueError, match="not scored on the same samples in the same order"):
        write_report(tmp_path / "r", [shuffled, good], EVAL, comparisons=[EPIGENOME])
    with pytest.raises(ValueError, match=r"variant 'x': scores \(600, 2\)"):
        VariantScores("x", TFS, np.zeros((600, 2)), np.zeros((600, 2)))
    assert not (tmp_path / "r").exists()


def test_verdicts_by_region_show_which_region_carries_them(tmp_path: Path) -> None:
    """Two regions, the epigenome helping in the first and hurting in the second: the breakdown
    answers each alone exactly as a report on that region alone would, and says so in the markdown."""
    y = labels(n=800)
    runs = {}
    for name, (first, second) in {"DNA + epigenome": (3.0, 0.3), "DNA only": (0.3, 3.0)}.items():
        a, b = variant(name, y[:, :500], first, 1), variant(name, y[:, 500:], second, 2)
        runs[name] = VariantScores(name, TFS, np.concatenate([a.scores, b.scores]).reshape(1, 800, -1), y)
    regions = EvaluationSet(("sim_tissue1",), ("chrX:0-500", "chrX:900-1200"), region_windows=(500, 300))
    files = write_report(tmp_path / "both", list(runs.values()), regions, comparisons=[EPIGENOME], bootstrap_samples=80)
    by_region = json.loads(files.results_json.read_text())["by_region"]
    assert [(p["region"], p["windows"]) for p in by_region] == [("chrX:0-500", 500), ("chrX:900-1200", 300)]
    assert [p["comparisons"][0]["answer"] for p in by_region] == ["yes", "no"]
    for p, (start, stop) in zip(by_region, ((0, 500), (500, 800))):
        alone = write_report(tmp_path / p["region"], [v.window_range(start, stop) for v in runs.values()],
                             EVAL, comparisons=[EPIGENOME], bootstrap_samples=80)
        expected = json.loads(alone.results_json.read_text())
        assert p["labels"] == expected["evaluation"]["labels"]
        for key in ("variant_value", "reference_value", "interval", "answer"):
            assert p["comparisons"][0][key] == expected["comparisons"][0][key]
    text = files.results_md.read_text()
    assert "## By region" in text and "| chrX:0-500 (500 windows) | chrX:900-1200 (300 windows) | all |" in text
    with pytest.raises(ValueError, match="region_windows must give each of the 2 regions"):
        EvaluationSet(("c",), ("a", "b"), region_windows=(500,))
    with pytest.raises(ValueError, match=r"add up to 700 windows, the variants hold 800"):
        write_report(tmp_path / "bad", list(runs.values()), replace(regions, region_windows=(500, 200)),
                     comparisons=[EPIGENOME])


def test_training_curve_from_jsonl(tmp_path: Path) -> None:
    log = tmp_path / "train.jsonl"
    log.write_text('{"step": 20, "loss": 0.5}\n{"step": 10, "loss": 0.9, "lr": 1e-4}\n\n{"step": 20, "eval_auprc": 0.3}\n')
    curve = read_training_curve(log, "run", stage="pre-training")
    np.testing.assert_array_equal(curve.steps, [10, 20])
    np.testing.assert_array_equal(curve.losses, [0.9, 0.5])
    assert curve.stage == "pre-training"
    log.write_text('{"step": 1, "loss": 0.5}\nnot json\n')
    with pytest.raises(ValueError, match="train.jsonl:2: invalid JSON"):
        read_training_curve(log, "run")
    log.write_text('{"step": 1}\n')
    with pytest.raises(ValueError, match="train.jsonl: run 'run': no record has 'loss'"):
        read_training_curve(log, "run")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_training_curve(tmp_path / "missing.jsonl", "run")


def test_precision_recall_curve_sums_to_auprc() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.2).astype(float)
    scores = np.round(y + rng.normal(size=300), 1)  # ties
    w = rng.random(300) * (rng.random(300) > 0.1)
    recall, precision = precision_recall_curve(scores, y, w)
    assert np.all(np.diff(recall) >= 0) and recall[-1] == pytest.approx(1.0)
    assert np.sum(np.diff(np.r_[0.0, recall]) * precision) == pytest.approx(auprc(scores, y, w))
    assert precision_recall_curve(scores, np.zeros(300))[0].size == 0


def seeded(name: str, y: np.ndarray, separations: list[float]) -> list[VariantScores]:
    return [replace(variant(name, y, sep, 10 + i), seed=i + 1) for i, sep in enumerate(separations)]


def test_seeds_are_averaged_and_their_spread_reported(tmp_path: Path) -> None:
    """Runs sharing a name are one variant: metrics are the mean over seeds, the spread is kept,
    the markdown shows mean +- sd [min, max] and the plots draw them."""
    y = labels(seed=6)
    runs = seeded("DNA + epigenome", y, [1.0, 2.0, 3.0])
    files = write_report(tmp_path / "r", runs + [variant("DNA only", y, 1.0, 2)], EVAL, curves(),
                         comparisons=[EPIGENOME], bootstrap_samples=60)
    results = json.loads(files.results_json.read_text())
    entry = results["variants"][0]
    per_seed = [np.mean([auprc(r.scores[:, k], r.labels[:, k], r.weights[:, k]) for k in range(3)]) for r in runs]
    assert entry["seeds"]["seeds"] == [1, 2, 3]
    assert entry["seeds"]["auprc"] == pytest.approx(per_seed)
    assert entry["seeds"]["sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert entry["metrics"]["mean"]["auprc"] == pytest.approx(np.mean(per_seed))
    assert [v["name"] for v in results["variants"]] == ["DNA + epigenome", "DNA only"]
    text = files.results_md.read_text()
    assert f"{np.mean(per_seed):.3f} +- {np.std(per_seed, ddof=1):.3f} [{min(per_seed):.3f}, {max(per_seed):.3f}]" in text
    assert "(3 training seeds: 1, 2, 3)" in text and "3 seeds, sd" in results["verdict"]


def test_seed_noise_widens_the_interval_and_blocks_a_yes(tmp_path: Path) -> None:
    """The same mean gain is "yes" when the seeds agree, but not when they scatter as widely as the
    gain: the interval resamples seeds as well as windows."""
    y = labels(seed=7, n=1500)
    reference = seeded("DNA only", y, [1.4, 1.4, 1.4])
    steady = seeded("DNA + epigenome", y, [1.7, 1.7, 1.7])
    scattered = seeded("DNA + epigenome", y, [0.6, 1.7, 2.8])
    answers, widths = [], []
    for runs in (steady, scattered):
        files = write_report(tmp_path / "r", runs + reference, EVAL, comparisons=[EPIGENOME], bootstrap_samples=200)
        comparison = json.loads(files.results_json.read_text())["comparisons"][0]
        answers.append(comparison["answer"])
        widths.append(comparison["interval"][1] - comparison["interval"][0])
    assert answers == ["yes", "unclear"]
    assert widths[1] > 2 * widths[0]


def test_block_resampling_draws_whole_stretches_in_every_cell_type() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows = resample_rows(rng, samples=2 * 7, windows=7, block_windows=3)
        cell, window = np.divmod(rows, 7)
        first, second = window[cell == 0], window[cell == 1]
        assert np.array_equal(first, second) and len(rows) == 2 * len(first)
        runs = np.split(first, np.flatnonzero(np.diff(first) != 1) + 1)  # maximal runs of consecutive windows
        assert all(run[0] % 3 == 0 for run in runs)  # every block starts at a block boundary: 0, 3 or 6
        assert all(len(run) % 3 == 0 or run[-1] == 6 for run in runs)  # whole blocks; the last (6) has 1 window
    assert np.array_equal(resample_rows(np.random.default_rng(1), 50, 50, 1), np.random.default_rng(1).integers(0, 50, 50))
    with pytest.raises(ValueError, match="block_windows must be >= 1"):
        EvaluationSet(("c",), ("r",), block_windows=0)


def test_resampled_seeds_vary_as_the_mean_over_seeds() -> None:
    """The seed-averaged value of a resample varies as s^2 / n (the sampling variance of a mean
    over n seeds), not the (n - 1) / n^2 s^2 that drawing n of n seeds gives."""
    rng = np.random.default_rng(0)
    values = np.array([0.0, 1.0, 2.0])  # s^2 = 1
    means = [values[resample_seeds(rng, 3)].mean() for _ in range(20_000)]
    assert np.var(means) == pytest.approx(1 / 3, abs=0.015)  # n draws would give 2/9
    assert resample_seeds(rng, 1).tolist() == [0]


def test_blocks_widen_the_interval_when_neighbouring_windows_share_a_site(tmp_path: Path) -> None:
    """Each bound site labels 5 neighbouring windows that share its score noise, as overlapping
    windows share DNA: resampling single windows counts every site 5 times over and draws too
    narrow an interval; blocks of 10 windows resample sites, and the interval widens."""
    rng = np.random.default_rng(3)
    sites, windows = 40, 4000
    y = np.zeros((1, windows, len(TFS)), dtype=np.int8)
    site_noise = {}
    for name, separation in (("DNA + epigenome", 2.0), ("DNA only", 1.5)):
        scores = rng.normal(size=y.shape)
        for start in range(50, windows, windows // sites):
            y[0, start:start + 5] = 1
            scores[0, start:start + 5] = separation + rng.normal(size=len(TFS))  # one draw per site and TF
        site_noise[name] = scores
    variants = [VariantScores(name, TFS, scores, y) for name, scores in site_noise.items()]
    widths = {}
    for block in (1, 10):
        evaluation = replace(EVAL, block_windows=block)
        files = write_report(tmp_path / f"b{block}", variants, evaluation, comparisons=[EPIGENOME], bootstrap_samples=300)
        results = json.loads(files.results_json.read_text())
        low, high = results["comparisons"][0]["interval"]
        widths[block] = high - low
        unit = "in blocks of 10 consecutive windows" if block == 10 else "one by one"
        assert f"Intervals resample the evaluation windows {unit}" in results["verdict"]
    assert widths[10] > 1.6 * widths[1]


def test_training_curves_with_validation_and_seeds_plot(tmp_path: Path) -> None:
    steps = np.arange(10, 610, 10.0)
    runs = [TrainingCurve("EBERT", steps, 0.1 + np.exp(-steps / 200), "fine-tuning", "binary cross-entropy",
                          np.array([300.0, 600.0]), np.array([0.3, 0.2]), seed) for seed in (1, 2, 3)]
    y = labels(seed=8)
    files = write_report(tmp_path / "r", [variant("EBERT", y, 1.0, 1)], EVAL, runs)
    width, height = png_size(files.plots[-1])
    assert files.plots[-1].name == "training_curves.png" and width >= 500 and height >= 300
