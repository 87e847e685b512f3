"""Each bad input stops the real CLI with one line naming the file and the problem, exit code 2, and
no shard files left behind; NaN/inf signal is counted and stored as missing."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from ebert_modelzoo.contract import schema
from tests.preprocessing.helpers import DATA, assert_clean_failure, write_bw

SEG = DATA / "E003_15_coreMarks_segments.bed"


def cells_with(segmentation: Path | None = None, dnase: Path | None = None) -> list[dict]:
    """The fixture's two cell types, E003's segmentation or DNase bigWig replaced."""
    cells = [
        {"name": "E003", "segmentation": str(SEG),
         "tracks": {"DNase": str(DATA / "E003.DNase.bw"), "H3K27ac": str(DATA / "E003.H3K27ac.bw")}},
        {"name": "E017", "segmentation": str(DATA / "E017_15_coreMarks_segments.bed"),
         "tracks": {"DNase": str(DATA / "E017.DNase.bw")}},
    ]
    if segmentation is not None:
        cells[0]["segmentation"] = str(segmentation)
    if dnase is not None:
        cells[0]["tracks"]["DNase"] = str(dnase)
    return cells


def test_missing_fai(tmp_path, make_config, run_cli):
    shutil.copy(DATA / "genome.fa", tmp_path / "genome.fa")
    config = make_config(tmp_path, genome={"fasta": str(tmp_path / "genome.fa")})
    assert_clean_failure(run_cli("pretraining", config, check=False), "genome.fa", ".fai", out=tmp_path / "out")
    config = make_config(tmp_path, genome={"fasta": str(tmp_path / "genome.fa"), "build_index": True})
    run_cli("pretraining", config)
    assert (tmp_path / "genome.fa.fai").read_text() == (DATA / "genome.fa.fai").read_text()


def test_contig_absent_from_fasta(tmp_path, make_config, run_cli):
    config = make_config(tmp_path, split={"train": ["chr7"]})
    assert_clean_failure(run_cli("pretraining", config, check=False), "'chr7'", "not in the genome", out=tmp_path / "out")


@pytest.mark.parametrize("chroms, needle", [
    ([("chrX", 155_270_560)], "another genome build"),
    ([("chr2", 100_000)], "no contig name matches"),
])
def test_bigwig_from_another_build(tmp_path, make_config, run_cli, chroms, needle):
    bw = write_bw(tmp_path / "other.bw", chroms, [1.0] * 10)
    config = make_config(tmp_path, cell_types=cells_with(dnase=bw))
    assert_clean_failure(run_cli("pretraining", config, check=False), "other.bw", needle, out=tmp_path / "out")


def test_truncated_bigwig(tmp_path, make_config, run_cli):
    data = (DATA / "E003.DNase.bw").read_bytes()
    (tmp_path / "cut.bw").write_bytes(data[: len(data) // 2])
    config = make_config(tmp_path, cell_types=cells_with(dnase=tmp_path / "cut.bw"))
    assert_clean_failure(run_cli("pretraining", config, check=False), "cut.bw", out=tmp_path / "out")


def test_nonfinite_signal_is_missing_and_counted(tmp_path, make_config, run_cli):
    values = [1.0] * 1000
    values[2] = float("inf")  # bases 200-300 of chrX: the first bin of window 0 mixes 1.0 and inf
    values[5] = float("nan")
    bw = write_bw(tmp_path / "inf.bw", [("chrX", 100_000)], values)
    config = make_config(tmp_path, cell_types=cells_with(dnase=bw))
    run_cli("pretraining", config)
    params = json.loads((tmp_path / "out" / "train" / schema.DATA_PARAMS_FILE).read_text())
    assert params["tracks"]["nonfinite_values"][0] == 100
    with h5py.File(tmp_path / "out" / "train" / params["shards"][0]["file"]) as f:
        dnase = f["signal"][0, 0, :, 0].astype(float)
    assert dnase[1] == pytest.approx(np.arcsinh(1.0), rel=1e-3)  # bases 200-400: inf bases dropped
    assert dnase[2] == pytest.approx(np.arcsinh(1.0), rel=1e-3)  # 400-600: NaN bases dropped
    assert np.isfinite(dnase).all()


@pytest.mark.parametrize("mutate, needle", [
    (lambda lines: [], "empty segmentation BED"),
    (lambda lines: [lines[1], lines[0]] + lines[2:], ":2: start"),
    (lambda lines: [lines[0], lines[1].replace("\t" + lines[1].split("\t")[1] + "\t",
                                                "\t" + str(int(lines[1].split("\t")[1]) - 10) + "\t", 1)] + lines[2:],
     ":2: overlaps"),
    (lambda lines: [lines[0].replace("\t" + lines[0].split("\t")[2] + "\t", "\t0\t", 1)] + lines[1:], ":1: empty"),
    (lambda lines: [lines[0].replace("\t" + lines[0].split("\t")[3] + "\t", "\tQuies\t", 1)] + lines[1:], ":1: state"),
])
def test_bad_segmentation_bed(tmp_path, make_config, run_cli, mutate, needle):
    lines = SEG.read_text().splitlines(keepends=True)
    (tmp_path / "bad.bed").write_text("".join(mutate(lines)))
    config = make_config(tmp_path, cell_types=cells_with(segmentation=tmp_path / "bad.bed"))
    assert_clean_failure(run_cli("pretraining", config, check=False), "bad.bed", needle, out=tmp_path / "out")


def test_label_cell_type_not_in_manifest(tmp_path, make_config, run_cli):
    with gzip.open(DATA / "CTCF.train.labels.tsv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    lines = [lines[0] + "\tK562"] + [line + "\tU" for line in lines[1:]]
    (tmp_path / "labels.tsv").write_text("\n".join(lines) + "\n")
    config = make_config(tmp_path, "finetuning")
    raw = config.read_text().replace(str(DATA / "CTCF.train.labels.tsv.gz"), str(tmp_path / "labels.tsv"))
    config.write_text(raw)
    assert_clean_failure(run_cli("finetuning", config, check=False), "labels.tsv", "'K562'", out=tmp_path / "out")


def test_config_errors(tmp_path, make_config, run_cli):
    config = make_config(tmp_path, tokenizer={"k": 3})
    assert_clean_failure(run_cli("pretraining", config, check=False), "config.yaml", "bin_size", out=tmp_path / "out")
    config = make_config(tmp_path, tokenizer={"k": 7})
    assert_clean_failure(run_cli("pretraining", config, check=False), "config.yaml: tokenizer: k must be in [1, 6], got 7",
                         out=tmp_path / "out")
    config = make_config(tmp_path, tokenizer={"kmer": 4})
    assert_clean_failure(run_cli("pretraining", config, check=False), "tokenizer.kmer: unknown key", out=tmp_path / "out")
    config = make_config(tmp_path, "finetuning")
    assert_clean_failure(run_cli("pretraining", config, check=False), "labels", out=tmp_path / "out")
