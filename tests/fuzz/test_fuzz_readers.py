"""Fuzzing the input readers: segmentation BED, blacklist BED, narrowPeak, ENCODE-DREAM label TSV
and the FASTA checks. Files near valid ones (records with odd fields, junk lines, bytes that are
not UTF-8, gzip, truncation) must be read or refused with an InputError naming the file; nothing
else may escape."""
from __future__ import annotations

import gzip
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.genome import Genome
from ebert_modelzoo.preprocessing.labels import read_dream_tsv, read_peaks
from ebert_modelzoo.preprocessing.segmentation import read_segmentation
from ebert_modelzoo.preprocessing.windows import Blacklist

LENGTHS = {"chr1": 5000, "chrX": 3000}
CONTIGS = st.sampled_from(["chr1", "chrX", "X", "1", "chr2", "", "chr1 ", "CHR1"]) | st.text(max_size=5)
NUMBERS = (st.integers(-10, 6000).map(str) | st.sampled_from(["", "1.5", "1e3", "-0", "99999999999999999999999", "٣",
                                                              " 7", "0x10"]))
TEXT = st.text(max_size=6)


JUNK_FIELD = CONTIGS | NUMBERS | TEXT


@st.composite
def near_valid(draw: st.DrawFn, kind: str) -> list[list[str]]:
    """Valid records of ``kind`` (sorted, non-overlapping tiles of the two contigs, as each format
    wants them), then up to three edits: a field replaced by junk, a field dropped or added, two
    lines swapped, a junk line."""
    rows = []
    for contig, length in (("chr1", 5000), (draw(st.sampled_from(["chrX", "X"])), 3000)):
        cuts = sorted(set(draw(st.lists(st.integers(1, length - 1), max_size=4))) | {0, length})
        for start, end in zip(cuts, cuts[1:]):
            if kind == "segmentation":
                extra = [f"E{draw(st.integers(1, 15))}"]
            elif kind == "peaks":
                extra = [".", "0", ".", "1.0", "2.0", "3.0", str(draw(st.integers(0, end - start - 1)))]
            elif kind == "dream":
                extra = [draw(st.sampled_from("UAB")) for _ in range(2)]
            else:
                extra = []
            rows.append([contig, str(start), str(end), *extra])
    for _ in range(draw(st.integers(0, 3))):
        if not rows:
            break
        i = draw(st.integers(0, len(rows) - 1))
        action = draw(st.sampled_from(["field", "drop", "add", "swap", "junk"]))
        if not rows[i] and action in ("field", "drop"):
            action = "junk"
        if action == "field":
            rows[i][draw(st.integers(0, len(rows[i]) - 1))] = draw(JUNK_FIELD)
        elif action == "drop":
            rows[i].pop()
        elif action == "add":
            rows[i].append(draw(JUNK_FIELD))
        elif action == "swap":
            j = draw(st.integers(0, len(rows) - 1))
            rows[i], rows[j] = rows[j], rows[i]
        else:
            rows.insert(i, [draw(TEXT)])
    return rows


@st.composite
def text_file(draw: st.DrawFn, kind: str, header: str = "") -> bytes:
    """Near-valid records, then maybe bytes spliced in, gzip, truncation."""
    body = ["\t".join(row) for row in draw(near_valid(kind))]
    data = (header + "".join(line + "\n" for line in body)).encode()
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    if draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
        if draw(st.integers(0, 3)) == 0:
            data = data[:draw(st.integers(0, len(data)))]
    return data


def reads_or_refuses(read, path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        read(path)
        event("read")
    except InputError as err:
        assert str(path) in str(err)
        event("refused")


@given(data=text_file("segmentation"))
def test_segmentation_bed(tmp_path, data):
    reads_or_refuses(lambda p: read_segmentation(p, LENGTHS), tmp_path / "s.bed", data)


@given(data=text_file("bed"))
def test_blacklist_bed(tmp_path, data):
    reads_or_refuses(lambda p: Blacklist(p, LENGTHS), tmp_path / "b.bed", data)


@given(data=text_file("peaks"))
def test_narrowpeak(tmp_path, data):
    reads_or_refuses(lambda p: read_peaks(p, LENGTHS), tmp_path / "p.narrowPeak", data)


@given(header=st.sampled_from(["chr\tstart\tstop\tK562\tGM12878\n"] * 4 + ["chr\tstart\tstop\tK562\n",
                               "chr\tstart\n", "CHR\tSTART\tSTOP\tA\tA\n", ""]),
       data=st.data())
def test_dream_tsv(tmp_path, header, data):
    body = data.draw(text_file("dream", header=header))
    reads_or_refuses(lambda p: read_dream_tsv(p, LENGTHS, {"chr1", "chrX"}), tmp_path / "l.tsv", body)


@st.composite
def fasta(draw: st.DrawFn) -> bytes:
    out = b""
    for name in draw(st.lists(st.sampled_from(["chr1", "chrX", "X", "a b", ""]) | TEXT, min_size=0, max_size=3)):
        seq = draw(st.text(alphabet="ACGTNacgtnRYKM-*> \r", max_size=40))
        width = draw(st.integers(1, 12))
        lines = [seq[i:i + width] for i in range(0, len(seq), width)]
        out += f">{name}\n".encode() + "".join(line + "\n" for line in lines).encode(errors="replace")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(out)))
        out = out[:at] + draw(st.binary(min_size=1, max_size=4)) + out[at:]
    return out


@given(data=fasta(), stale_index=st.booleans(), edit=st.binary(max_size=3))
def test_fasta_checks(tmp_path, data, stale_index, edit):
    """Genome(build_index) then Genome.check over every contig; a stale .fai is one built before
    the file was edited."""
    path = tmp_path / "g.fa"
    for old in (path, Path(str(path) + ".fai")):
        old.unlink(missing_ok=True)

    def read(p: Path) -> None:
        if stale_index:
            try:
                Genome(p, build_index=True)
            except InputError:
                return
            p.write_bytes(data[:len(data) // 2] + edit + data[len(data) // 2:])
        genome = Genome(p, build_index=True)
        genome.check((name, 0, length) for name, length in genome.lengths.items())
        for name, length in genome.lengths.items():
            genome.fetch(name, 0, length)

    reads_or_refuses(read, path, data)
