"""Build the demo data set: real GRCh37 chrX DNA with a seeded, documented simulated epigenome.

The rules of the simulation are written out in data_processing/demo_data/README.md; this module
is their one implementation. Three steps:

``cut-inputs`` (needs the Debian package smalt-examples, the pyranges==0.1.7 wheel unpacked, and
pyjaspar; run once by a maintainer) writes the real inputs into the data folder:
    DNA       GRCh37 chrX with every base outside the stretches masked to N, record ``X``, bgzipped
    annotations  CpG islands and RefSeq TSSs of the stretches (hg19)
    motifs    the JASPAR 2024 PFMs used for TF binding, as JSON
``simulate`` reads only those shipped inputs and writes the simulated epigenome and labels:
    segmentation/<cell>_15_coreMarks_dense.bed.gz   ChromHMM 15-state dense BED (Roadmap naming)
    signal/<cell>-<assay>.fc.signal.bigWig           fold-enrichment-like signal, 100 bp steps
    labels/<TF>.labels.tsv.gz                         ENCODE-DREAM U/A/B labels, 200 bp / 50 bp
    manifest.tsv, split.yaml
``all`` runs both.

Everything the simulation draws for a stretch comes from one ``numpy.random.Generator`` seeded by
``--seed`` plus the stretch's index, in a fixed order, so the outputs are byte-identical for a seed.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyBigWig
import yaml

from ebert_modelzoo.atomic import atomic_path, atomic_write_bytes
from ebert_modelzoo.data import motifs

# The simulated stretches of GRCh37 chrX: 46.5-49.5 Mb (Xp11.3-p11.23, gene dense, with a 50 kb
# assembly gap) and 50.5-51.5 Mb, appended later to give the test more independent sites. Each is
# drawn on its own generator (seed, seed + 1), so the first stretch's draw, and with it every
# training and validation file, is as it was drawn alone. 49.5-50.5 Mb between them is left out
# (masked to N, no epigenome, labels U): its DNA served, in another draw, to screen model options.
CONTIG_FASTA = "X"  # record name of the source FASTA (GRCh37 / 1000 Genomes naming)
CONTIG_TRACKS = "chrX"  # name in the BEDs, bigWigs and labels (UCSC / Roadmap / ENCODE naming)
STRETCHES = ((46_500_000, 49_500_000), (50_500_000, 51_500_000))
REGION_START = STRETCHES[0][0]
REGION_END = STRETCHES[-1][1]
SPLIT = {
    "train": ((46_500_000, 48_750_000),),
    "validation": ((48_750_000, 49_000_000),),
    "test": ((49_000_000, 49_500_000), (50_500_000, 51_500_000)),
}
BIN = 200  # ChromHMM bin
STEP = 100  # signal resolution
LABEL_WINDOW = 200
LABEL_STRIDE = 50
DEFAULT_SEED = 20240611

CELL_TYPES = ("sim_blood1", "sim_blood2", "sim_blood3", "sim_tissue1", "sim_tissue2", "sim_tissue3")
LINEAGES = {"blood": (0, 1, 2), "tissue": (3, 4, 5)}
HELD_OUT_CELL_TYPE = "sim_tissue1"
ASSAYS = ("DNase", "H3K27ac", "H3K4me3", "H3K27me3")
MISSING_ASSAYS = {("sim_blood2", "H3K27ac"), ("sim_tissue2", "DNase"), ("sim_tissue3", "H3K27me3"),
                  ("sim_tissue1", "H3K4me3")}

# TF, JASPAR matrix id, p-value of a strong match, of a weak one (per position and strand).
# The long zinc-finger motifs get the stricter cut-off so their match counts stay comparable.
MOTIFS = (
    ("CTCF", "MA0139.1", 1e-5, 1e-4),
    ("NRF1", "MA0506.1", 1e-4, 1e-3),
    ("JUND", "MA0491.3", 1e-4, 1e-3),
    ("REST", "MA0138.3", 1e-5, 1e-4),
)
MOTIF_BACKGROUND = (0.3, 0.2, 0.2, 0.3)  # A C G T, roughly the human genome's composition
MOTIF_PSEUDOCOUNT = 0.8

STATES = ("1_TssA", "2_TssAFlnk", "3_TxFlnk", "4_Tx", "5_TxWk", "6_EnhG", "7_Enh", "8_ZNF/Rpts",
          "9_Het", "10_TssBiv", "11_BivFlnk", "12_EnhBiv", "13_ReprPC", "14_ReprPCWk", "15_Quies")
STATE_RGB = ("255,0,0", "255,69,0", "50,205,50", "0,128,0", "0,100,0", "194,225,5", "255,255,0",
             "102,205,170", "138,145,208", "205,92,92", "233,150,122", "189,183,107", "128,128,128",
             "192,192,192", "255,255,255")  # Roadmap's published colours
S = {name.split("_", 1)[1]: i for i, name in enumerate(STATES)}  # short name -> index 0..14

# Mean signal per state (index as STATES), fold-enrichment-like; accessibility adds peaks on top.
STATE_MEANS = {
    #          TssA Flnk TxF  Tx  TxWk EnhG Enh  ZNF  Het  Biv BivF EnhB RPC  RPCW Quies
    "DNase":   (3.0, 2.0, 1.2, 0.7, 0.6, 1.5, 1.5, 0.5, 0.3, 1.2, 0.9, 0.8, 0.5, 0.4, 0.3),
    "H3K27ac": (9.0, 6.0, 3.0, 0.8, 0.6, 5.0, 7.0, 0.4, 0.3, 1.0, 0.8, 1.0, 0.3, 0.3, 0.3),
    "H3K4me3": (14., 6.0, 1.5, 0.5, 0.4, 0.8, 0.7, 0.4, 0.3, 7.0, 3.0, 0.6, 0.4, 0.3, 0.3),
    "H3K27me3": (0.4, 0.5, 0.4, 0.3, 0.4, 0.5, 0.5, 0.6, 0.8, 5.0, 4.0, 3.0, 6.0, 3.0, 0.6),
}
SIGNAL_NOISE_SHAPE = {"DNase": 3.0, "H3K27ac": 2.0, "H3K4me3": 2.0, "H3K27me3": 2.0}
SIGNAL_SMOOTH_BP = {"DNase": 100.0, "H3K27ac": 300.0, "H3K4me3": 200.0, "H3K27me3": 500.0}
DNASE_PEAK_HEIGHT = 12.0  # added at accessibility 1.0


# ---------------------------------------------------------------------------------------- motifs

def log_odds(counts: dict[str, list[float]]) -> np.ndarray:
    """Log2-odds matrix [4, L] of a motifs.json ``counts`` entry, with the simulation's background
    and pseudocount (the package's scoring, ``ebert_modelzoo.data.motifs.log_odds``)."""
    return motifs.log_odds(np.array([counts[b] for b in motifs.BASES]), MOTIF_BACKGROUND,
                           MOTIF_PSEUDOCOUNT)


def pvalue_threshold(lo: np.ndarray, pvalue: float, resolution: float = 0.01) -> float:
    """Smallest score whose chance under the i.i.d. background is at most ``pvalue`` (exact, by
    convolving the per-position score distributions on a ``resolution``-bit grid)."""
    bg = np.asarray(MOTIF_BACKGROUND)
    ints = np.round(lo / resolution).astype(np.int64)
    low = int(ints.min(0).sum())
    dist = np.zeros(int(ints.max(0).sum()) - low + 1)
    dist[0] = 1.0
    offset = 0
    for j in range(ints.shape[1]):
        col_min = int(ints[:, j].min())
        new = np.zeros_like(dist)
        for b in range(4):
            shift = int(ints[b, j]) - col_min
            new[shift:] += bg[b] * dist[: len(dist) - shift]
        dist, offset = new, offset + col_min
    tail = np.cumsum(dist[::-1])[::-1]  # P(score >= grid value)
    first = int(np.argmax(tail <= pvalue))
    return round((first + offset) * resolution, 2)


def call_sites(scores: np.ndarray, threshold: float, length: int) -> np.ndarray:
    """Start positions of motif matches >= threshold, keeping the best of overlapping ones."""
    hits = np.flatnonzero(scores >= threshold)
    order = hits[np.lexsort((hits, -scores[hits]))]
    taken = np.zeros(len(scores) + length, bool)
    kept = []
    for pos in order:
        if not taken[pos: pos + length].any():
            kept.append(pos)
            taken[max(0, pos - length + 1): pos + length] = True
    return np.sort(np.asarray(kept, np.int64))


# ---------------------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class Stretch:
    """A stretch of the region that the simulation draws on its own: 0-based half-open, absolute."""

    start: int
    end: int

    @property
    def num_bins(self) -> int:
        return (self.end - self.start) // BIN

    @property
    def num_slots(self) -> int:
        return (self.end - self.start) // STEP


@dataclass
class Inputs:
    """The shipped real inputs of one stretch."""

    stretch: Stretch
    codes: np.ndarray  # uint8 [end - start], DNA codes of the stretch
    cpg: list[tuple[int, int]]  # CpG islands in the stretch, absolute 0-based half-open
    tss: list[tuple[int, str]]  # TSS position and strand
    motifs: list[dict]  # entries of motifs.json


def read_inputs(data_dir: Path, stretch: Stretch) -> Inputs:
    """Read the DNA (bgzip is gzip-compatible), annotations and motifs of ``stretch``."""
    with gzip.open(data_dir / FASTA_NAME, "rb") as handle:
        lines = handle.read().split(b"\n")
    if not lines[0].startswith(b">" + CONTIG_FASTA.encode()):
        raise ValueError(f"{data_dir / FASTA_NAME}: first record is not {CONTIG_FASTA!r}")
    seq = b"".join(lines[1:])
    codes = motifs.encode_dna(seq[stretch.start:stretch.end].decode("latin-1"))  # one char per byte
    cpg = [(int(f[1]), int(f[2])) for f in _bed_rows(data_dir / CPG_NAME)
           if stretch.start <= int(f[1]) and int(f[2]) <= stretch.end]
    tss = [(int(f[1]), f[5]) for f in _bed_rows(data_dir / TSS_NAME) if stretch.start <= int(f[1]) < stretch.end]
    entries = json.loads((data_dir / MOTIFS_NAME).read_text())["motifs"]
    return Inputs(stretch, codes, cpg, tss, entries)


def _bed_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()
            if line and not line.startswith(("#", "track", "browser"))]


FASTA_NAME = "GRCh37_chrX_masked.fa.gz"
CPG_NAME = "annotations/cpg_islands.hg19.bed"
TSS_NAME = "annotations/refseq_tss.hg19.bed"
MOTIFS_NAME = "motifs.json"


def cut_inputs(out: Path, smalt_fasta: Path, pyranges_data: Path) -> None:
    """Write the real inputs: masked DNA (bgzip + .fai + .gzi), annotations, motifs."""
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    with gzip.open(smalt_fasta, "rb") as handle:
        lines = handle.read().split(b"\n")
    header = lines[0].split()[0]
    if header != b">" + CONTIG_FASTA.encode():
        raise ValueError(f"{smalt_fasta}: first record is {header!r}, expected '>{CONTIG_FASTA}'")
    seq = b"".join(line for line in lines[1:] if not line.startswith(b">"))
    masked = bytearray(b"N" * REGION_END)
    for start, end in STRETCHES:
        masked[start:end] = seq[start:end].upper()
    outside = " and ".join(f"{start + 1}-{end}" for start, end in STRETCHES)
    plain = out / FASTA_NAME.removesuffix(".gz")
    with open(plain, "wb") as handle:
        handle.write(f">{CONTIG_FASTA} GRCh37 chrX 1-{REGION_END}, N outside {outside}\n".encode())
        for i in range(0, len(masked), 60):
            handle.write(masked[i: i + 60] + b"\n")
    for suffix in (".gz", ".gz.fai", ".gz.gzi"):
        Path(str(plain) + suffix).unlink(missing_ok=True)
    subprocess.run(["bgzip", "-l", "9", "-i", str(plain)], check=True)
    _write_fai(Path(str(plain) + ".gz"), len(masked))

    where = " and ".join(region_text(bounds) for bounds in STRETCHES)
    cpg = [f for f in _bed_rows(pyranges_data / "cpg.bed")
           if f[0] == CONTIG_TRACKS and any(a <= int(f[1]) and int(f[2]) <= b for a, b in STRETCHES)]
    with open(out / CPG_NAME, "w") as handle:
        handle.write(f"# CpG islands (UCSC cpgIslandExt, hg19) in {where}, from the\n"
                     "# pyranges==0.1.7 wheel, pyranges/example_data/cpg.bed; 4th column: CpG count\n")
        for f in sorted(cpg, key=lambda f: int(f[1])):
            handle.write("\t".join(f[:4]) + "\n")

    # RefSeq exon exports number exons in genomic order, so exon_0 starts the transcript only
    # on the + strand; transcript rows of ucsc_human.bed.gz carry their strand.
    tss = set()
    for f in _bed_rows(pyranges_data / "exons.bed"):
        if f[0] == CONTIG_TRACKS and f[5] == "+" and "_exon_0_" in f[3]:
            tss.add((int(f[1]), f[3].split("_exon_")[0], "+"))
    with gzip.open(pyranges_data / "ucsc_human.bed.gz", "rt") as handle:
        for line in handle:
            f = line.rstrip("\n").split("\t")
            if f[0] == CONTIG_TRACKS and f[3] == "transcript":
                pos = int(f[1]) if f[6] == "+" else int(f[2]) - 1
                tss.add((pos, f[8], f[6]))
    with open(out / TSS_NAME, "w") as handle:
        handle.write(f"# RefSeq TSSs (hg19) in {where} from the pyranges==0.1.7 wheel:\n"
                     "# + strand exon_0 starts of example_data/exons.bed, transcript ends of ucsc_human.bed.gz\n")
        for pos, name, strand in sorted(tss):
            if any(a <= pos < b for a, b in STRETCHES):
                handle.write(f"{CONTIG_TRACKS}\t{pos}\t{pos + 1}\t{name}\t0\t{strand}\n")

    from pyjaspar import jaspardb  # only for refreshing motifs.json
    import pyjaspar

    db = jaspardb(release="JASPAR2024")
    entries = []
    for tf, matrix_id, pvalue, pvalue_weak in MOTIFS:
        motif = db.fetch_motif_by_id(matrix_id)
        counts = {base: [float(x) for x in motif.counts[base]] for base in "ACGT"}
        lo = log_odds(counts)
        entries.append({"tf": tf, "matrix_id": matrix_id, "name": motif.name,
                        "species": list(motif.species), "counts": counts,
                        "pvalue": pvalue, "threshold": pvalue_threshold(lo, pvalue),
                        "pvalue_weak": pvalue_weak, "threshold_weak": pvalue_threshold(lo, pvalue_weak)})
    doc = {
        "source": f"JASPAR2024 CORE vertebrates via pyjaspar {pyjaspar.__version__}",
        "background": list(MOTIF_BACKGROUND), "pseudocount": MOTIF_PSEUDOCOUNT,
        "score": "log2 odds of (counts + pseudocount * background) / (column total + pseudocount) "
                 "over background, best of both strands; thresholds are exact p-values under an "
                 "i.i.d. background on a 0.01-bit grid",
        "motifs": entries,
    }
    (out / MOTIFS_NAME).write_text(json.dumps(doc, indent=1) + "\n")


def _write_fai(path: Path, length: int) -> None:
    """A .fai for the one record (offset of the first base in the uncompressed file)."""
    with gzip.open(path, "rb") as handle:
        header = handle.readline()
    path.with_name(path.name + ".fai").write_text(
        f"{CONTIG_FASTA}\t{length}\t{len(header)}\t60\t61\n")


# ------------------------------------------------------------------------------------ simulation

SLOTS_PER_BIN = BIN // STEP
NUM_CELLS = len(CELL_TYPES)


@dataclass
class Element:
    """A regulatory element of the latent model, in slots (100 bp) relative to its stretch's start."""

    kind: str  # promoter | enhancer | CTCF | REST
    start: int
    end: int
    active: np.ndarray  # bool [C]
    strength: float


@dataclass
class Epigenome:
    """The latent truth: states per bin and accessibility per slot, for every cell type."""

    states: np.ndarray  # uint8 [C, bins], index into STATES
    access: np.ndarray  # float [C, slots] in [0, 1]
    gap_slots: np.ndarray  # bool [slots], assembly gap (N)


def activity_pattern(rng: np.random.Generator, shared: float, lineage: float) -> np.ndarray:
    """Cell types an element is active in: shared by all, by one lineage, or cell-type specific."""
    u = rng.random()
    if u < shared:
        return rng.random(NUM_CELLS) < 0.9
    if u < shared + lineage:
        members = np.zeros(NUM_CELLS, bool)
        members[list(LINEAGES[("blood", "tissue")[int(rng.integers(2))]])] = True
        return np.where(members, rng.random(NUM_CELLS) < 0.85, rng.random(NUM_CELLS) < 0.05)
    active = np.zeros(NUM_CELLS, bool)
    active[rng.integers(NUM_CELLS)] = True
    if rng.random() < 0.3:
        active[rng.integers(NUM_CELLS)] = True
    return active


def paint(states: np.ndarray, c: int, start: int, end: int, state: str) -> None:
    """Set bins [start, end) of cell type c (clipped to the stretch) to a state."""
    states[c, max(0, start): max(0, min(states.shape[1], end))] = S[state]


def simulate_epigenome(rng: np.random.Generator, inputs: Inputs, sites: dict[str, np.ndarray]
                       ) -> tuple[Epigenome, list[Element]]:
    """Draw promoters' activity, enhancers, insulators, domains; paint states and accessibility.

    Element counts are per 3 Mb (the first stretch's length), scaled to the stretch's length."""
    stretch = inputs.stretch
    num_bins, num_slots = stretch.num_bins, stretch.num_slots
    per_3mb = (stretch.end - stretch.start) / 3_000_000
    gap_slots = (inputs.codes == 4).reshape(num_slots, STEP).mean(1) > 0.5
    gap_bins = gap_slots.reshape(num_bins, SLOTS_PER_BIN).any(1)
    elements: list[Element] = []

    # Promoters: CpG islands and annotated TSSs (+-500 bp), merged.
    spans = [(a - stretch.start, b - stretch.start) for a, b in inputs.cpg]
    spans += [(p - stretch.start - 500, p - stretch.start + 500) for p, _ in inputs.tss]
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    strand_of = {p - stretch.start: st for p, st in inputs.tss}
    promoters = []
    for a, b in merged:
        strands = [st for p, st in strand_of.items() if a <= p < b]
        strand = strands[0] if strands else ("+", "-")[int(rng.integers(2))]
        u = rng.random()
        kind = "housekeeping" if u < 0.6 else "variable" if u < 0.85 else "polycomb"
        if kind == "housekeeping":
            active = rng.random(NUM_CELLS) < 0.97
        elif kind == "variable":
            active = activity_pattern(rng, 0.0, 0.5)
        else:
            active = np.zeros(NUM_CELLS, bool)
            if rng.random() < 0.3:
                active[rng.integers(NUM_CELLS)] = True
        gene_bp = int(min(150_000, rng.lognormal(np.log(15_000), 0.9)))
        high = rng.random() < 0.3
        promoters.append((a // STEP, -(-b // STEP), strand, kind, active, gene_bp // BIN, high))
        elements.append(Element("promoter", a // STEP, -(-b // STEP), active, 1.0))

    # Insulators and RE1 sites: strong motif matches that the factor itself keeps open.
    for tf, p_capable, p_constitutive in (("CTCF", 0.6, 0.8), ("REST", 0.5, 1.0)):
        for pos in sites[tf]:
            slot = int(pos) // STEP
            if gap_slots[slot] or rng.random() >= p_capable:
                continue
            if rng.random() < p_constitutive:
                active = rng.random(NUM_CELLS) < 0.95
            else:
                active = activity_pattern(rng, 0.0, 0.5)
            elements.append(Element(tf, slot, slot + 1, active, float(rng.uniform(0.6, 1.0))))

    # Enhancers: half seeded on AP-1 (JUND) motifs, half anywhere; 200-600 bp.
    promoter_slot = np.zeros(num_slots, bool)
    for a, b, *_ in promoters:
        promoter_slot[max(0, a - 10): b + 10] = True
    ap1 = [int(p) // STEP for p in sites["JUND"] if not promoter_slot[int(p) // STEP]]
    ap1 = [ap1[i] for i in np.sort(rng.choice(len(ap1), size=min(round(300 * per_3mb), len(ap1)), replace=False))]
    free = np.flatnonzero(~promoter_slot & ~gap_slots)
    anywhere = np.sort(rng.choice(free, size=round(300 * per_3mb), replace=False)).tolist()
    enhancers = []
    for centre in ap1 + anywhere:
        width = int(rng.integers(2, 7))
        start = max(0, centre - width // 2)
        active = activity_pattern(rng, 0.15, 0.35)
        poised = ~active & (rng.random(NUM_CELLS) < 0.1)
        strength = float(rng.uniform(0.5, 1.0))
        enhancers.append((start, start + width, active, poised, strength))
        elements.append(Element("enhancer", start, start + width, active, strength))

    # Broad domains: heterochromatin and ZNF/repeat blocks, in bins.
    het = []
    for _ in range(round(8 * per_3mb)):
        length = int(min(200_000, rng.lognormal(np.log(40_000), 0.7))) // BIN
        start = int(rng.integers(0, num_bins - length))
        het.append((start, start + length, rng.random(NUM_CELLS) < 0.7))
    znf = []
    for _ in range(round(5 * per_3mb)):
        length = int(rng.integers(10, 60))
        start = int(rng.integers(0, num_bins - length))
        znf.append((start, start + length))

    states = np.full((NUM_CELLS, num_bins), S["Quies"], np.uint8)
    access = np.zeros((NUM_CELLS, num_slots))
    for c in range(NUM_CELLS):
        for a, b, present in het:
            if present[c]:
                paint(states, c, a, b, "Het")
        for a, b in znf:
            paint(states, c, a, b, "ZNF/Rpts")
        body = np.zeros(num_bins, bool)
        for a, b, strand, kind, active, gene_bins, high in promoters:
            ba, bb = a // SLOTS_PER_BIN, -(-b // SLOTS_PER_BIN)
            if kind == "polycomb" and not active[c]:
                reach = int(rng.integers(25, 150))
                paint(states, c, ba - reach, bb + reach, "ReprPCWk")
                paint(states, c, ba - reach // 3, bb + reach // 3, "ReprPC")
            elif active[c]:
                lo_, hi_ = (bb + 1, bb + 1 + gene_bins) if strand == "+" else (ba - 1 - gene_bins, ba - 1)
                paint(states, c, lo_, hi_, "Tx" if high else "TxWk")
                first = (lo_, lo_ + 3) if strand == "+" else (hi_ - 3, hi_)
                paint(states, c, *first, "TxFlnk")
                body[max(0, lo_): max(0, hi_)] = True
        for a, b, active, poised, strength in enhancers:
            ba, bb = a // SLOTS_PER_BIN, -(-b // SLOTS_PER_BIN)
            if active[c]:
                in_gene = body[ba: bb].any()
                paint(states, c, ba, bb, "EnhG" if in_gene else "Enh")
                access[c, a:b] = np.maximum(access[c, a:b], strength * (0.7 if in_gene else 1.0))
            elif poised[c]:
                paint(states, c, ba, bb, "EnhBiv")
                access[c, a:b] = np.maximum(access[c, a:b], 0.1)
        for a, b, strand, kind, active, gene_bins, high in promoters:
            ba, bb = a // SLOTS_PER_BIN, -(-b // SLOTS_PER_BIN)
            if active[c]:
                paint(states, c, ba - 1, bb + 1, "TssAFlnk")
                paint(states, c, ba, bb, "TssA")
                access[c, max(0, a - 2): b + 2] = np.maximum(access[c, max(0, a - 2): b + 2], 0.4)
                access[c, a:b] = 1.0
            elif kind == "polycomb":
                paint(states, c, ba - 1, bb + 1, "BivFlnk")
                paint(states, c, ba, bb, "TssBiv")
                access[c, a:b] = np.maximum(access[c, a:b], 0.15)
        for el in elements:
            if el.kind in ("CTCF", "REST") and el.active[c]:
                access[c, el.start] = max(access[c, el.start], 0.9 * el.strength)
    # Segmentation noise: 1% of bins called as a neighbouring weak state.
    flip = rng.random(states.shape) < 0.01
    weak = np.array([S["TxWk"], S["Het"], S["ReprPCWk"], S["Quies"]], np.uint8)
    states = np.where(flip, weak[rng.integers(0, 4, states.shape)], states).astype(np.uint8)
    states[:, gap_bins] = S["Quies"]
    access[:, gap_slots] = 0.0
    return Epigenome(states, access, gap_slots), elements


# --------------------------------------------------------------------------------------- binding

P_BIND_MAX = 0.8  # chance a strong, fully accessible motif site is bound
P_BIND_WEAK = 0.1  # the same for a weak match (p < 1e-3 but not 1e-4)
P_BIND_HOT = 0.02  # chance of motif-less (indirect) binding at an active promoter
AFFINITY_WEIGHT = 0.75  # share of a site's binding draw that is the same in every cell type
P_ONLY_RELAXED = 0.15  # bound sites seen only as a relaxed peak ('A' windows)
CORE_HALF_BP = 50  # conservative peak: site centre +- 50 bp ('B')
RELAXED_HALF_BP = 200  # relaxed peak: site centre +- 200 bp ('A' where not 'B')


def simulate_binding(rng: np.random.Generator, epi: Epigenome, strong: np.ndarray, weak: np.ndarray,
                     length: int, elements: list[Element]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Bound site centres per cell type, split into conservative ('B') and relaxed-only ('A')."""
    centres_strong = strong + length // 2
    centres_weak = weak + length // 2
    promoter_centres = np.array([(el.start + el.end) * STEP // 2 for el in elements if el.kind == "promoter"])
    promoter_active = np.array([el.active for el in elements if el.kind == "promoter"])
    # A site's affinity is shared by all cell types, so strong accessible sites are bound
    # consistently; the cell-type draw adds the per-experiment noise.
    affinity_strong = rng.random(len(strong))
    affinity_weak = rng.random(len(weak))

    def draw(affinity: np.ndarray) -> np.ndarray:
        return AFFINITY_WEIGHT * affinity + (1 - AFFINITY_WEIGHT) * rng.random(len(affinity))

    core, relaxed = [], []
    for c in range(NUM_CELLS):
        a_strong = epi.access[c, centres_strong // STEP]
        a_weak = epi.access[c, centres_weak // STEP]
        bound_strong = draw(affinity_strong) < P_BIND_MAX * a_strong
        bound_weak = draw(affinity_weak) < P_BIND_WEAK * a_weak
        hot = promoter_active[:, c] & (rng.random(len(promoter_centres)) < P_BIND_HOT)
        centres = np.concatenate([centres_strong[bound_strong], centres_weak[bound_weak],
                                  promoter_centres[hot]])
        only_relaxed = np.concatenate([rng.random(bound_strong.sum()) < P_ONLY_RELAXED,
                                       rng.random(bound_weak.sum()) < 0.5,
                                       np.zeros(hot.sum(), bool)])
        order = np.argsort(centres, kind="stable")
        core.append(centres[order][~only_relaxed[order]])
        relaxed.append(centres[order])
    return core, relaxed


def window_labels(core: np.ndarray, relaxed: np.ndarray, gap_slots: np.ndarray) -> np.ndarray:
    """ENCODE-DREAM labels per window of the region (uint8 codes of b'UAB'): B overlaps a
    conservative peak, A overlaps only a relaxed one, U otherwise (windows touching the assembly
    gap are U). Centres are bp and ``gap_slots`` 100 bp slots from REGION_START."""
    res = LABEL_STRIDE
    n_slots = (REGION_END - REGION_START) // res
    per_window = LABEL_WINDOW // res
    n_windows = (REGION_END - REGION_START - LABEL_WINDOW) // LABEL_STRIDE + 1

    def covered(centres: np.ndarray, half: int) -> np.ndarray:
        marks = np.zeros(n_slots + 1, np.int64)
        first = np.clip((centres - half) // res, 0, n_slots)
        last = np.clip(-(-(centres + half) // res), 0, n_slots)
        np.add.at(marks, first, 1)
        np.add.at(marks, last, -1)
        slot_hit = np.cumsum(marks)[:n_slots] > 0
        hits = np.concatenate([[0], np.cumsum(slot_hit)])
        return hits[per_window: per_window + n_windows] - hits[:n_windows] > 0

    gap50 = np.repeat(gap_slots, STEP // res)
    gap_hits = np.concatenate([[0], np.cumsum(gap50)])
    in_gap = gap_hits[per_window: per_window + n_windows] - gap_hits[:n_windows] > 0
    codes = np.full(n_windows, ord("U"), np.uint8)
    codes[covered(relaxed, RELAXED_HALF_BP)] = ord("A")
    codes[covered(core, CORE_HALF_BP)] = ord("B")
    codes[in_gap] = ord("U")
    return codes


# ---------------------------------------------------------------------------------------- signal

def gaussian_smooth(x: np.ndarray, sigma_slots: float) -> np.ndarray:
    """Smooth along the last axis with a truncated Gaussian kernel (edges padded by reflection)."""
    half = max(1, int(3 * sigma_slots))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_slots) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], mode="reflect")
    return np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="valid"), -1, padded)


def simulate_signal(rng: np.random.Generator, epi: Epigenome, assay: str, c: int,
                    bound_centres: np.ndarray) -> np.ndarray:
    """One track [slots] of a stretch: state means (smoothed) + accessibility peaks, gamma noise, 0.1
    steps; NaN over the assembly gap."""
    mean = np.asarray(STATE_MEANS[assay])[np.repeat(epi.states[c], SLOTS_PER_BIN)]
    mean = gaussian_smooth(mean[None], SIGNAL_SMOOTH_BP[assay] / STEP)[0]
    access = epi.access[c].copy()
    access[bound_centres // STEP] += 0.3  # bound factors deepen the hypersensitive site
    if assay == "DNase":
        mean = mean + DNASE_PEAK_HEIGHT * gaussian_smooth(access[None], 1.0)[0]
    elif assay == "H3K27ac":
        mean = mean + 3.0 * gaussian_smooth(access[None], 4.0)[0]
    shape = SIGNAL_NOISE_SHAPE[assay]
    noisy = mean * rng.gamma(shape, 1.0 / shape, len(epi.gap_slots))
    noisy = np.convolve(noisy, [0.25, 0.5, 0.25], mode="same")
    values = np.round(noisy * 10.0) / 10.0
    values[epi.gap_slots] = np.nan
    return values


# --------------------------------------------------------------------------------------- writers

def gzip_bytes(text: str) -> bytes:
    """Gzip with no file name and mtime 0, so equal text gives equal bytes."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as handle:
        handle.write(text.encode())
    return raw.getvalue()


def segmentation_bed(states: np.ndarray, cell: str) -> str:
    """Dense ChromHMM BED as Roadmap publishes it: track line, then merged runs with itemRgb."""
    change = np.flatnonzero(np.diff(states)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(states)]])
    lines = [f'track name="{cell}_15_coreMarks_dense" description="{cell} simulated ChromHMM '
             f'15-state segmentation (EBERT demo)" visibility=1 itemRgb="On"']
    for a, b in zip(starts, ends):
        s, e = REGION_START + int(a) * BIN, REGION_START + int(b) * BIN
        state = int(states[a])
        lines.append(f"{CONTIG_TRACKS}\t{s}\t{e}\t{STATES[state]}\t0\t.\t{s}\t{e}\t{STATE_RGB[state]}")
    return "\n".join(lines) + "\n"


def write_bigwig(path: Path, values: np.ndarray) -> None:
    """Write a track as fixed-step bigWig sections over its non-NaN runs."""
    ok = ~np.isnan(values)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    with atomic_path(path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        bw.addHeader([(CONTIG_TRACKS, REGION_END)], maxZooms=0)
        for a, b in zip(edges[::2], edges[1::2]):
            bw.addEntries(CONTIG_TRACKS, REGION_START + int(a) * STEP,
                          values=values[a:b].astype(np.float64).tolist(), span=STEP, step=STEP)
        bw.close()


def labels_tsv(codes: np.ndarray) -> str:
    """ENCODE-DREAM label table: chr start stop, one U/A/B column per cell type."""
    starts = REGION_START + LABEL_STRIDE * np.arange(codes.shape[1])
    cols = [codes[c].view("S1").astype(str) for c in range(NUM_CELLS)]
    rows = ["\t".join(("chr", "start", "stop") + CELL_TYPES)]
    rows += [f"{CONTIG_TRACKS}\t{s}\t{s + LABEL_WINDOW}\t" + "\t".join(v)
             for s, v in zip(starts.tolist(), zip(*cols))]
    return "\n".join(rows) + "\n"


def region_text(bounds: tuple[int, int]) -> str:
    return f"{CONTIG_TRACKS}:{bounds[0]}-{bounds[1]}"


def split_yaml() -> str:
    """The evaluation design: held-out stretch and held-out cell type, file locations."""
    doc = {
        "fasta": FASTA_NAME,
        "fasta_contig": CONTIG_FASTA,
        "tracks_contig": CONTIG_TRACKS,
        "stretches": [region_text(bounds) for bounds in STRETCHES],
        "bin_size": BIN,
        "cell_types": list(CELL_TYPES),
        "labels": {tf: f"labels/{tf}.labels.tsv.gz" for tf, *_ in MOTIFS},
        "split": {
            "train": {"regions": [region_text(b) for b in SPLIT["train"]],
                      "cell_types": [c for c in CELL_TYPES if c != HELD_OUT_CELL_TYPE]},
            "validation": {"regions": [region_text(b) for b in SPLIT["validation"]],
                           "cell_types": [c for c in CELL_TYPES if c != HELD_OUT_CELL_TYPE]},
            "test": {"regions": [region_text(b) for b in SPLIT["test"]], "cell_types": [HELD_OUT_CELL_TYPE]},
        },
    }
    return "# Written by data_processing/simulate_demo_data.py; see README.md.\n" + yaml.safe_dump(
        doc, sort_keys=False)


def manifest_tsv() -> str:
    """One row per epigenome file: cell type, assay, path relative to the data folder."""
    rows = ["cell_type\tassay\tfile"]
    for cell in CELL_TYPES:
        rows.append(f"{cell}\tChromHMM_15state\tsegmentation/{cell}_15_coreMarks_dense.bed.gz")
        for assay in ASSAYS:
            if (cell, assay) not in MISSING_ASSAYS:
                rows.append(f"{cell}\t{assay}\tsignal/{cell}-{assay}.fc.signal.bigWig")
    return "\n".join(rows) + "\n"


@dataclass
class StretchDraw:
    """What the simulation drew for one stretch; bound centres are bp from REGION_START."""

    epi: Epigenome
    core: dict[str, list[np.ndarray]]  # TF -> per cell type, conservative peak centres
    relaxed: dict[str, list[np.ndarray]]  # TF -> per cell type, every bound centre
    signal: dict[tuple[int, str], np.ndarray]  # (cell index, assay) -> [slots]


def simulate_stretch(inputs: Inputs, rng: np.random.Generator) -> StretchDraw:
    """Draw the epigenome, the binding of every TF and every track of one stretch, in a fixed order."""
    strong, weak, lengths = {}, {}, {}
    for entry in inputs.motifs:
        lo = log_odds(entry["counts"])
        scores = motifs.scan(inputs.codes, lo, np.float64)  # float64: thresholds and ties are exact
        strong[entry["tf"]] = call_sites(scores, entry["threshold"], lo.shape[1])
        weak_all = call_sites(scores, entry["threshold_weak"], lo.shape[1])
        weak[entry["tf"]] = weak_all[scores[weak_all] < entry["threshold"]]
        lengths[entry["tf"]] = lo.shape[1]
    epi, elements = simulate_epigenome(rng, inputs, strong)
    offset = inputs.stretch.start - REGION_START
    core, relaxed = {}, {}
    for entry in inputs.motifs:
        tf = entry["tf"]
        tf_core, tf_relaxed = simulate_binding(rng, epi, strong[tf], weak[tf], lengths[tf], elements)
        core[tf] = [centres + offset for centres in tf_core]
        relaxed[tf] = [centres + offset for centres in tf_relaxed]
    signal = {}
    for c in range(NUM_CELLS):
        bound = np.concatenate([relaxed[tf][c] for tf in relaxed]) - offset
        for assay in ASSAYS:
            signal[c, assay] = simulate_signal(rng, epi, assay, c, bound)  # drawn even when not written
    return StretchDraw(epi, core, relaxed, signal)


def over_region(parts: list[np.ndarray], unit: int, fill: object) -> np.ndarray:
    """One array over the whole region from each stretch's array in ``unit`` bp steps; ``fill``
    between the stretches."""
    whole = np.full((REGION_END - REGION_START) // unit, fill, dtype=parts[0].dtype)
    for (start, end), part in zip(STRETCHES, parts):
        whole[(start - REGION_START) // unit: (end - REGION_START) // unit] = part
    return whole


def simulate(data_dir: Path, out: Path, seed: int) -> None:
    """Simulate the epigenome and labels from the shipped inputs in ``data_dir`` into ``out``:
    each stretch on its own generator (seed + its index), the files over the whole region, which
    between the stretches is like an assembly gap (Quies, no signal, labels U)."""
    draws = [simulate_stretch(read_inputs(data_dir, Stretch(*bounds)), np.random.default_rng(seed + i))
             for i, bounds in enumerate(STRETCHES)]
    gap_slots = over_region([d.epi.gap_slots for d in draws], STEP, True)
    for tf in draws[0].core:
        codes = np.stack([window_labels(np.concatenate([d.core[tf][c] for d in draws]),
                                        np.concatenate([d.relaxed[tf][c] for d in draws]), gap_slots)
                          for c in range(NUM_CELLS)])
        atomic_write_bytes(out / f"labels/{tf}.labels.tsv.gz", gzip_bytes(labels_tsv(codes)))
    for c, cell in enumerate(CELL_TYPES):
        states = over_region([d.epi.states[c] for d in draws], BIN, S["Quies"])
        atomic_write_bytes(out / f"segmentation/{cell}_15_coreMarks_dense.bed.gz",
                           gzip_bytes(segmentation_bed(states, cell)))
        for assay in ASSAYS:
            if (cell, assay) not in MISSING_ASSAYS:
                write_bigwig(out / f"signal/{cell}-{assay}.fc.signal.bigWig",
                             over_region([d.signal[c, assay] for d in draws], STEP, np.nan))
    atomic_write_bytes(out / "manifest.tsv", manifest_tsv().encode())
    atomic_write_bytes(out / "split.yaml", split_yaml().encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("cut-inputs", "simulate", "all"))
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).parent / "demo_data",
                        help="folder with the real inputs (and the default output folder)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: --data-dir)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--smalt-fasta", type=Path,
                        default=Path("/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz"))
    parser.add_argument("--pyranges-data", type=Path, default=None,
                        help="pyranges/example_data of the unpacked pyranges==0.1.7 wheel")
    args = parser.parse_args(argv)
    out = args.out or args.data_dir
    try:
        if args.step in ("cut-inputs", "all"):
            if args.pyranges_data is None:
                raise ValueError("cut-inputs needs --pyranges-data (pip download --no-deps "
                                 "pyranges==0.1.7, unzip, point at pyranges/example_data)")
            for path in (args.smalt_fasta, args.pyranges_data):
                if not path.exists():
                    raise FileNotFoundError(f"{path}: not found")
            cut_inputs(args.data_dir, args.smalt_fasta, args.pyranges_data)
        if args.step in ("simulate", "all"):
            for name in (FASTA_NAME, CPG_NAME, TSS_NAME, MOTIFS_NAME):
                if not (args.data_dir / name).exists():
                    raise FileNotFoundError(f"{args.data_dir / name}: not found (run cut-inputs first)")
            simulate(args.data_dir, out, args.seed)
    except (ValueError, FileNotFoundError, subprocess.CalledProcessError) as err:
        print(f"simulate_demo_data: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
