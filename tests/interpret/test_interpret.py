"""Attributions, motifs, variant effects and the known-truth checks on a tiny EBERT trained (by
run.py, in tests/interpret/conftest.py) on a split where NRF1 binds exactly where its JASPAR site
is present and the window is open; most tests go through the command a user runs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyBigWig
import pytest
import torch

from ebert_modelzoo.data.motifs import load_motifs
from ebert_modelzoo.interpret.attribution import attribute, ism, one_hot, one_hot_dna
from ebert_modelzoo.interpret.report_section import SECTION_TITLE, demo_section
from ebert_modelzoo.interpret.scoring import Scorer, samples_for
from tests.interpret.fixture import BOUND_CELL, CELLS, MOTIFS, TF, WINDOW, TrainedRun, decode, run_interpret

pytestmark = pytest.mark.slow


def clean_site_windows(trained: TrainedRun) -> np.ndarray:
    """Windows with a site and no other GCGC. The tiny model leans on the site's GCGC core (a whole
    4-mer token when in phase), so a chance GCGC elsewhere in a window draws attribution too."""
    width = load_motifs(MOTIFS).get(TF).width
    found = []
    for window in np.flatnonzero(trained.truth.site_start >= 0):
        site = int(trained.truth.site_start[window])
        text = decode(np.delete(trained.truth.codes[window], np.arange(site, site + width)))
        if "GCGC" not in text and "CGCG" not in text:
            found.append(window)
    return np.array(found)


def test_the_fixture_model_learned_motif_and_open_chromatin(trained: TrainedRun, scorer: Scorer) -> None:
    cell = scorer.cell_index(BOUND_CELL)
    logits = scorer.logits(samples_for(np.arange(scorer.num_windows), cell))[:, 0]
    truth = trained.truth
    bound = truth.labels[cell] == 1
    site_closed = (truth.site_start >= 0) & ~truth.open[cell]
    open_no_site = (truth.site_start < 0) & truth.open[cell]
    # bound windows score above every kind of unbound one, on average by a wide margin
    assert np.median(logits[bound]) > np.median(logits[site_closed]) + 3
    assert np.median(logits[bound]) > np.median(logits[open_no_site]) + 3
    assert np.mean(logits[bound] > 0) > 0.8 and np.mean(logits[~bound] < 0) > 0.8


def test_one_hot_input_reproduces_token_logits_and_ig_is_complete(scorer: Scorer) -> None:
    windows, cell = np.arange(6), scorer.cell_index(BOUND_CELL)
    samples = samples_for(windows, cell)
    direct = scorer.logits(samples)
    with one_hot_dna(scorer) as state, torch.no_grad():
        batch = scorer.batch(samples)
        state["x"] = torch.from_numpy(one_hot(scorer.codes(windows)))
        soft = scorer.forward(batch).numpy()
        state["x"] = torch.full((windows.size, scorer.sequence_length, 4), 0.25)
        uniform = scorer.forward(batch).numpy()
    np.testing.assert_allclose(soft, direct, atol=1e-5)
    ig = attribute(scorer, windows, BOUND_CELL, TF, "integrated_gradients", progress=False)
    # completeness up to the 32-step Riemann sum
    np.testing.assert_allclose(ig.per_base.sum(axis=1), direct[:, 0] - uniform[:, 0], atol=0.05 + 0.03 * np.abs(direct[:, 0]).max())


def test_ism_equals_scoring_each_mutant_alone(scorer: Scorer) -> None:
    cell = scorer.cell_index(BOUND_CELL)
    delta = ism(scorer, [3], cell, 0, positions=np.arange(40, 46), progress=False)[0]
    codes = scorer.codes(np.array([3]))[0]
    reference = scorer.logits(samples_for([3], cell))[0, 0]
    for pos in range(40, 46):
        for base in range(4):
            mutant = codes.copy()
            mutant[pos] = base
            alone = scorer.logits(samples_for([3], cell, codes=mutant[None]))[0, 0]
            assert delta[pos, base] == pytest.approx(alone - reference, abs=1e-4)
    assert np.isnan(delta[:40]).all() and np.isnan(delta[46:]).all()


def test_attribute_command_writes_npz_bigwigs_and_logo_that_point_at_the_site(trained: TrainedRun,
                                                                              scorer: Scorer, tmp_path: Path) -> None:
    cell = scorer.cell_index(BOUND_CELL)
    width = load_motifs(MOTIFS).get(TF).width
    clean = clean_site_windows(trained)
    window = int(clean[trained.truth.open[cell, clean]][0])
    site = int(trained.truth.site_start[window])
    start = int(scorer.window_start[window])
    region = f"chrTest:{start}-{start + WINDOW}"
    done = run_interpret(["attribute", "-p", trained.params, "--region", region, "--cell_type", BOUND_CELL,
                      "--label", TF, "--out", tmp_path / "site"], tmp_path)
    assert done.returncode == 0, done.stderr
    data = np.load(tmp_path / "site.npz")
    assert list(data["methods"]) == ["ism", "gradient", "integrated_gradients"]
    assert data["starts"].tolist() == [start] and data["codes"].shape == (1, WINDOW)
    for method in data["methods"]:
        contributions = data[f"{method}_contributions"][0]
        assert contributions.shape == (WINDOW, 4)
        assert np.count_nonzero(contributions, axis=1).max() <= 1  # only the window's own base
        per_base = contributions.sum(axis=1)
        top = np.argsort(-per_base)[:4]
        assert ((top >= site) & (top < site + width)).all(), (method, top, site)
        with pyBigWig.open(str(tmp_path / f"site.{method}.bw")) as track:
            values = np.array(track.values("chrTest", start, start + WINDOW))
        np.testing.assert_allclose(values, per_base, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "site.logo.png").stat().st_size > 10_000


def test_motifs_command_recovers_the_planted_jaspar_motif(trained: TrainedRun, tmp_path: Path) -> None:
    done = run_interpret(["motifs", "-p", trained.params, "--cell_type", BOUND_CELL, "--label", TF, "--motifs", MOTIFS,
                      "--min_seqlets", 20, "--leiden_runs", 10, "--out", tmp_path / "motifs"], tmp_path)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "motifs" / "motifs.tsv").open(), delimiter="\t"))
    best = [r for r in rows if r["rank"] == "1"]
    assert best, rows
    assert (best[0]["match_id"], best[0]["match_name"]) == ("MA0506.1", TF)
    assert float(best[0]["tomtom_p"]) < 0.01
    assert (tmp_path / "motifs" / f"{best[0]['pattern']}.png").is_file()


def write_vcf(path: Path, records: list[tuple[str, int, str, str, str]]) -> Path:
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chrTest>", "##contig=<ID=Test>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t." for c, p, i, r, a in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def core_variant(trained: TrainedRun, scorer: Scorer, window: int) -> tuple[str, int, str, str, str]:
    """A substitution at the most informative column of the planted site in ``window``."""
    motifs = load_motifs(MOTIFS)
    counts = motifs.get(TF).counts
    site = int(trained.truth.site_start[window])
    codes = trained.truth.codes[window]
    # the column where the site's base is most matrix-specific, either strand: the largest ISM drop
    cell = scorer.cell_index(BOUND_CELL)
    delta = ism(scorer, [window], cell, 0, positions=np.arange(site, site + counts.shape[1]), progress=False)[0]
    pos, base = np.unravel_index(np.nanargmin(delta), delta.shape)
    start = int(scorer.window_start[window])
    return ("chrTest", start + int(pos) + 1, f"core{window}", "ACGT"[codes[pos]], "ACGT"[base])


def read_tsv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open(), delimiter="\t"))


def test_variants_command_scores_per_cell_type_and_what_if(trained: TrainedRun, scorer: Scorer, tmp_path: Path) -> None:
    truth = trained.truth
    a, c = scorer.cell_index(CELLS[0]), scorer.cell_index(BOUND_CELL)
    # a site open in cell_c and closed in cell_a
    clean = clean_site_windows(trained)
    window = int(clean[truth.open[c, clean] & ~truth.open[a, clean]][0])
    core = core_variant(trained, scorer, window)
    # "Test" names the split's chrTest (VCF and split may differ by a chr prefix)
    plain = ("Test", int(scorer.window_start[window]) + 3, "far", "ACGT"[truth.codes[window, 2]],
             "ACGT"[(truth.codes[window, 2] + 1) % 4])
    records = [core, plain, ("chrTest", 50, "indel", "A", "AT"), ("chrOther", 10, "elsewhere", "A", "C")]
    vcf = write_vcf(tmp_path / "in.vcf", records)
    done = run_interpret(["variants", "-p", trained.params, "--vcf", vcf, "--out", tmp_path / "effects.tsv"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "skipped 1 alleles: not a substitution" in done.stdout and "skipped 1 alleles: outside" in done.stdout
    rows = read_tsv(tmp_path / "effects.tsv")
    assert len(rows) == 2 * len(CELLS) * 1 and {r["chrom"] for r in rows} == {"chrTest", "Test"}
    diffs = [abs(float(r["log_odds_diff"])) for r in rows]
    assert diffs == sorted(diffs, reverse=True)
    by = {(r["id"], r["cell_type"]): r for r in rows}
    # the TSV's numbers are the model's logits of the two windows, scored here one at a time
    ref_codes = truth.codes[window][None]
    alt_codes = ref_codes.copy()
    alt_codes[0, core[1] - 1 - int(scorer.window_start[window])] = "ACGT".index(core[4])
    for name in CELLS:
        cell = scorer.cell_index(name)
        ref = scorer.logits(samples_for([window], cell, codes=ref_codes))[0, 0]
        alt = scorer.logits(samples_for([window], cell, codes=alt_codes))[0, 0]
        row = by[(core[2], name)]
        assert float(row["ref_logit"]) == pytest.approx(ref, abs=1e-3)
        assert float(row["log_odds_diff"]) == pytest.approx(alt - ref, abs=1e-3)
    open_effect = float(by[(core[2], BOUND_CELL)]["log_odds_diff"])
    closed_effect = float(by[(core[2], CELLS[0])]["log_odds_diff"])
    assert open_effect < -1 and abs(closed_effect) < 0.25 * abs(open_effect)
    assert rows[0]["id"] == core[2] and truth.open[scorer.cell_index(rows[0]["cell_type"]), window]

    # what if cell_a had cell_c's (open) chromatin: the variant now matters in cell_a too
    done = run_interpret(["variants", "-p", trained.params, "--vcf", vcf, "--cell_types", CELLS[0],
                      "--epigenome_of", BOUND_CELL, "--out", tmp_path / "what_if.tsv"], tmp_path)
    assert done.returncode == 0, done.stderr
    swapped = {r["id"]: r for r in read_tsv(tmp_path / "what_if.tsv")}
    assert swapped[core[2]]["cell_type"] == CELLS[0] and swapped[core[2]]["epigenome_of"] == BOUND_CELL
    assert float(swapped[core[2]]["log_odds_diff"]) == pytest.approx(open_effect, abs=1e-3)


def test_bad_requests_fail_with_one_line_naming_the_problem(trained: TrainedRun, scorer: Scorer, tmp_path: Path) -> None:
    done = run_interpret(["attribute", "-p", trained.params, "--region", "chrTest:10-20", "--cell_type", "liver",
                      "--label", TF, "--out", tmp_path / "x"], tmp_path)
    assert done.returncode == 2 and "cell type 'liver' is not in" in done.stderr
    done = run_interpret(["attribute", "-p", trained.params, "--region", "chrTest:150-260", "--cell_type", BOUND_CELL,
                      "--label", TF, "--out", tmp_path / "x"], tmp_path)
    assert done.returncode == 2 and "no window of" in done.stderr and "holds the whole region" in done.stderr
    base = trained.truth.codes[0, 9]
    wrong = "ACGT"[(base + 1) % 4]
    vcf = write_vcf(tmp_path / "wrong.vcf", [("chrTest", 10, "x", wrong, "ACGT"[(base + 2) % 4])])
    done = run_interpret(["variants", "-p", trained.params, "--vcf", vcf, "--out", tmp_path / "e.tsv"], tmp_path)
    assert done.returncode == 2 and "record 1 (chrTest:10): REF" in done.stderr
    assert not (tmp_path / "e.tsv").exists()


def test_truth_command_and_demo_section_report_both_checks(trained: TrainedRun, tmp_path: Path) -> None:
    done = run_interpret(["truth", "-p", trained.params, "--motifs", MOTIFS, "--tf", TF, "--cell_type", BOUND_CELL,
                      "--min_seqlets", 20, "--leiden_runs", 10, "--out", tmp_path / "truth"], tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "truth" / "truth.json").read_text())
    # no motif tracks: gradient x input is the whole model's DNA path, and it finds the planted matrix
    assert not summary["motif_inputs"] and [r["method"] for r in summary["recoveries"]] == ["gradient"]
    recovery = summary["recoveries"][0]
    assert summary["recovered"] and recovery["patterns"][0]["matches"][0]["matrix_id"] == "MA0506.1"
    assert recovery["planted_tomtom_p"] < 1e-3
    mutation = summary["core_mutation"]
    assert mutation["cell_type"] == BOUND_CELL
    assert mutation["open"]["n"] > 50 and mutation["closed"]["n"] > 50
    assert mutation["open"]["median"] < -1 and mutation["open_to_closed"] > 10
    # the closed sites bound in another cell type, read with that cell type's epigenome: the effect returns
    what_if = mutation["what_if"]
    assert what_if["n"] > 30 and set(what_if["donors"]) <= set(CELLS[:2])
    assert what_if["median"] < 0.5 * mutation["open"]["median"]
    assert abs(what_if["paired_closed"]["median"]) < 0.1 * abs(what_if["median"])
    assert (tmp_path / "truth" / "truth.png").stat().st_size > 10_000

    report = tmp_path / "report"
    report.mkdir()
    (report / "results.md").write_text("# Report\n\n## Verdict\n\nsomething\n")
    text = demo_section(report, [("(f)", trained.params)], trained.validation, MOTIFS, BOUND_CELL, [TF], quick=True,
                        progress=False)
    assert text.startswith(SECTION_TITLE) and "| NRF1 | (f) |" in text and "MA0506.1" in text
    assert "(f) sees the DNA only as k-mer tokens" in text
    assert (report / "results.md").read_text().startswith("# Report") and SECTION_TITLE in (report / "results.md").read_text()
    assert (report / "interpretation.png").is_file()
    assert json.loads((report / "interpretation.json").read_text())[0]["recovered"]
