"""The shipped demo data (data_processing/demo_data): well-formed, consistent, biologically shaped,
and exactly what the seeded generator writes."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyBigWig
import pyfaidx
import pytest
import yaml

from ebert_modelzoo.data import motifs
from ebert_modelzoo.demo.stages import check_split
from ebert_modelzoo.errors import DemoError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data_processing" / "demo_data"
GENERATOR = ROOT / "data_processing" / "simulate_demo_data.py"

_spec = importlib.util.spec_from_file_location("simulate_demo_data", GENERATOR)
sim = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = sim  # dataclasses look their module up here
_spec.loader.exec_module(sim)

ACTIVE_STATES = {"1_TssA", "2_TssAFlnk", "6_EnhG", "7_Enh"}
GAP = (49_242_997, 49_292_997)  # the assembly gap inside the first stretch
LEFT_OUT = (sim.STRETCHES[0][1], sim.STRETCHES[1][0])  # unsimulated between the stretches: like a gap


def in_stretches(positions: np.ndarray) -> np.ndarray:
    """Which absolute positions lie in a simulated stretch."""
    return np.any([(a <= positions) & (positions < b) for a, b in sim.STRETCHES], axis=0)


@lru_cache(maxsize=None)
def split() -> dict:
    return yaml.safe_load((DATA / "split.yaml").read_text())


@lru_cache(maxsize=None)
def manifest() -> list[dict[str, str]]:
    lines = (DATA / "manifest.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert header == ["cell_type", "assay", "file"]
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


@lru_cache(maxsize=None)
def labels(tf: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Header cell types, window starts [W], label codes [W, C] (as 1-char strings)."""
    with gzip.open(DATA / split()["labels"][tf], "rt") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    assert rows[0][:3] == ["chr", "start", "stop"]
    body = rows[1:]
    assert {r[0] for r in body} == {"chrX"}
    starts = np.array([int(r[1]) for r in body])
    stops = np.array([int(r[2]) for r in body])
    assert np.all(stops - starts == 200)
    return rows[0][3:], starts, np.array([r[3:] for r in body])


@lru_cache(maxsize=None)
def segmentation(cell: str) -> np.ndarray:
    """State name per 200 bp bin of the stretch."""
    path = DATA / f"segmentation/{cell}_15_coreMarks_dense.bed.gz"
    with gzip.open(path, "rt") as handle:
        lines = handle.read().splitlines()
    assert lines[0].startswith("track ") and 'itemRgb="On"' in lines[0]
    bins, expected_start = [], sim.REGION_START
    for line in lines[1:]:
        f = line.split("\t")
        assert len(f) == 9, line
        start, end = int(f[1]), int(f[2])
        assert f[0] == "chrX" and start == expected_start and end > start
        assert start % 200 == 0 and end % 200 == 0
        assert (f[6], f[7]) == (f[1], f[2])
        assert f[8] == sim.STATE_RGB[sim.STATES.index(f[3])]
        bins += [f[3]] * ((end - start) // 200)
        expected_start = end
    assert expected_start == sim.REGION_END
    return np.array(bins)


@lru_cache(maxsize=None)
def dnase(cell: str) -> np.ndarray:
    with pyBigWig.open(str(DATA / f"signal/{cell}-DNase.fc.signal.bigWig")) as bw:
        return np.array(bw.values("chrX", sim.REGION_START, sim.REGION_END))


@lru_cache(maxsize=None)
def dna_codes() -> np.ndarray:
    fasta = pyfaidx.Fasta(str(DATA / split()["fasta"]))
    return motifs.encode_dna(str(fasta["X"][sim.REGION_START:sim.REGION_END]))


def window_mean(track: np.ndarray, starts: np.ndarray) -> np.ndarray:
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(track))])
    rel = starts - sim.REGION_START
    return (cum[rel + 200] - cum[rel]) / 200


def test_fasta_is_real_grch37_chrx_masked_outside_the_stretch():
    fasta = pyfaidx.Fasta(str(DATA / split()["fasta"]))
    assert list(fasta.keys()) == ["X"]
    record = fasta["X"]
    assert len(record) == sim.REGION_END
    assert set(str(record[:1000])) == {"N"}
    assert set(str(record[sim.REGION_START - 1000: sim.REGION_START])) == {"N"}
    codes = dna_codes()
    for a, b in (GAP, LEFT_OUT):
        assert np.all(codes[a - sim.REGION_START: b - sim.REGION_START] == 4)
    assert np.mean(codes[in_stretches(sim.REGION_START + np.arange(len(codes)))] != 4) > 0.98
    # GC content of a gene-dense stretch of chrX: well above 35 %, below 55 %
    gc = np.isin(codes, [1, 2]).sum() / (codes != 4).sum()
    assert 0.38 < gc < 0.55


def test_fasta_matches_the_smalt_source_when_available():
    source = Path("/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz")
    if not source.exists():
        pytest.skip("Debian smalt-examples not installed")
    with gzip.open(source, "rb") as handle:
        seq = b"".join(handle.read().split(b"\n")[1:])
    source_codes = motifs.encode_dna(seq[sim.REGION_START:sim.REGION_END].decode("latin-1"))
    simulated = in_stretches(sim.REGION_START + np.arange(len(source_codes)))
    assert np.array_equal(source_codes[simulated], dna_codes()[simulated])
    assert np.all(dna_codes()[~simulated] == 4)


def test_manifest_split_and_files_agree():
    cells = split()["cell_types"]
    rows = manifest()
    assert {r["cell_type"] for r in rows} == set(cells)
    assert {r["assay"] for r in rows} <= {"ChromHMM_15state", *sim.ASSAYS}
    for cell in cells:
        assays = [r["assay"] for r in rows if r["cell_type"] == cell]
        assert "ChromHMM_15state" in assays and "DNase" in assays or cell == "sim_tissue2"
    assert len(rows) < len(cells) * (1 + len(sim.ASSAYS))  # some assays are missing
    for r in rows:
        assert (DATA / r["file"]).is_file(), r["file"]
    for tf, path in split()["labels"].items():
        header, _, _ = labels(tf)
        assert header == cells
    parts = split()["split"]
    test_cells = set(parts["test"]["cell_types"])
    assert test_cells and not test_cells & set(parts["train"]["cell_types"])
    spans = []
    for part in parts.values():
        for region in part["regions"]:
            contig, rest = region.split(":")
            start, end = map(int, rest.split("-"))
            assert contig == "chrX" and sim.REGION_START <= start < end <= sim.REGION_END
            spans.append((start, end))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "split regions overlap"


def test_the_demo_refuses_datasets_built_for_another_split(tmp_path):
    parts = split()["split"]
    data = {}
    for kind in ("pretraining", "finetuning"):
        for part, spec in parts.items():
            folder = tmp_path / kind / part
            folder.mkdir(parents=True)
            config = yaml.safe_load((ROOT / "data_processing" / "configs" / f"demo_{kind}.yaml").read_text())
            (folder / "data_params.json").write_text(json.dumps({"regions": config["split"][part], "contigs": ["X"]}))
        data[kind] = tmp_path / kind
    check_split(data, parts)  # the shipped configs build what split.yaml names
    shorter = {**parts, "test": {**parts["test"], "regions": ["chrX:49000000-49500000"]}}
    with pytest.raises(DemoError, match=r"demo_pretraining.yaml builds test = chrX:49,000,000-49,500,000, "
                                        r"chrX:50,500,000-51,500,000 but "
                                        r"data_processing/demo_data/split.yaml names chrX:49000000-49500000"):
        check_split(data, shorter)


def test_bigwigs_match_the_fasta_and_cover_the_stretch():
    length = len(pyfaidx.Fasta(str(DATA / split()["fasta"]))["X"])
    for r in manifest():
        if r["assay"] == "ChromHMM_15state":
            continue
        with pyBigWig.open(str(DATA / r["file"])) as bw:
            assert bw.isBigWig()
            assert bw.chroms() == {"chrX": length}
            values = np.array(bw.values("chrX", sim.REGION_START, sim.REGION_END))
            gap = np.zeros(len(values), bool)
            for a, b in (GAP, LEFT_OUT):
                gap[a - sim.REGION_START: b - sim.REGION_START] = True
            assert np.isnan(values[gap]).mean() > 0.95
            assert not np.isnan(values[~gap][::100]).any()
            assert np.nanmin(values) >= 0 and np.nanmax(values) > 5
            assert bw.intervals("chrX", 0, sim.REGION_START) is None


def test_segmentations_use_roadmap_states_with_active_promoters_at_cpg_islands():
    cpg_mid = np.array([(int(line.split("\t")[1]) + int(line.split("\t")[2])) // 2
                        for line in (DATA / sim.CPG_NAME).read_text().splitlines()
                        if not line.startswith("#")])
    assert len(cpg_mid) > 50
    cells = split()["cell_types"]
    states = np.stack([segmentation(c) for c in cells])
    assert set(np.unique(states)) <= set(sim.STATES)
    at_cpg = states[:, (cpg_mid - sim.REGION_START) // 200]
    assert np.isin(at_cpg, ["1_TssA", "2_TssAFlnk"]).mean() > 0.5
    simulated = in_stretches(sim.REGION_START + 200 * np.arange(states.shape[1]))
    assert np.all(states[:, ~simulated] == "15_Quies")
    states = states[:, simulated]
    quies = (states == "15_Quies").mean()
    assert 0.3 < quies < 0.8
    assert np.isin(states, ["1_TssA", "2_TssAFlnk"]).mean() < 0.05
    # cell-type-specific and shared enhancers
    enh = np.isin(states, ["7_Enh", "6_EnhG"])
    any_enh = enh.any(0)
    assert 0.05 < (enh.all(0).sum() / any_enh.sum()) < 0.5
    # accessibility follows the states
    for cell in cells[:2]:
        dn = dnase(cell).reshape(-1, 200).mean(1)
        s = segmentation(cell)
        assert np.nanmean(dn[s == "1_TssA"]) > 4 * np.nanmean(dn[s == "15_Quies"])


@pytest.mark.parametrize("tf", [tf for tf, *_ in sim.MOTIFS])
def test_labels_are_bound_at_motifs_in_accessible_chromatin(tf):
    cells, starts, codes = labels(tf)
    n = (sim.REGION_END - sim.REGION_START - 200) // 50 + 1
    assert np.array_equal(starts, sim.REGION_START + 50 * np.arange(n))
    assert set(np.unique(codes)) == {"U", "A", "B"}
    simulated = in_stretches(starts) & in_stretches(starts + 199)
    assert np.all(codes[~simulated] == "U")
    frac_bound = (codes[simulated] == "B").mean(0)
    assert np.all((frac_bound > 0.003) & (frac_bound < 0.03)), frac_bound
    assert ((codes == "B").all(1).sum() < (codes == "B").any(1).sum() / 2), "binding barely varies"

    entry = next(m for m in json.loads((DATA / "motifs.json").read_text())["motifs"] if m["tf"] == tf)
    lo = sim.log_odds(entry["counts"])
    scores = motifs.scan(dna_codes(), lo, np.float64)
    length = lo.shape[1]
    cum_hits = np.concatenate([[0], np.cumsum(scores >= entry["threshold"])])
    rel = starts - sim.REGION_START
    has_motif = cum_hits[np.minimum(rel + 200 - length + 1, len(scores))] - cum_hits[rel] > 0
    bound_any = (codes == "B").any(1)
    unbound_all = (codes == "U").all(1)
    assert has_motif[bound_any].mean() > 5 * has_motif[unbound_all].mean()

    for cell in cells:
        if not (DATA / f"signal/{cell}-DNase.fc.signal.bigWig").exists():
            continue
        c = cells.index(cell)
        access = window_mean(dnase(cell), starts)
        bound, unbound = codes[:, c] == "B", codes[:, c] == "U"
        assert np.median(access[bound]) > 3 * np.median(access[unbound])
        # cell-type specificity: motif windows bound here are more open here than motif
        # windows left unbound here
        assert np.median(access[bound & has_motif]) > 2 * np.median(access[unbound & has_motif])


def test_motifs_json_thresholds_are_the_stated_pvalues():
    doc = json.loads((DATA / "motifs.json").read_text())
    assert "JASPAR2024" in doc["source"]
    assert [(m["tf"], m["matrix_id"]) for m in doc["motifs"]] == [m[:2] for m in sim.MOTIFS]
    shipped = motifs.load_motifs(DATA / "motifs.json")
    for entry in doc["motifs"]:
        lo = sim.log_odds(entry["counts"])
        np.testing.assert_array_equal(lo, shipped.log_odds(entry["tf"]))  # the package scores the same
        assert sim.pvalue_threshold(lo, entry["pvalue"]) == entry["threshold"]
        assert entry["threshold_weak"] < entry["threshold"] < lo.max(0).sum()


def test_motifs_json_matches_jaspar_when_pyjaspar_is_installed():
    jaspar = pytest.importorskip("pyjaspar")
    db = jaspar.jaspardb(release="JASPAR2024")
    for entry in json.loads((DATA / "motifs.json").read_text())["motifs"]:
        motif = db.fetch_motif_by_id(entry["matrix_id"])
        for base in "ACGT":
            assert [float(x) for x in motif.counts[base]] == entry["counts"][base]


def _checksums(folder: Path) -> dict[str, str]:
    files = sorted(p for sub in ("labels", "segmentation", "signal") for p in (folder / sub).iterdir())
    files += [folder / "manifest.tsv", folder / "split.yaml"]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_regenerating_with_the_seed_gives_identical_files(tmp_path):
    run = subprocess.run([sys.executable, str(GENERATOR), "simulate", "--data-dir", str(DATA),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert _checksums(tmp_path) == _checksums(DATA)


def test_the_appended_stretch_leaves_the_first_stretch_as_drawn_alone(tmp_path, monkeypatch):
    """Appending the second stretch (more test) left the first as it was: drawing the first stretch
    alone gives the shipped labels and tracks there, so training and validation data never moved."""
    first = sim.STRETCHES[0]
    monkeypatch.setattr(sim, "STRETCHES", (first,))
    monkeypatch.setattr(sim, "REGION_END", first[1])
    sim.simulate(DATA, tmp_path, sim.DEFAULT_SEED)
    for tf in ("CTCF", "NRF1", "JUND", "REST"):
        alone = gzip.open(tmp_path / "labels" / f"{tf}.labels.tsv.gz", "rt").read().splitlines()
        shipped = gzip.open(DATA / "labels" / f"{tf}.labels.tsv.gz", "rt").read().splitlines()
        assert len(shipped) > len(alone) > 1 and shipped[: len(alone)] == alone
    for name in ("sim_tissue1-DNase", "sim_blood1-H3K27ac"):
        alone, shipped = (pyBigWig.open(str(folder / "signal" / f"{name}.fc.signal.bigWig"))
                          for folder in (tmp_path, DATA))
        np.testing.assert_array_equal(alone.values("chrX", *first), shipped.values("chrX", *first))
        assert shipped.chroms("chrX") > alone.chroms("chrX") == first[1]


def test_generator_reports_missing_inputs_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, str(GENERATOR), "simulate", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "not found" in run.stderr and "Traceback" not in run.stderr
