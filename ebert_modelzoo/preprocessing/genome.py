"""Genome FASTA access (pyfaidx) and contig-name matching between files (``X`` vs ``chrX``).

The FASTA's contig names are canonical. Another file's contig is mapped onto the genome contig of
the same name, else onto its spelling in the other convention (UCSC ``chr1`` vs Ensembl ``1``; any
of ``chrM``/``MT``/``chrMT``/``M`` for the mitochondrion) when exactly one such contig exists. A
contig with no counterpart in the genome is skipped (its records are ignored; logged once per
file). Two contigs of one file landing on one genome contig, or one contig matching several, is
an error naming the file.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pyfaidx

from ebert_modelzoo.errors import InputError
from ebert_modelzoo.tokenizer import BASES, IUPAC_AMBIGUOUS

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
        raise InputError(f"contig {name!r} matches several genome contigs {hits}; rename the contigs")
    return hits[0] if hits else None


class ContigMap:
    """Maps one file's contig names onto the genome's, looked up as the file is read."""

    def __init__(self, source: str, genome_names: Iterable[str], file_names: Iterable[str] = ()) -> None:
        self.source = source
        self._genome_names = set(genome_names)
        self.to_genome: dict[str, str] = {}
        self.from_genome: dict[str, str] = {}
        self.skipped: list[str] = []
        self._seen: set[str] = set()
        for name in file_names:
            self.get(name)

    def get(self, name: str) -> Optional[str]:
        """The genome contig ``name`` maps to, None if it has none (the file's records on it are skipped).

        Raises:
            InputError: naming the file: ``name`` matches several genome contigs, or another
                contig of the file already maps to the same genome contig.
        """
        if name in self._seen:
            return self.to_genome.get(name)
        self._seen.add(name)
        try:
            target = match_contig(name, self._genome_names)
        except InputError as err:
            raise InputError(f"{self.source}: {err}") from None
        if target is None:
            self.skipped.append(name)
            return None
        if target in self.from_genome:
            raise InputError(f"{self.source}: contigs {self.from_genome[target]!r} and {name!r} both map to the "
                             f"genome's {target!r}; keep one")
        self.to_genome[name] = target
        self.from_genome[target] = name
        return target

    def announce(self) -> None:
        """Log the renamings and the skipped contigs (once per file)."""
        renamed = [f"{f}->{g}" for f, g in self.to_genome.items() if f != g]
        if renamed:
            log.info("%s: contig names mapped to the genome's (%s%s)", self.source, ", ".join(renamed[:4]),
                     ", ..." if len(renamed) > 4 else "")
        if self.skipped:
            log.info("%s: %d contig(s) not in the genome FASTA, their records are skipped (%s%s)", self.source,
                     len(self.skipped), ", ".join(self.skipped[:4]), ", ..." if len(self.skipped) > 4 else "")


_SEQUENCE_BYTE = np.zeros(256, dtype=bool)  # bases and IUPAC ambiguity codes, either case
_SEQUENCE_BYTE[[ord(c) for c in (BASES + IUPAC_AMBIGUOUS).upper() + (BASES + IUPAC_AMBIGUOUS).lower()]] = True
_CHECK_CHUNK = 1 << 22  # bases read at a time by Genome.check


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

    def check(self, spans: Iterable[tuple[str, int, int]]) -> None:
        """Check that the .fai index describes the file (plain FASTA: every header where the index
        puts it, nothing missing at the end) and that every base of the (contig, start, end) spans
        a run reads is a base or an IUPAC code, so a bad FASTA stops a run before anything is
        written. Bases outside the spans are not read (a run on a small region stays cheap).

        Raises:
            InputError: naming the FASTA and the contig: a truncated file, a stale index, a
                character that is not a base.
        """
        with open(self.path, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        if not compressed:  # bgzip: pyfaidx reads through the .gzi; only the bases are checked
            self._check_layout()
        for contig, first, last in spans:
            for start in range(first, last, _CHECK_CHUNK):
                end = min(start + _CHECK_CHUNK, last)
                raw = np.frombuffer(self._read(contig, start, end), dtype=np.uint8)
                bad = np.flatnonzero(~_SEQUENCE_BYTE[raw])
                if bad.size:
                    raise InputError(f"{self.path}: {contig}:{start + int(bad[0])}: invalid character "
                                     f"{chr(raw[bad[0]])!r} (not a base or IUPAC code; or a stale .fai index)")

    def _check_layout(self) -> None:
        """Every record's header right before the offset the .fai gives, its first and last line
        ending where the index's line width says, and nothing after the last record."""
        stale = "re-index it (samtools faidx): the FASTA changed after its .fai was made, or its lines differ in length"
        size = self.path.stat().st_size
        pos = 0
        with open(self.path, "rb") as fh:
            for name, rec in self._fasta.faidx.index.items():
                fh.seek(pos)
                line = fh.readline()
                while line and not line.strip():
                    line = fh.readline()
                words = line[1:].split()
                if not line.startswith(b">") or not words or words[0].decode(errors="replace") != name \
                        or fh.tell() != rec.offset:
                    raise InputError(f"{self.path}: {name}: the header is not where the .fai index puts it; {stale}")
                if not rec.rlen:
                    pos = rec.offset
                    continue
                lines = -(-rec.rlen // rec.lenc)
                last = rec.offset + (lines - 1) * rec.lenb + (rec.rlen - (lines - 1) * rec.lenc) - 1  # last base's byte
                if size <= last:
                    raise InputError(f"{self.path}: {name} should hold {rec.rlen} bases (to byte {last + 1}) but the "
                                     f"file has {size} bytes: truncated FASTA (or a stale .fai)")
                for at in {rec.offset + min(rec.rlen, rec.lenc) - 1, last}:  # ends of the first and last line
                    fh.seek(at)
                    tail = fh.read(1 + rec.lenb - rec.lenc)
                    if not _SEQUENCE_BYTE[tail[0]] or tail[1:].strip(b"\r\n"):
                        raise InputError(f"{self.path}: {name}: a line does not end where the .fai index says "
                                         f"(byte {at + 1}); {stale}")
                pos = last + 1 + rec.lenb - rec.lenc
            fh.seek(pos)
            if fh.read(1 << 16).strip():
                raise InputError(f"{self.path}: bytes follow the last contig the .fai index knows; {stale}")

    def _read(self, contig: str, start: int, end: int) -> bytes:
        """Bases ``[start, end)`` of ``contig`` as stored (ASCII bytes, case kept)."""
        try:
            seq = self._fasta[contig][start:end]
        except (pyfaidx.FetchError, KeyError, ValueError, OSError) as err:
            raise InputError(f"{self.path}: cannot read {contig}:{start}-{end}: {err}".splitlines()[0]) from None
        raw = seq.encode("ascii", errors="replace")
        if len(raw) != end - start:
            raise InputError(f"{self.path}: {contig}:{start}-{end} returned {len(raw)} bases "
                             "(truncated FASTA or stale .fai)")
        return raw

    def fetch(self, contig: str, start: int, end: int) -> bytes:
        """Bases ``[start, end)`` of ``contig`` as upper-case ASCII bytes."""
        return self._read(contig, start, end).upper()
