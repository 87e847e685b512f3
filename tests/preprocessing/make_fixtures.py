"""Regenerate tests/fixtures/ (seeded). Needs Debian `smalt-examples` (real DNA) and `tabix` (bgzip).

    apt-get install -y smalt-examples tabix
    PYTHONPATH=. python tests/preprocessing/make_fixtures.py

The DNA is real (GRCh37 chrX, 100 kb holding a 50 kb N gap); everything epigenomic is simulated for
those coordinates, since no real matched genome + epigenome slice ships in a package. The bigWigs,
BEDs and labels name the contig ``chrX`` while the FASTA names it ``X``, as Ensembl and UCSC files
disagree in the field. See tests/fixtures/PROVENANCE.md.
"""
from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import numpy as np
import pyBigWig
import pyfaidx

SOURCE = Path("/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz")
CUT_START, CUT_END = 2_048_000, 2_148_000  # 0-based on GRCh37 X; holds the N gap 2,068,238-2,118,238
OUT = Path(__file__).resolve().parents[1] / "fixtures"
LENGTH = CUT_END - CUT_START
STATES = ["1_TssA", "2_TssAFlnk", "3_TxFlnk", "4_Tx", "5_TxWk", "6_EnhG", "7_Enh", "8_ZNF/Rpts",
          "9_Het", "10_TssBiv", "11_BivFlnk", "12_EnhBiv", "13_ReprPC", "14_ReprPCWk", "15_Quies"]


def write_genome() -> None:
    with gzip.open(SOURCE, "rt") as fh:
        fh.readline()
        seq = "".join(line.strip() for line in fh)[CUT_START:CUT_END]
    fasta = OUT / "genome.fa"
    with open(fasta, "w") as fh:
        fh.write(">X GRCh37 chrX:2048001-2148000 (from smalt-examples hs37chrXtrunc.fa.gz)\n")
        fh.writelines(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60))
    for p in (OUT / "genome.fa.fai", OUT / "genome.fa.gz", OUT / "genome.fa.gz.fai", OUT / "genome.fa.gz.gzi"):
        p.unlink(missing_ok=True)
    pyfaidx.Faidx(str(fasta))  # writes genome.fa.fai
    subprocess.run(["bgzip", "-k", "-i", str(fasta)], check=True)
    pyfaidx.Faidx(str(OUT / "genome.fa.gz"))


def write_bigwig(path: Path, rng: np.random.Generator, scale: float) -> None:
    """Variable-length intervals (10-100 bp), about one in ten left out (no data)."""
    chroms, starts, ends, values = [], [], [], []
    pos = 0
    while pos < LENGTH:
        end = min(pos + int(rng.integers(10, 101)), LENGTH)
        if rng.random() > 0.1:
            chroms.append("chrX")
            starts.append(pos)
            ends.append(end)
            values.append(float(rng.lognormal(0.0, 1.0) * scale))
        pos = end
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chrX", LENGTH)], maxZooms=4)
    bw.addEntries(chroms, starts, ends=ends, values=values)
    bw.close()


def write_segmentation(path: Path, rng: np.random.Generator) -> None:
    """Dense segmentation, segments of 50-2000 bp (not bin-aligned, to exercise the midpoint rule)."""
    lines, pos = [], 0
    while pos < LENGTH:
        end = min(pos + 50 * int(rng.integers(1, 41)), LENGTH)
        lines.append(f"chrX\t{pos}\t{end}\t{STATES[int(rng.integers(0, 15))]}\t0\t.\t{pos}\t{end}\t255,0,0\n")
        pos = end
    path.write_text("".join(lines))


def write_dream_labels(path: Path, rng: np.random.Generator) -> None:
    """ENCODE-DREAM layout: 200 bp windows sliding by 50 bp; bound sites with ambiguous flanks."""
    cells = ["E003", "E017"]
    starts = np.arange(0, LENGTH - 200 + 1, 50)
    codes = np.full((len(starts), len(cells)), "U")
    for c in range(len(cells)):
        for site in rng.choice(len(starts), size=25, replace=False):
            codes[max(site - 4, 0):site + 5, c] = "A"
        for site in rng.choice(len(starts), size=25, replace=False):
            codes[max(site - 2, 0):site + 3, c] = "B"
    with gzip.open(path, "wt") as fh:
        fh.write("chr\tstart\tstop\t" + "\t".join(cells) + "\n")
        fh.writelines(f"chrX\t{s}\t{s + 200}\t" + "\t".join(row) + "\n" for s, row in zip(starts, codes))


def write_narrowpeak(path: Path, rng: np.random.Generator) -> None:
    rows = []
    for i, start in enumerate(sorted(rng.choice(LENGTH - 1000, size=30, replace=False))):
        width = int(rng.integers(150, 600))
        summit = int(rng.integers(0, width))
        rows.append(f"chrX\t{start}\t{start + width}\tpeak{i}\t{int(rng.integers(100, 1000))}\t.\t"
                    f"{rng.uniform(2, 30):.3f}\t{rng.uniform(2, 50):.3f}\t{rng.uniform(2, 50):.3f}\t{summit}\n")
    path.write_text("".join(rows))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240607)
    write_genome()
    write_bigwig(OUT / "E003.DNase.bw", rng, 2.0)
    write_bigwig(OUT / "E003.H3K27ac.bw", rng, 5.0)
    write_bigwig(OUT / "E017.DNase.bw", rng, 1.0)
    write_segmentation(OUT / "E003_15_coreMarks_segments.bed", rng)
    write_segmentation(OUT / "E017_15_coreMarks_segments.bed", rng)
    write_dream_labels(OUT / "CTCF.train.labels.tsv.gz", rng)
    write_narrowpeak(OUT / "E003.NRF1.narrowPeak", rng)
    (OUT / "blacklist.bed").write_text("chrX\t5000\t5600\tHigh Signal Region\n")
    print(f"wrote fixtures to {OUT}")


if __name__ == "__main__":
    main()
