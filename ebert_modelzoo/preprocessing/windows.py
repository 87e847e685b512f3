"""Regions, windows, shards and the blacklist.

Windows of a split are enumerated region by region (regions in genome order) at ``stride``; only
windows lying wholly inside a region are made. The i-th candidate window of a split belongs to
shard ``i // windows_per_shard`` (before any filtering), so the shard layout depends on the config
alone, never on workers or machines.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.bed import read_records
from ebert_modelzoo.preprocessing.genome import ContigMap

_REGION = re.compile(r"^([^:\s]+)(?::([\d,_]+)-([\d,_]+))?$")


@dataclass(frozen=True)
class Region:
    contig: str
    start: int
    end: int


@dataclass(frozen=True)
class ShardTask:
    """One shard to build: its split, index and candidate windows (contig, starts)."""

    split: str
    index: int
    contigs: tuple[str, ...]  # one per window
    starts: tuple[int, ...]
    labels: tuple[tuple[int, ...], ...] = ()  # per window: labels from regions.bed's columns (if any)


def parse_region(text: str, genome_lengths: dict[str, int], where: str) -> Region:
    """Parse ``chrX`` or ``chrX:40,000,000-45,000,000`` (0-based, half-open) against the genome.
    A genome contig whose name holds ``:`` (``chr1:15710957-15711157``) is taken whole when the
    text is exactly its name."""
    text = text.strip()
    if text in genome_lengths:
        return Region(text, 0, genome_lengths[text])
    match = _REGION.match(text)
    if not match:
        raise InputError(f"{where}: cannot parse region {text!r} (expected chrom or chrom:start-end)")
    name = match.group(1)
    contig = ContigMap(where, genome_lengths).get(name)
    if contig is None:
        syntax = (f" ({text!r} is read as the range chrom:start-end of contig {name!r}; no FASTA contig is named "
                  f"{text!r} either)" if match.group(2) is not None else "")
        raise InputError(f"{where}: contig {name!r} is not in the genome FASTA{syntax}")
    length = genome_lengths[contig]
    if match.group(2) is None:
        return Region(contig, 0, length)
    start, end = (int(re.sub(r"[,_]", "", g)) for g in match.group(2, 3))
    if not 0 <= start < end <= length:
        raise InputError(f"{where}: region {text!r} is outside {contig} (length {length}) or empty")
    return Region(contig, start, end)


def parse_splits(splits: dict[str, list[str]], genome_names: list[str],
                 genome_lengths: dict[str, int]) -> dict[str, list[Region]]:
    """Regions per split in genome order; overlapping regions (within or across splits) are errors."""
    order = {name: i for i, name in enumerate(genome_names)}
    parsed = {
        split: sorted((parse_region(t, genome_lengths, f"split.{split}[{i}]") for i, t in enumerate(texts)),
                      key=lambda r: (order[r.contig], r.start))
        for split, texts in splits.items()
    }
    everything = sorted(((r, s) for s, rs in parsed.items() for r in rs), key=lambda x: (order[x[0].contig], x[0].start))
    for (a, sa), (b, sb) in zip(everything, everything[1:]):
        if a.contig == b.contig and b.start < a.end:
            raise InputError(f"split: {sa} region {a.contig}:{a.start}-{a.end} overlaps {sb} region "
                             f"{b.contig}:{b.start}-{b.end}")
    return parsed


def candidate_windows(regions: list[Region], window_length: int, stride: int) -> tuple[list[str], np.ndarray]:
    """(contig per window, start per window) of every window wholly inside a region, in order."""
    contigs: list[str] = []
    starts = []
    for r in regions:
        s = np.arange(r.start, r.end - window_length + 1, stride, dtype=np.int64)
        contigs.extend([r.contig] * len(s))
        starts.append(s)
    return contigs, (np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64))


def shard_tasks(split: str, regions: list[Region], window_length: int, stride: int,
                windows_per_shard: int) -> list[ShardTask]:
    """The shards of a split, each holding ``windows_per_shard`` consecutive candidate windows."""
    contigs, starts = candidate_windows(regions, window_length, stride)
    return [
        ShardTask(split, i // windows_per_shard, tuple(contigs[i:i + windows_per_shard]),
                  tuple(int(s) for s in starts[i:i + windows_per_shard]))
        for i in range(0, len(starts), windows_per_shard)
    ]


class Blacklist:
    """Excluded intervals per genome contig (merged, sorted)."""

    def __init__(self, path: str | Path | None, genome_lengths: dict[str, int]) -> None:
        self.intervals: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if path is None:
            return
        raw: dict[str, list[tuple[int, int]]] = {}
        contigs = ContigMap(str(path), genome_lengths)
        for _, fields, start, end in read_records(path):
            contig = contigs.get(fields[0])
            if contig is not None:
                raw.setdefault(contig, []).append((start, end))
        contigs.announce()
        for contig, ivs in raw.items():
            ivs.sort()
            starts, ends = [ivs[0][0]], [ivs[0][1]]
            for s, e in ivs[1:]:
                if s <= ends[-1]:
                    ends[-1] = max(ends[-1], e)
                else:
                    starts.append(s)
                    ends.append(e)
            self.intervals[contig] = (np.asarray(starts), np.asarray(ends))

    def overlaps(self, contig: str, starts: np.ndarray, length: int) -> np.ndarray:
        """Whether each window ``[start, start + length)`` overlaps an excluded interval."""
        if contig not in self.intervals:
            return np.zeros(starts.shape, dtype=bool)
        b_starts, b_ends = self.intervals[contig]
        # intervals are disjoint and sorted: the first one ending after the window start decides
        idx = np.searchsorted(b_ends, starts, side="right")
        safe = np.clip(idx, 0, len(b_starts) - 1)
        return (idx < len(b_starts)) & (b_starts[safe] < starts + length)
