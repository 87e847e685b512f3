"""Genome FASTA access (pyfaidx) and contig-name matching between files (``X`` vs ``chrX``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional

import pyfaidx

from ebert_modelzoo.preprocessing.errors import InputError

log = logging.getLogger(__name__)

_MITO = ("chrM", "MT", "chrMT", "M")


def _candidates(name: str) -> list[str]:
    """Spellings of a contig name in other naming conventions (UCSC ``chr1`` vs Ensembl ``1``)."""
    if name in _MITO:
        return [m for m in _MITO if m != name]
    return [name[3:]] if name.startswith("chr") else ["chr" + name]


def match_contig(name: str, known: Iterable[str]) -> Optional[str]:
    """The name in ``known`` that ``name`` refers to: itself, or its other spelling if exactly one
    exists; None if neither exists.

    Raises:
        InputError: more than one spelling exists, so the match is ambiguous.
    """
    known = set(known)
    if name in known:
        return name
    hits = [c for c in _candidates(name) if c in known]
    if len(hits) > 1:
        raise InputError(f"contig {name!r} matches several names {hits}; rename the contigs")
    return hits[0] if hits else None


class ContigMap:
    """Maps one file's contig names onto the genome's, logging each renaming once."""

    def __init__(self, source: str, file_names: Iterable[str], genome_names: Iterable[str],
                 announce: bool = True) -> None:
        self.source = source
        genome_names = list(genome_names)
        self.to_genome: dict[str, str] = {}
        for name in file_names:
            target = match_contig(name, genome_names)
            if target is not None:
                self.to_genome[name] = target
        self.from_genome = {g: f for f, g in self.to_genome.items()}
        renamed = {f: g for f, g in self.to_genome.items() if f != g}
        if renamed and announce:
            shown = ", ".join(f"{f}->{g}" for f, g in list(renamed.items())[:4])
            log.info("%s: contig names mapped to the genome's (%s%s)", source, shown,
                     ", ..." if len(renamed) > 4 else "")


class Genome:
    """A FASTA opened with pyfaidx; ``fetch`` returns upper-cased bytes of a 0-based half-open range."""

    def __init__(self, path: str | Path, build_index: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: genome FASTA not found")
        fai = Path(str(self.path) + ".fai")
        if not fai.is_file() and not build_index:
            raise InputError(
                f"{self.path}: no .fai index beside the FASTA; run `samtools faidx {self.path}` "
                "or set genome.build_index: true"
            )
        try:
            self._fasta = pyfaidx.Fasta(str(self.path), sequence_always_upper=False, as_raw=True,
                                        rebuild=False, build_index=build_index)
        except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, ValueError, OSError) as err:
            raise InputError(f"{self.path}: cannot read the FASTA or its index: {err}".splitlines()[0]) from None
        self.lengths: dict[str, int] = {name: len(rec) for name, rec in self._fasta.records.items()}
        self.names: list[str] = list(self.lengths)

    def fetch(self, contig: str, start: int, end: int) -> bytes:
        """Bases ``[start, end)`` of ``contig`` as upper-case ASCII bytes."""
        try:
            seq = self._fasta[contig][start:end]
        except (pyfaidx.FetchError, KeyError, ValueError, OSError) as err:
            raise InputError(f"{self.path}: cannot read {contig}:{start}-{end}: {err}".splitlines()[0]) from None
        raw = seq.upper().encode("ascii", errors="replace")
        if len(raw) != end - start:
            raise InputError(f"{self.path}: {contig}:{start}-{end} returned {len(raw)} bases (truncated FASTA?)")
        return raw
