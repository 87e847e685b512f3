"""Interpretation of a run fed known-motif tracks (the demo's best variant's kind): the tracks are
a scan of the DNA with the planted JASPAR matrix, so every edit of the DNA must reach them, the
gradient methods must say that they do not, and the truth checks must separate what the model was
handed from what it learned. The tiny model is trained by run.py on the fixture of
tests/interpret/fixture.py with ``motif_tracks=True`` (conftest.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ebert_modelzoo.data.motifs import load_motifs
from ebert_modelzoo.interpret.attribution import attribute
from ebert_modelzoo.interpret.report_section import SECTION_TITLE, demo_section
from ebert_modelzoo.errors import InterpretError
from ebert_modelzoo.interpret.scoring import Scorer, samples_for, tokens_from_codes
from ebert_modelzoo.interpret.truth import mutate_cores, strong_threshold
from tests.interpret.fixture import BOUND_CELL, K, MOTIFS, TF, TOKENS_PER_BIN, TrainedRun, run_interpret

pytestmark = pytest.mark.slow


def test_the_model_reads_its_motif_track_and_open_chromatin(trained_tracks: TrainedRun,
                                                            tracks_scorer: Scorer) -> None:
    assert tracks_scorer.dna_derived_inputs == ("motif_scores",)
    cell = tracks_scorer.cell_index(BOUND_CELL)
    logits = tracks_scorer.logits(samples_for(np.arange(tracks_scorer.num_windows), cell))[:, 0]
    truth = trained_tracks.truth
    bound = truth.labels[cell] == 1
    assert np.mean(logits[bound] > 0) > 0.8 and np.mean(logits[~bound] < 0) > 0.8


def test_edited_dna_reaches_the_motif_tracks(trained_tracks: TrainedRun, tracks_scorer: Scorer) -> None:
    """Scoring edited DNA recomputes the tracks from the edit: destroying a site's core drops its bin's track."""
    truth = trained_tracks.truth
    windows = np.flatnonzero(truth.site_start >= 0)[:40]
    codes = tracks_scorer.codes(windows)
    motifs = load_motifs(MOTIFS)
    rows, starts, mutated, _ = mutate_cores(codes, motifs, TF, strong_threshold(MOTIFS, TF), 4)
    assert rows.size == windows.size  # every planted consensus is a strong site
    cell = tracks_scorer.cell_index(BOUND_CELL)
    stored = tracks_scorer.batch(samples_for(windows[rows], cell))["motif_scores"].numpy()[..., 0]
    edited = tracks_scorer.batch(samples_for(windows[rows], cell, codes=mutated))["motif_scores"].numpy()[..., 0]
    expected = tracks_scorer.builder.motif_tracks(tokens_from_codes(mutated, tracks_scorer.tokenizer))[..., 0]
    np.testing.assert_array_equal(edited, expected)
    site_bin = (starts + motifs.get(TF).width // 2) // (TOKENS_PER_BIN * K)
    at_site = np.arange(rows.size), site_bin
    assert (stored[at_site] > 0.9).all() and (edited[at_site] < stored[at_site] - 0.3).all()


def test_attributions_say_which_inputs_they_pass_through(trained_tracks: TrainedRun, tracks_scorer: Scorer,
                                                         tmp_path: Path) -> None:
    window = int(np.flatnonzero(trained_tracks.truth.site_start >= 0)[0])
    start = int(tracks_scorer.window_start[window])
    done = run_interpret(["attribute", "-p", trained_tracks.params, "--region", f"chrTest:{start}-{start + 200}",
                      "--cell_type", BOUND_CELL, "--label", TF, "--methods", "ism,gradient", "--out", tmp_path / "a"],
                     tmp_path)
    assert done.returncode == 0, done.stderr
    data = np.load(tmp_path / "a.npz")
    assert str(data["ism_through"]) == "every input, recomputed from the mutated DNA (tokens, motif_scores)"
    assert str(data["gradient_through"]) == ("the DNA token embeddings only (motif_scores held at the stored DNA's "
                                             "values)")
    assert "gradient attributions pass through the DNA token embeddings only" in done.stdout


def test_gradients_refuse_a_run_that_reads_no_dna_tokens(trained_tracks: TrainedRun, tmp_path: Path) -> None:
    """use_dna: false (every DNA token [N]) with motif tracks: the tracks are the only DNA path.
    ISM still sees the DNA through them; a gradient through the token embeddings would invent one."""
    params = yaml.safe_load(trained_tracks.params.read_text())
    params["trainer"]["fit"]["val_dataloader"]["use_dna"] = False
    path = tmp_path / "no_dna.yaml"
    path.write_text(yaml.safe_dump(params))
    scorer = Scorer(path)
    try:
        truth = trained_tracks.truth
        window = int(np.flatnonzero((truth.site_start >= 0) & truth.open[scorer.cell_index(BOUND_CELL)])[0])
        with pytest.raises(InterpretError, match="use_dna: false"):
            attribute(scorer, [window], BOUND_CELL, TF, "gradient", progress=False)
        ism = attribute(scorer, [window], BOUND_CELL, TF, "ism", progress=False)
        assert ism.through == "every input, recomputed from the mutated DNA (motif_scores)"
        per_base = np.abs(ism.per_base[0])
        site = np.zeros(per_base.size, dtype=bool)
        site[truth.site_start[window]:truth.site_start[window] + load_motifs(MOTIFS).get(TF).width] = True
        # through the tracks alone: the open site's bases move the logit, most other bases not at all
        assert per_base[site].max() > 1 and np.median(per_base[~site]) < 1e-3
    finally:
        scorer.close()


def test_truth_checks_separate_the_handed_motif_from_the_learned_one(trained_tracks: TrainedRun,
                                                                     tmp_path: Path) -> None:
    done = run_interpret(["truth", "-p", trained_tracks.params, "--motifs", MOTIFS, "--tf", TF, "--cell_type", BOUND_CELL,
                      "--ism_windows", 30, "--min_seqlets", 20, "--leiden_runs", 10, "--out", tmp_path / "truth"],
                     tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert summary["motif_inputs"]
    ism, gradient = summary["recoveries"]
    assert (ism["method"], gradient["method"]) == ("ism", "gradient") and ism["windows"] == 30
    assert "motif_scores" in ism["through"] and "token embeddings only" in gradient["through"]
    # ISM passes through the tracks: the planted matrix comes back
    assert ism["recovered"] and ism["planted_tomtom_p"] < 1e-3
    mutation = summary["core_mutation"]
    assert mutation["open"]["n"] > 50 and mutation["closed"]["n"] > 50
    assert mutation["open"]["median"] < -1 and mutation["open_to_closed"] > 10
    what_if = mutation["what_if"]
    assert what_if["n"] > 30 and what_if["median"] < 0.5 * mutation["open"]["median"]
    assert abs(what_if["paired_closed"]["median"]) < 0.1 * abs(what_if["median"])

    report = tmp_path / "report"
    report.mkdir()
    (report / "results.md").write_text("# Report\n")
    text = demo_section(report, [("(a)", trained_tracks.params)], trained_tracks.validation, MOTIFS, BOUND_CELL, [TF],
                        ism_windows=10, ism_span_bp=100, quick=True, progress=False)
    assert text.startswith(SECTION_TITLE) and "(a) is handed the planted matrices" in text
    assert "| NRF1 | (a) | ism (every input" in text and "| NRF1 | (a) | gradient (the DNA token embeddings only" in text
    assert (report / "interpretation.png").stat().st_size > 10_000
