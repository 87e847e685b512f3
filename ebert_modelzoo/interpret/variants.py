"""Variant effects per cell type: a VCF in, for each variant x cell type x label the logit
(log-odds) of the reference and of the alternative window and their difference, TSV out.

A variant is scored in the split window that holds it with its centre nearest the variant; the
epigenome is the cell type's own, or with ``epigenome_of`` another cell type's for the same DNA
("what if this cell type had that one's chromatin?"; the cell-type embedding, if the model has one,
stays the scored cell type's). Reference windows are scored once per (window, cell type) and the
alternatives in batches across variants.

Substitutions of any length (REF and ALT of equal length) are scored; indels, symbolic and
missing alleles, and variants outside the split's windows are skipped and counted. A REF that
disagrees with the stored DNA is an error naming the VCF line (a different assembly?), except
over stored N bases (skipped). VCF contig names may differ from the split's by a "chr" prefix.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tqdm.auto import tqdm

from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.data.motifs import N_CODE, encode_dna
from ebert_modelzoo.errors import InterpretError
from ebert_modelzoo.interpret.scoring import Samples, Scorer

CHUNK = 4096
COLUMNS = ("chrom", "pos", "id", "ref", "alt", "cell_type", "epigenome_of", "label", "ref_logit", "alt_logit",
           "log_odds_diff", "ref_prob", "alt_prob")


@dataclass(frozen=True)
class Variant:
    """One ALT allele of a VCF record, placed in a window."""

    chrom: str
    pos: int
    """1-based, as in the VCF."""
    id: str
    ref: str
    alt: str
    window: int
    offset: int
    """0-based position of the variant's first base in the window."""


@dataclass
class VariantSet:
    variants: list[Variant]
    skipped: Counter


def read_variants(path: str | Path, scorer: Scorer) -> VariantSet:
    """The scorable ALT alleles of the VCF at ``path`` (cyvcf2), each placed in a window.

    Raises:
        FileNotFoundError: no such file.
        InterpretError: the file is not a readable VCF, or a REF disagrees with the stored DNA.
    """
    from cyvcf2 import VCF  # the optional `interpret` extra

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: VCF not found")
    try:
        reader = VCF(str(path))
    except (OSError, ValueError) as err:
        raise InterpretError(f"{path}: not a readable VCF ({err})") from None
    placed, skipped = [], Counter()
    try:
        for number, record in enumerate(reader, 1):
            ref = record.REF.upper()
            for alt in record.ALT:
                alt = alt.upper()
                if len(alt) != len(ref) or not set(alt + ref) <= set("ACGT"):
                    skipped["not a substitution of A/C/G/T bases (indel, symbolic or missing allele)"] += 1
                    continue
                start = record.POS - 1
                windows = scorer.windows_covering(record.CHROM, start, start + len(ref))
                if not windows.size:
                    skipped["outside the split's windows"] += 1
                    continue
                window = int(windows[0])
                placed.append((number, Variant(record.CHROM, record.POS, record.ID or ".", ref, alt, window,
                                               start - int(scorer.window_start[window]))))
    except (OSError, ValueError) as err:
        raise InterpretError(f"{path}: unreadable VCF record ({err})") from None
    finally:
        reader.close()
    # the REFs against the stored DNA, every window read once
    windows = np.unique([v.window for _, v in placed]).astype(np.int64)
    codes = scorer.codes(windows) if windows.size else np.zeros((0, scorer.sequence_length), np.uint8)
    variants = []
    for number, v in placed:
        stored = codes[np.searchsorted(windows, v.window), v.offset:v.offset + len(v.ref)]
        if (stored == N_CODE).any():
            skipped["over N in the stored DNA"] += 1
            continue
        if not np.array_equal(stored, encode_dna(v.ref)):
            seen = "".join("ACGTN"[c] for c in stored)
            raise InterpretError(f"{path}: record {number} ({v.chrom}:{v.pos}): REF {v.ref} but the split's DNA "
                                 f"has {seen} there (another assembly?)")
        variants.append(v)
    return VariantSet(variants, skipped)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def alt_codes(scorer: Scorer, variants: Sequence[Variant]) -> np.ndarray:
    """[n, S] base codes of each variant's window with its ALT in place."""
    codes = scorer.codes(np.array([v.window for v in variants], dtype=np.int64))
    for row, v in enumerate(variants):
        codes[row, v.offset:v.offset + len(v.alt)] = encode_dna(v.alt)
    return codes


def score_variants(scorer: Scorer, variants: Sequence[Variant], cells: Sequence[int],
                   epigenome_of: Optional[int] = None, progress: bool = True,
                   chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(ref, alt) logits [n, C, K] of ``variants`` in cell types ``cells``, batched; ``chunk``
    variants at a time bound the memory of the edited windows."""
    cells = np.asarray(cells, dtype=np.int64)
    epi = cells if epigenome_of is None else np.full(cells.size, epigenome_of)
    refs, alts = [], []
    starts = range(0, len(variants), chunk)
    if progress:
        starts = tqdm(starts, desc="variants", unit=f"x{chunk}", leave=False)
    for start in starts:
        piece = variants[start:start + chunk]
        n = len(piece)
        windows = np.array([v.window for v in piece], dtype=np.int64)
        unique, inverse = np.unique(windows, return_inverse=True)
        ref_samples = Samples(np.repeat(unique, cells.size), np.tile(cells, unique.size), np.tile(epi, unique.size))
        refs.append(scorer.logits(ref_samples).reshape(unique.size, cells.size, -1)[inverse])
        codes = np.repeat(alt_codes(scorer, piece), cells.size, axis=0)
        alt_samples = Samples(np.repeat(windows, cells.size), np.tile(cells, n), np.tile(epi, n), codes)
        alts.append(scorer.logits(alt_samples).reshape(n, cells.size, -1))
    return np.concatenate(refs), np.concatenate(alts)


def write_effects(path: str | Path, scorer: Scorer, variants: Sequence[Variant], cells: Sequence[int],
                  ref: np.ndarray, alt: np.ndarray, epigenome_of: Optional[int] = None) -> int:
    """The TSV (COLUMNS), one row per variant x cell type x label, largest |log_odds_diff| first;
    returns the number of rows."""
    diff = alt - ref
    n, c, k = diff.shape
    order = np.argsort(-np.abs(diff).ravel(), kind="stable")
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for flat in order:
            i, j, label = np.unravel_index(flat, diff.shape)
            v, cell = variants[i], scorer.cell_types[cells[j]]
            writer.writerow([v.chrom, v.pos, v.id, v.ref, v.alt, cell,
                             scorer.cell_types[epigenome_of] if epigenome_of is not None else cell,
                             scorer.label_names[label], f"{ref[i, j, label]:.5g}", f"{alt[i, j, label]:.5g}",
                             f"{diff[i, j, label]:.5g}", f"{_sigmoid(ref[i, j, label]):.5g}",
                             f"{_sigmoid(alt[i, j, label]):.5g}"])
    return n * c * k
