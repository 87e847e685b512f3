"""Contig names across conventions (UCSC ``chrX``/``chrM`` vs Ensembl ``X``/``MT``), with real FASTA,
bigWig and BED files: spellings map, ambiguity is a one-line error naming the file, contigs the
genome lacks are skipped and logged, and a renamed bigWig/BED gives the same shards byte for byte."""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from ebert_modelzoo.contract import schema
from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.genome import Genome
from ebert_modelzoo.preprocessing.labels import read_dream_tsv, read_peaks
from ebert_modelzoo.preprocessing.segmentation import read_segmentation
from ebert_modelzoo.preprocessing.tracks import BigWigTrack
from ebert_modelzoo.preprocessing.windows import Blacklist, Region, parse_region
from tests.preprocessing.helpers import DATA, assert_clean_failure, fixture_dna, write_bw, write_fasta

SEG = DATA / "E003_15_coreMarks_segments.bed"
ABSENT = "GL000220.1"  # an unplaced scaffold the genome FASTA does not hold
SMALL_SPLIT = {"train": ["chrX:0-20,000"], "validation": ["X:20,000-24,000"], "test": ["chrX:24,000-28,000"]}


def write_bigwig(path: Path, contigs: dict[str, tuple[int, list[tuple[int, int, float]]]]) -> Path:
    """A bigWig holding, per contig, its length and (start, end, value) intervals."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(name, length) for name, (length, _) in contigs.items()])
    for name, (_, intervals) in contigs.items():
        if intervals:
            bw.addEntries([name] * len(intervals), [s for s, _, _ in intervals],
                          ends=[e for _, e, _ in intervals], values=[v for _, _, v in intervals])
    bw.close()
    return path


def renamed_bigwig(path: Path, name: str, extra: bool) -> Path:
    """The fixture's E003 DNase bigWig with its contig ``chrX`` named ``name``, plus an ABSENT contig."""
    src = pyBigWig.open(str(DATA / "E003.DNase.bw"))
    contigs = {name: (src.chroms("chrX"), src.intervals("chrX"))}
    src.close()
    if extra:
        contigs[ABSENT] = (5_000, [(0, 100, 7.0), (100, 300, 9.0)])
    return write_bigwig(path, contigs)


@pytest.mark.parametrize("genome_name", ["chrM", "MT", "chrMT"])
@pytest.mark.parametrize("file_name", ["chrM", "MT", "chrMT"])
def test_mitochondrion_spellings(tmp_path, genome_name, file_name):
    dna = fixture_dna()
    genome = Genome(write_fasta(tmp_path / "g.fa", {"chr1": dna[:3000], genome_name: dna[3000:4600]}))
    values = [float(i) for i in range(16)]
    track = BigWigTrack(write_bw(tmp_path / "m.bw", [(file_name, 1600)], values), genome.lengths)
    got, _ = track.values(genome_name, 0, 1600)
    assert got[::100].tolist() == values and got[99::100].tolist() == values
    bed = tmp_path / "m.bed"
    bed.write_text(f"{file_name}\t0\t800\t1_TssA\n{file_name}\t800\t1600\t7_Enh\n")
    seg = read_segmentation(bed, genome.lengths)
    assert list(seg.segments) == [genome_name]
    assert seg.states_at(genome_name, np.array([0, 799, 800, 1599])).tolist() == [1, 1, 7, 7]


@pytest.fixture
def chrx_fasta(tmp_path) -> Path:
    """The fixture DNA under the UCSC name ``chrX``."""
    return write_fasta(tmp_path / "chrX.fa", {"chrX": fixture_dna()})


def cells(segmentation: Path, dnase: Path) -> list[dict]:
    return [{"name": "E003", "segmentation": str(segmentation), "tracks": {"DNase": str(dnase)}}]


@pytest.mark.parametrize("bad, needles", [
    ("bigwig_ambiguous", ["m.bw", "'chrMT'", "matches several genome contigs ['chrM', 'MT']"]),
    ("bed_ambiguous", ["m.bed", "'M'", "matches several genome contigs"]),
    ("bigwig_two_names", ["m.bw", "'chrX' and 'X' both map to the genome's 'chrX'"]),
])
def test_ambiguous_contig_is_one_line_naming_the_file(tmp_path, make_config, run_cli, bad, needles):
    dna = fixture_dna()
    fasta = write_fasta(tmp_path / "g.fa", {"chrX": dna, "chrM": dna[:1600], "MT": dna[1600:3200]})
    dnase, bed = DATA / "E003.DNase.bw", SEG
    if bad == "bigwig_ambiguous":
        dnase = write_bw(tmp_path / "m.bw", [("chrX", 100_000), ("chrMT", 1600)], [1.0] * 10)
    elif bad == "bigwig_two_names":
        dnase = write_bw(tmp_path / "m.bw", [("chrX", 100_000), ("X", 100_000)], [1.0] * 10)
    else:
        bed = tmp_path / "m.bed"
        bed.write_text(SEG.read_text() + "M\t0\t1600\t15_Quies\n")
    config = make_config(tmp_path, genome={"fasta": str(fasta)}, split=SMALL_SPLIT, cell_types=cells(bed, dnase),
                         signal={"transform": "arcsinh", "tracks": ["DNase"]})
    assert_clean_failure(run_cli("pretraining", config, check=False), *needles, out=tmp_path / "out")


def test_contigs_absent_from_the_genome_are_skipped_and_logged(tmp_path, caplog):
    """Every reader ignores the records of a contig the FASTA lacks and says so once, naming the file."""
    lengths = Genome(DATA / "genome.fa").lengths  # {"X": 100000}
    extra_bed = f"{ABSENT}\t0\t100\t1_TssA\n{ABSENT}\t100\t200\t2_TssAFlnk\n"
    seg_path = tmp_path / "seg.bed"
    seg_path.write_text(SEG.read_text() + extra_bed)
    black_path = tmp_path / "black.bed"
    black_path.write_text(f"{ABSENT}\t0\t100\nchrX\t5000\t5600\n")
    peak_path = tmp_path / "p.narrowPeak"
    peak_path.write_text((DATA / "E003.NRF1.narrowPeak").read_text() + f"{ABSENT}\t10\t400\tp\t1\t.\t1\t1\t1\t50\n")
    with gzip.open(DATA / "CTCF.train.labels.tsv.gz", "rt") as fh:
        dream_text = fh.read()
    dream_path = tmp_path / "labels.tsv"
    dream_path.write_text(dream_text + f"{ABSENT}\t0\t200\tB\tB\n{ABSENT}\t50\t250\tB\tU\n")
    bw_path = renamed_bigwig(tmp_path / "x.bw", "chrX", extra=True)

    with caplog.at_level(logging.INFO, logger="ebert_modelzoo.preprocessing.genome"):
        seg = read_segmentation(seg_path, lengths)
        black = Blacklist(black_path, lengths)
        peaks = read_peaks(peak_path, lengths)
        dream = read_dream_tsv(dream_path, lengths, {"X"})
        track = BigWigTrack(bw_path, lengths)
    assert list(seg.segments) == ["X"] and len(seg.segments["X"][0]) == len(SEG.read_text().splitlines())
    assert list(black.intervals) == ["X"]
    assert list(peaks.summits) == ["X"] and list(dream.starts) == ["X"]
    assert track.contigs.to_genome == {"chrX": "X"} and track.contigs.skipped == [ABSENT]
    for path in (seg_path, black_path, peak_path, dream_path, bw_path):
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(str(path))]
        assert f"{path}: 1 contig(s) not in the genome FASTA, their records are skipped ({ABSENT})" in said, said


def shard_digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for split in schema.SPLITS for p in sorted((out / split).glob(schema.SHARD_GLOB))}


def test_x_bigwig_on_chrx_fasta_gives_the_same_shards(tmp_path, make_config, run_cli, chrx_fasta):
    """Tracks named ``X`` (plus a contig the genome lacks) on a ``chrX`` FASTA: the same bytes as
    tracks named ``chrX``."""
    renamed_bed = tmp_path / "x.bed"
    renamed_bed.write_text(SEG.read_text().replace("chrX\t", "X\t") + f"{ABSENT}\t0\t100\t1_TssA\n")
    runs = {"matching": cells(SEG, renamed_bigwig(tmp_path / "chrX.bw", "chrX", extra=False)),
            "renamed": cells(renamed_bed, renamed_bigwig(tmp_path / "x.bw", "X", extra=True))}
    digests = {}
    for name, cell_types in runs.items():
        config = make_config(tmp_path, name=f"{name}.yaml", genome={"fasta": str(chrx_fasta)}, split=SMALL_SPLIT,
                             cell_types=cell_types, signal={"transform": "arcsinh", "tracks": ["DNase"]},
                             output={"windows_per_shard": 16, "chunk_windows": 8, "compression": "gzip",
                                     "output_dir": str(tmp_path / name)})
        proc = run_cli("pretraining", config)
        digests[name] = shard_digests(tmp_path / name)
        params = json.loads((tmp_path / name / "train" / schema.DATA_PARAMS_FILE).read_text())
        assert params["contigs"] == ["chrX"]
        assert np.isfinite(params["tracks"]["mean"]).all() and params["tracks"]["stats_count"][0] > 0
    assert "X->chrX" in proc.stderr and ABSENT in proc.stderr
    assert len(digests["matching"]) >= 3 and digests["matching"] == digests["renamed"]


def test_contig_names_with_colons_in_splits():
    lengths = {"chr1:15710957-15711157": 200, "chr6": 1000}
    assert parse_region("chr1:15710957-15711157", lengths, "split.train[0]") == Region("chr1:15710957-15711157", 0, 200)
    assert parse_region("chr6:100-300", lengths, "split.train[1]") == Region("chr6", 100, 300)
    with pytest.raises(InputError, match=r"split.train\[2\]: contig 'chr2' is not in the genome FASTA \('chr2:5-10' is "
                                         r"read as the range chrom:start-end of contig 'chr2'; no FASTA contig"):
        parse_region("chr2:5-10", lengths, "split.train[2]")
