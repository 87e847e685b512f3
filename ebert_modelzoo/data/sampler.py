"""The order in which one epoch visits its samples: seeded, split across workers, resumable.

A sample is a pair (window, cell type). Samples are grouped into *blocks*: ``block_windows``
consecutive windows of one shard and one cell type, which the shard layout stores contiguously,
so a block is read with one slice per dataset. One epoch:

1. permutes the blocks (seed, epoch) and lays them end to end: the epoch's sample sequence;
2. cuts the sequence into *chunks* of ``chunk_batches`` batches, each owned by one of
   ``streams`` virtual streams (chunk r * streams + s belongs to stream s);
3. permutes the samples inside each chunk (seed, epoch, chunk) and slices it into batches;
4. emits batches round by round, round-robin over the streams: stream 0's first batch, stream
   1's first batch, ..., stream 0's second batch, ...

Batch position i belongs to stream ``i mod streams``, so with W workers (W dividing ``streams``)
worker w produces exactly the positions i = w (mod W), each chunk is read by one worker only, and
torch's DataLoader, which takes batches from its workers round-robin, returns positions 0, 1, 2,
... in order: the epoch does not depend on the number of workers. The last round gives every
stream the same number of batches, except that the first ``t`` streams get one more, so the
round-robin stays aligned when workers run out. Resuming at position k hands out positions
k, k+1, ... with worker w taking those with (i - k) mod W = w.

Everything here is numpy over arrays of blocks: planning an epoch of hg38 x 127 cell types
(~6 M blocks) costs one permutation and one cumulative sum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

_ORDER, _CHUNK = 0, 1  # seed-stream tags, so block order and chunk permutations never share draws


@dataclass(frozen=True)
class Blocks:
    """Parallel arrays describing every block of a split (one entry per block)."""

    shard: np.ndarray
    start: np.ndarray
    length: np.ndarray
    cell: np.ndarray

    @property
    def num_samples(self) -> int:
        """Samples (window, cell type) covered by all blocks."""
        return int(self.length.sum())


def make_blocks(shard_windows: Sequence[int], cells: Sequence[int], block_windows: int) -> Blocks:
    """Blocks of at most ``block_windows`` windows for each shard and each cell-type index in ``cells``."""
    shard, start, length = [], [], []
    for index, windows in enumerate(shard_windows):
        starts = np.arange(0, windows, block_windows, dtype=np.int64)
        shard.append(np.full(starts.size, index, dtype=np.int64))
        start.append(starts)
        length.append(np.minimum(starts + block_windows, windows) - starts)
    shard_a, start_a, length_a = (np.concatenate(x) for x in (shard, start, length))
    n_cells = len(cells)
    return Blocks(
        shard=np.tile(shard_a, n_cells),
        start=np.tile(start_a, n_cells),
        length=np.tile(length_a, n_cells),
        cell=np.repeat(np.asarray(cells, dtype=np.int64), shard_a.size),
    )


def sample_blocks(shard: np.ndarray, window: np.ndarray, cell: np.ndarray, repeats: int) -> Blocks:
    """One-window blocks for the samples (shard[i], window[i], cell[i]), each ``repeats`` times
    (how extra copies of chosen samples, e.g. bound ones, join an epoch)."""
    one = np.ones(shard.size * repeats, dtype=np.int64)
    return Blocks(shard=np.tile(shard.astype(np.int64), repeats), start=np.tile(window.astype(np.int64), repeats),
                  length=one, cell=np.tile(cell.astype(np.int64), repeats))


def join_blocks(first: Blocks, second: Blocks) -> Blocks:
    """The blocks of ``first`` followed by those of ``second``."""
    return Blocks(*(np.concatenate([getattr(first, name), getattr(second, name)])
                    for name in ("shard", "start", "length", "cell")))


def seed_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator determined by (seed, keys): the one source of randomness of the data pipeline."""
    return np.random.default_rng([seed % 2**63, *keys])


def num_batches(num_samples: int, batch_size: int, drop_last: bool) -> int:
    """Batches in one epoch of ``num_samples``."""
    full, rest = divmod(num_samples, batch_size)
    return full + (1 if rest and not drop_last else 0)


@dataclass(frozen=True)
class Piece:
    """Windows ``start:stop`` of one shard for one cell-type index: one contiguous read."""

    shard: int
    start: int
    stop: int
    cell: int


class EpochPlan:
    """The batch order of one epoch (see the module docstring)."""

    def __init__(
        self,
        blocks: Blocks,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        shuffle: bool,
        drop_last: bool,
        streams: int,
        chunk_batches: int,
    ) -> None:
        self.batch_size = batch_size
        self.streams = streams
        self.chunk_batches = chunk_batches
        self._seed, self._epoch, self._shuffle = seed, epoch, shuffle
        order = seed_rng(seed, epoch, _ORDER).permutation(blocks.length.size) if shuffle else None
        pick = (lambda a: a[order]) if order is not None else (lambda a: a)
        self._shard, self._start, self._cell = pick(blocks.shard), pick(blocks.start), pick(blocks.cell)
        self._ends = np.cumsum(pick(blocks.length))
        total = int(self._ends[-1]) if self._ends.size else 0
        full, rest = divmod(total, batch_size)
        self.num_batches = num_batches(total, batch_size, drop_last)
        per_round = streams * chunk_batches
        self._full_rounds = full // per_round
        q, t = divmod(full - self._full_rounds * per_round, streams)
        self._tail_q = q
        # batches and samples of each stream's chunk in the last (partial) round
        tail_batches = np.array([q + (s < t) for s in range(streams)], dtype=np.int64)
        tail_sizes = tail_batches * batch_size
        if rest and not drop_last:
            tail_batches[t] += 1
            tail_sizes[t] += rest
        self._tail_batches = tail_batches
        self._tail_starts = self._full_rounds * per_round * batch_size + np.concatenate(
            ([0], np.cumsum(tail_sizes)[:-1])
        )
        self._tail_sizes = tail_sizes

    def locate(self, position: int) -> tuple[int, int]:
        """(chunk, batch within the chunk) emitted at batch ``position`` of the epoch."""
        if not 0 <= position < self.num_batches:
            raise IndexError(f"batch position {position} outside the epoch (0..{self.num_batches - 1})")
        per_round = self.streams * self.chunk_batches
        round_, offset = divmod(position, per_round)
        if round_ < self._full_rounds:
            batch, stream = divmod(offset, self.streams)
            return round_ * self.streams + stream, batch
        offset = position - self._full_rounds * per_round
        if offset < self._tail_q * self.streams:
            batch, stream = divmod(offset, self.streams)
        else:
            batch, stream = self._tail_q, offset - self._tail_q * self.streams
        return self._full_rounds * self.streams + stream, batch

    def chunk_batches_of(self, chunk: int) -> int:
        """How many batches ``chunk`` yields."""
        round_, stream = divmod(chunk, self.streams)
        return self.chunk_batches if round_ < self._full_rounds else int(self._tail_batches[stream])

    def _chunk_range(self, chunk: int) -> tuple[int, int]:
        round_, stream = divmod(chunk, self.streams)
        if round_ < self._full_rounds:
            size = self.chunk_batches * self.batch_size
            return chunk * size, (chunk + 1) * size
        start = int(self._tail_starts[stream])
        return start, start + int(self._tail_sizes[stream])

    def pieces(self, chunk: int) -> list[Piece]:
        """The contiguous reads that make up ``chunk``, in sample-sequence order."""
        begin, end = self._chunk_range(chunk)
        first = int(np.searchsorted(self._ends, begin, side="right"))
        last = int(np.searchsorted(self._ends, end - 1, side="right"))
        out = []
        for block in range(first, last + 1):
            block_begin = int(self._ends[block - 1]) if block else 0
            lo = max(begin, block_begin) - block_begin
            hi = min(end, int(self._ends[block])) - block_begin
            start = int(self._start[block])
            out.append(Piece(int(self._shard[block]), start + lo, start + hi, int(self._cell[block])))
        return out

    def chunk_permutation(self, chunk: int) -> np.ndarray:
        """Row order of the chunk's samples; batch b is rows ``b * batch_size : (b + 1) * batch_size``."""
        begin, end = self._chunk_range(chunk)
        if not self._shuffle:
            return np.arange(end - begin)
        return seed_rng(self._seed, self._epoch, _CHUNK, chunk).permutation(end - begin)

    def worker_positions(self, worker: int, num_workers: int, start: int) -> range:
        """Batch positions worker ``worker`` of ``num_workers`` emits when the epoch resumes at ``start``."""
        return range(start + worker, self.num_batches, num_workers)


def streams_for_workers(num_workers: int, streams: int) -> int:
    """The smallest multiple of ``num_workers`` that is >= ``streams`` (so chunks never straddle workers)."""
    workers = max(num_workers, 1)
    return workers * -(-streams // workers)
