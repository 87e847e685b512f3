"""The chunked, column-wise ENCODE-DREAM TSV reader against a plain line-by-line reference written
here: the same arrays on a generated file of a few hundred thousand rows read in small chunks, and
the same one-line error (file and line) for each kind of bad line, wherever it falls in a chunk."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.bed import check_order
from ebert_modelzoo.preprocessing.genome import match_contig
from ebert_modelzoo.preprocessing.labels import read_dream_tsv

GENOME = {"X": 10**8, "1": 10**8, "2": 10**8, "chrM": 16_571, "MT": 16_569}  # chrMT: ambiguous
KEEP = {"X", "2"}
CELLS = ["E003", "E017", "K562"]


def reference(path: Path) -> dict:
    """Line by line: the rules of read_dream_tsv, one check after another per line."""
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split("\t")
    rows: dict[str, list] = {}
    prev, seen = None, set()
    for line_no, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != len(header):
            raise InputError(f"{path}:{line_no}: {len(fields)} columns, the header has {len(header)}")
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            raise InputError(f"{path}:{line_no}: start/stop are not integers") from None
        if end <= start:
            raise InputError(f"{path}:{line_no}: empty record")
        check_order(path, line_no, fields[0], start, prev, seen, allow_overlap=True)
        if prev is not None and prev[0] == fields[0] and end < prev[2]:
            raise InputError(f"{path}:{line_no}: label windows must all have the same length")
        prev = (fields[0], start, end)
        try:
            contig = match_contig(fields[0], GENOME)
        except InputError as err:
            raise InputError(f"{path}: {err}") from None
        if contig not in KEEP:
            continue
        if any(code not in ("U", "A", "B") for code in fields[3:]):
            raise InputError(f"{path}:{line_no}: labels must be U, A or B, found {fields[3:]!r}")
        rows.setdefault(contig, []).append((start, end, fields[3:]))
    out = {}
    for contig, recs in rows.items():
        codes = np.array([r[2] for r in recs])
        for c, cell in enumerate(header[3:]):
            counts = np.stack([codes[:, c] == x for x in "UAB"], axis=1).astype(np.int64)
            out[(cell, contig)] = np.vstack([np.zeros((1, 3), np.int64), np.cumsum(counts, axis=0)])
        out[contig] = (np.array([r[0] for r in recs]), np.array([r[1] for r in recs]))
    return out


def generated_lines(rng: np.random.Generator) -> list[str]:
    """DREAM layout on four contigs (one the genome lacks, one named ``chr1``, not kept): 200 bp
    windows sliding by 50 bp, random U/A/B codes."""
    lines = ["chr\tstart\tstop\t" + "\t".join(CELLS) + "\n"]
    for contig, n in (("chrX", 120_000), ("chr1", 60_000), ("GL000220.1", 500), ("2", 120_000)):
        starts = np.arange(n) * 50 + 600
        codes = rng.choice(np.array(list("UUUUAB")), size=(n, len(CELLS)))
        lines += [f"{contig}\t{s}\t{s + 200}\t" + "\t".join(row) + "\n" for s, row in zip(starts.tolist(), codes.tolist())]
    return lines


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return generated_lines(np.random.default_rng(7))


def test_same_arrays_as_the_line_by_line_reference(tmp_path, lines):
    path = tmp_path / "labels.tsv"
    path.write_text("".join(lines))
    want = reference(path)
    got = read_dream_tsv(path, GENOME, KEEP, chunk_bytes=1 << 20)  # ~30 chunks, boundaries mid-contig
    assert got.cell_types == CELLS and sorted(got.starts) == ["2", "X"]
    for contig in ("X", "2"):
        np.testing.assert_array_equal(got.starts[contig], want[contig][0])
        np.testing.assert_array_equal(got.ends[contig], want[contig][1])
        for cell in CELLS:
            np.testing.assert_array_equal(got.cumcounts[(cell, contig)], want[(cell, contig)])
    assert int(got.cumcounts[("K562", "X")][-1].sum()) == 120_000


def set_field(line: str, column: int, value: str) -> str:
    fields = line.rstrip("\n").split("\t")
    fields[column] = value
    return "\t".join(fields) + "\n"


MUTATIONS = {
    "columns": lambda ls, i: ls[:i] + [ls[i].rstrip("\n") + "\tU\n"] + ls[i + 1:],
    "blank line": lambda ls, i: ls[:i] + ["\n"] + ls[i + 1:],
    "not an integer": lambda ls, i: ls[:i] + [set_field(ls[i], 2, "12a")] + ls[i + 1:],
    "empty record": lambda ls, i: ls[:i] + [set_field(ls[i], 2, ls[i].split("\t")[1])] + ls[i + 1:],
    "start before previous": lambda ls, i: ls[:i] + [ls[i + 1], ls[i]] + ls[i + 2:],
    "shorter window": lambda ls, i: ls[:i] + [set_field(ls[i], 2, str(int(ls[i].split("\t")[2]) - 60))] + ls[i + 1:],
    "bad code": lambda ls, i: ls[:i] + [set_field(ls[i], 4, "N")] + ls[i + 1:],
    "empty code": lambda ls, i: ls[:i] + [set_field(ls[i], 3, "")] + ls[i + 1:],
    "two bad lines": lambda ls, i: ls[:i] + [set_field(ls[i], 5, "x"), set_field(ls[i + 1], 1, "?")] + ls[i + 2:],
    "contig again": lambda ls, i: ls[:i] + [ls[5]] + ls[i + 1:],
    "ambiguous contig": lambda ls, i: ls[:i] + [set_field(ls[j], 0, "chrMT") for j in range(i, i + 3)] + ls[i + 3:],
    "carriage return": lambda ls, i: ls[:i] + [ls[i].replace("\n", "\r\n")] + ls[i + 1:],
}


@pytest.mark.parametrize("where", [1, 4000, 121_000])  # first record, inside a chunk, in the chr1 block (not kept)
@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_same_error_as_the_reference(tmp_path, lines, name, where):
    """The same one-line error, or (a bad code on a contig not kept, CRLF line ends, a short first
    window) the same arrays."""
    path = tmp_path / "labels.tsv"
    path.write_text("".join(MUTATIONS[name](list(lines[:125_000]), where)))
    try:
        want = reference(path)
    except InputError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        with pytest.raises(InputError) as got:
            read_dream_tsv(path, GENOME, KEEP, chunk_bytes=1 << 16)
        assert str(got.value) == str(err)
    else:
        assert name in ("bad code", "empty code", "carriage return") or (name, where) == ("shorter window", 1)
        got = read_dream_tsv(path, GENOME, KEEP, chunk_bytes=1 << 16)
        for cell in CELLS:
            np.testing.assert_array_equal(got.cumcounts[(cell, "X")], want[(cell, "X")])
