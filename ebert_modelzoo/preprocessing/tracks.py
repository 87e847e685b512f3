"""bigWig signal (pyBigWig): header checks against the genome, per-bin means, signal transforms.

A bin's value is the mean over the bases the bigWig covers inside it, which is what
``pyBigWig.stats(chrom, start, end, type="mean", exact=True)`` returns; a bin with no covered base
is missing (NaN). Values are read with one ``values`` call per range of many bins.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pyBigWig

from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.genome import ContigMap

TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log1p": np.log1p,
    "arcsinh": np.arcsinh,
    "none": lambda x: x,
}


class BigWigTrack:
    """One bigWig, its contig names mapped onto the genome's."""

    def __init__(self, path: str | Path, genome_lengths: dict[str, int], announce: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: bigWig not found")
        try:
            self._bw = pyBigWig.open(str(self.path))
        except RuntimeError:
            self._bw = None
        if self._bw is None or not self._bw.isBigWig():
            raise InputError(f"{self.path}: not a readable bigWig (corrupt, truncated or another format)")
        chroms = self._bw.chroms()
        self.contigs = ContigMap(str(self.path), genome_lengths, chroms)
        if announce:
            self.contigs.announce()
        if not self.contigs.to_genome:
            raise InputError(f"{self.path}: no contig name matches the genome FASTA's (e.g. {next(iter(chroms), None)!r})")
        for name, genome_name in self.contigs.to_genome.items():
            if chroms[name] != genome_lengths[genome_name]:
                raise InputError(
                    f"{self.path}: {name} is {chroms[name]} bp here but {genome_lengths[genome_name]} bp in "
                    "the genome FASTA (bigWig from another genome build?)"
                )
        self._probe()

    def _probe(self) -> None:
        """Read a little data so a file truncated after its header fails now, not mid-run."""
        for name, length in self._bw.chroms().items():
            try:
                self._bw.values(name, 0, min(length, 1), numpy=True)
            except RuntimeError:
                raise InputError(f"{self.path}: data section unreadable (truncated or corrupt bigWig)") from None
            return

    def values(self, contig: str, start: int, end: int) -> tuple[np.ndarray, int]:
        """Per-base values of ``[start, end)`` on the genome's ``contig`` in one read.

        Returns:
            (float32 [end - start], NaN where the file has no data or a non-finite value;
             the number of non-finite (inf) values found, which are treated as missing).
        """
        name = self.contigs.from_genome.get(contig)
        if name is None:
            return np.full(end - start, np.nan, dtype=np.float32), 0
        try:
            values = np.asarray(self._bw.values(name, start, end, numpy=True), dtype=np.float32)
        except RuntimeError:
            raise InputError(f"{self.path}: cannot read {name}:{start}-{end} (truncated or corrupt bigWig)") from None
        infinite = np.isinf(values)
        n_inf = int(infinite.sum())
        if n_inf:
            values[infinite] = np.nan
        return values, n_inf


def bin_means(values: np.ndarray, bin_size: int) -> np.ndarray:
    """Mean over the non-NaN bases of each bin along the last axis ([..., L] -> [..., L // bin_size]),
    NaN for a bin without any; float64."""
    per_bin = values.reshape(*values.shape[:-1], values.shape[-1] // bin_size, bin_size)  # (..., bins, bases)
    covered = (~np.isnan(per_bin)).sum(axis=-1)
    sums = np.nansum(per_bin, axis=-1, dtype=np.float64)
    return np.where(covered > 0, sums / np.maximum(covered, 1), np.nan)
