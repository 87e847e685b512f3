"""Corrupt and odd genome FASTAs through the real CLI: a truncated file, lines of differing lengths,
a stale .fai and a non-base character each stop the run with one line naming the FASTA, before
any shard is written; soft-masked bases read as upper case and IUPAC codes become [N] tokens."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ebert_modelzoo.tokenizer import DNATokenizer
from tests.preprocessing.helpers import DATA, assert_clean_failure, fixture_dna, load_split, write_fasta

SPLIT = {"train": ["X:0-6,000"], "validation": ["X:6,000-8,000"], "test": ["X:8,000-10,000"]}


def fasta_copy(tmp: Path) -> tuple[Path, list[str]]:
    """tests/fixtures/genome.fa and its .fai copied into ``tmp``, with the FASTA's lines for mutating."""
    fasta = tmp / "genome.fa"
    shutil.copy(DATA / "genome.fa", fasta)
    shutil.copy(DATA / "genome.fa.fai", tmp / "genome.fa.fai")
    return fasta, fasta.read_text().splitlines(keepends=True)


def rewrite(fasta: Path, lines: list[str]) -> None:
    """Rewrite the FASTA after its index, as an edit after `samtools faidx` does."""
    fasta.write_text("".join(lines))
    fai_time = os.stat(str(fasta) + ".fai").st_mtime_ns
    os.utime(fasta, ns=(fai_time + 10**9, fai_time + 10**9))


def truncated(fasta, lines):
    data = fasta.read_bytes()
    fasta.write_bytes(data[: len(data) * 2 // 3])


def line_shortened(fasta, lines):
    lines[10] = lines[10][1:]
    rewrite(fasta, lines)


def line_lengthened(fasta, lines):
    lines[1] = "A" + lines[1]
    rewrite(fasta, lines)


def contig_prepended(fasta, lines):
    rewrite(fasta, [">chrUn\n", "ACGT" * 15 + "\n"] + lines)


def contig_appended(fasta, lines):
    rewrite(fasta, lines + [">chrUn\n", "ACGT" * 15 + "\n"])


def invalid_character(fasta, lines):
    line = 9_000 // 60 + 1  # base 9,000 opens this line: in the test split, written after train's shards
    lines[line] = "*" + lines[line][1:]
    rewrite(fasta, lines)


@pytest.mark.parametrize("mutate, needles", [
    (truncated, ["genome.fa", "X should hold 100000 bases", "truncated FASTA"]),
    (line_shortened, ["genome.fa", "X: a line does not end where the .fai index says", "re-index"]),
    (line_lengthened, ["genome.fa", "X: a line does not end where the .fai index says", "re-index"]),
    (contig_prepended, ["genome.fa", "X: the header is not where the .fai index puts it", "re-index"]),
    (contig_appended, ["genome.fa", "bytes follow the last contig", "re-index"]),
    (invalid_character, ["genome.fa", "X:9000: invalid character '*'"]),
])
def test_bad_fasta_stops_the_run(tmp_path, make_config, run_cli, mutate, needles):
    fasta, lines = fasta_copy(tmp_path)
    mutate(fasta, lines)
    config = make_config(tmp_path, genome={"fasta": str(fasta)}, split=SPLIT)
    assert_clean_failure(run_cli("pretraining", config, check=False), *needles, out=tmp_path / "out")


def test_inconsistent_line_lengths_are_not_indexed(tmp_path, make_config, run_cli):
    dna = fixture_dna()
    fasta = write_fasta(tmp_path / "genome.fa", {"X": dna}, index=False)
    lines = fasta.read_text().splitlines(keepends=True)
    lines[10] = lines[10][1:]
    fasta.write_text("".join(lines))
    config = make_config(tmp_path, genome={"fasta": str(fasta), "build_index": True}, split=SPLIT)
    assert_clean_failure(run_cli("pretraining", config, check=False), "genome.fa", "cannot read the FASTA or its index",
                         "Inconsistent line found in >X at line 11", out=tmp_path / "out")
    assert not Path(str(fasta) + ".fai").exists()


def test_soft_masked_and_iupac_bases(tmp_path, make_config, run_cli):
    """Lower-case bases give the upper-case tokens; a k-mer holding R, Y, ... is [N] (ids 6+ stay ACGT)."""
    dna = list(fixture_dna())
    dna[1000:1600] = "".join(dna[1000:1600]).lower()
    for pos, code in ((2001, "R"), (2502, "y"), (3003, "S"), (3504, "W"), (4005, "K"), (4506, "M")):
        dna[pos] = code
    seq = "".join(dna)
    fasta = write_fasta(tmp_path / "genome.fa", {"X": seq})
    config = make_config(tmp_path, genome={"fasta": str(fasta)}, split=SPLIT)
    run_cli("pretraining", config)
    tok = DNATokenizer(4)
    arrays = load_split(tmp_path / "out" / "train")
    starts = arrays["window_start"].tolist()
    assert {1000, 2000, 3500, 4000} <= set(starts), starts  # 4500 and 5000 meet the blacklist
    n_tokens = 0
    for start, ids in zip(starts, arrays["tokens"]):
        want = "".join(seq[i:i + 4].upper() if set(seq[i:i + 4].upper()) <= set("ACGT") else "NNNN"
                       for i in range(start, start + 1000, 4))
        assert tok.decode(ids) == want
        n_tokens += int((ids == tok.n_id).sum())
    assert n_tokens >= 6
