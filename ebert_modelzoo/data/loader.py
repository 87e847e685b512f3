"""The IterableDataset that reads chunks of an EpochPlan, and the DataLoader that can resume.

``ShardDataset`` yields finished batch dicts (batching happens in the worker, so the DataLoader
runs with ``batch_size=None``). Its position (epoch, first batch) lives in a shared-memory tensor
that ``ResumableDataLoader`` sets before each iteration, so forked, spawned and persistent
workers all start where the main process says.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ebert_modelzoo.contract.data_params import DataParams
from ebert_modelzoo.data.sampler import (
    Blocks,
    EpochPlan,
    join_blocks,
    make_blocks,
    num_batches,
    seed_rng,
    streams_for_workers,
)
from ebert_modelzoo.data.shards import ShardReader

_MASKING = 2  # seed-stream tag of per-batch masking draws (see sampler._ORDER, _CHUNK)
CELL = "cell"
"""Key of the per-sample cell-type index in the arrays handed to the batch builder."""

BatchBuilder = Callable[[dict[str, np.ndarray], np.random.Generator], dict[str, torch.Tensor]]


class ShardDataset(IterableDataset):
    """Batches of (window, cell type) samples in EpochPlan order; each worker reads its own chunks."""

    def __init__(
        self,
        params: DataParams,
        fields: tuple[str, ...],
        cells: list[int],
        batch_size: int,
        build: BatchBuilder,
        *,
        seed: int,
        shuffle: bool,
        drop_last: bool,
        block_windows: int = 64,
        streams: int = 8,
        chunk_batches: int = 8,
        extra_blocks: Optional[Blocks] = None,
    ) -> None:
        self._params = params
        self._fields = fields
        self._blocks = make_blocks(params.shard_windows, cells, block_windows)
        if extra_blocks is not None:
            self._blocks = join_blocks(self._blocks, extra_blocks)
        self._batch_size = batch_size
        self._build = build
        self._seed, self._shuffle, self._drop_last = seed, shuffle, drop_last
        self._streams, self._chunk_batches = streams, chunk_batches
        self._position = torch.zeros(2, dtype=torch.int64).share_memory_()

    @property
    def seed(self) -> int:
        """The seed of the data order and masks."""
        return self._seed

    def __len__(self) -> int:
        return num_batches(self._blocks.num_samples, self._batch_size, self._drop_last)

    def set_position(self, epoch: int, batch: int) -> None:
        """Make the next iteration emit epoch ``epoch`` from batch ``batch`` on."""
        self._position[0], self._position[1] = epoch, batch

    def plan(self, epoch: int, num_workers: int) -> EpochPlan:
        """The batch order of ``epoch`` when read by ``num_workers`` workers (0 = main process)."""
        return EpochPlan(
            self._blocks,
            self._batch_size,
            seed=self._seed,
            epoch=epoch,
            shuffle=self._shuffle,
            drop_last=self._drop_last,
            streams=streams_for_workers(num_workers, self._streams),
            chunk_batches=self._chunk_batches,
        )

    def sample_order(self, epoch: int, num_workers: int) -> tuple[np.ndarray, np.ndarray]:
        """(cell-type index in data_params, window index in the split) of every row that epoch
        ``epoch`` read by ``num_workers`` workers yields, batch after batch: the chunk and batch
        each position reads, the chunk's contiguous pieces and its row permutation, exactly as
        ``__iter__`` reads them."""
        plan = self.plan(epoch, num_workers)
        offsets = np.concatenate(([0], np.cumsum(self._params.shard_windows)))
        cells, windows = [], []
        chunk_rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for position in range(plan.num_batches):
            chunk, batch = plan.locate(position)
            if chunk not in chunk_rows:
                pieces = plan.pieces(chunk)
                cell = np.concatenate([np.full(p.stop - p.start, p.cell) for p in pieces])
                window = np.concatenate([offsets[p.shard] + np.arange(p.start, p.stop) for p in pieces])
                order = plan.chunk_permutation(chunk)
                chunk_rows[chunk] = (cell[order], window[order])
            cell, window = chunk_rows[chunk]
            rows = slice(batch * self._batch_size, (batch + 1) * self._batch_size)
            cells.append(cell[rows])
            windows.append(window[rows])
        return np.concatenate(cells), np.concatenate(windows)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, start = (int(x) for x in self._position.tolist())
        plan = self.plan(epoch, workers)
        reader = ShardReader(self._params, self._fields)
        loaded: dict[int, tuple[dict[str, np.ndarray], np.ndarray]] = {}
        try:
            for position in plan.worker_positions(worker, workers, start):
                chunk, batch = plan.locate(position)
                if chunk not in loaded:
                    loaded[chunk] = (self._read_chunk(plan, chunk, reader), plan.chunk_permutation(chunk))
                arrays, order = loaded[chunk]
                rows = order[batch * self._batch_size : (batch + 1) * self._batch_size]
                if batch == plan.chunk_batches_of(chunk) - 1:
                    del loaded[chunk]
                picked = {name: values[rows] for name, values in arrays.items()}
                yield self._build(picked, seed_rng(self._seed, epoch, _MASKING, chunk, batch))
        finally:
            reader.close()

    def _read_chunk(self, plan: EpochPlan, chunk: int, reader: ShardReader) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {name: [] for name in (*self._fields, CELL)}
        for piece in plan.pieces(chunk):
            for name, values in reader.read(piece.shard, piece.start, piece.stop, piece.cell).items():
                parts[name].append(values)
            parts[CELL].append(np.full(piece.stop - piece.start, piece.cell, dtype=np.int32))
        return {name: np.concatenate(values) for name, values in parts.items()}


class ResumableDataLoader(DataLoader):
    """A DataLoader over a ShardDataset that knows how far it got and can restart there.

    ``state_dict()`` counts the batches handed to the caller (not those prefetched); iterating
    again continues from there, and a complete pass moves on to the next epoch. Loading a state
    saved after k batches makes the next iteration yield batches k, k+1, ... of that epoch,
    identical (order and masks) to an uninterrupted run with the same config.
    """

    def __init__(self, dataset: ShardDataset, **kwargs: Any) -> None:
        # Every iteration draws a base seed for its workers from ``generator``, by default the
        # global torch RNG. A private one keeps starting an epoch from moving the global stream
        # (dropout): otherwise a run resumed at an epoch's end, whose next epoch starts before
        # the checkpoint's RNG state is restored, would drift from an uninterrupted run.
        generator = torch.Generator().manual_seed(dataset.seed % 2**63)
        super().__init__(dataset, batch_size=None, generator=generator, **kwargs)
        self._epoch = 0
        self._batch = 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self.dataset.set_position(self._epoch, self._batch)
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[dict[str, torch.Tensor]]) -> Iterator[dict[str, torch.Tensor]]:
        for batch in batches:
            self._batch += 1
            yield batch
        self._epoch += 1
        self._batch = 0

    def state_dict(self) -> dict[str, int]:
        """Where the next iteration starts: epoch and batch within it."""
        return {"epoch": self._epoch, "batch": self._batch}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Start the next iteration at ``state['batch']`` of ``state['epoch']``.

        Raises:
            ValueError: a key is missing or the batch lies outside the epoch.
        """
        for key in ("epoch", "batch"):
            if key not in state:
                raise ValueError(f"data loader state: key {key!r} is missing (got {sorted(state)})")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or not 0 <= batch <= len(self.dataset):
            raise ValueError(
                f"data loader state: epoch {epoch}, batch {batch} outside 0..{len(self.dataset)} batches"
            )
        self._epoch, self._batch = epoch, batch

    # cstorch's RestartableDataLoader protocol (with state_dict / load_state_dict above), through
    # which Cerebras Model Zoo's Trainer saves and restores the data position in its checkpoints.
    # One loader feeds the run, so the aggregate of the workers' states is the one state.

    def aggregate_state_dict(self, worker_states: list[dict[str, int]]) -> dict[str, int]:
        """The position to checkpoint from the one worker's state."""
        if len(worker_states) != 1:
            raise ValueError(f"expected the state of one data worker, got {len(worker_states)}")
        return dict(worker_states[0])

    def deaggregate_state_dict(self, aggregated_state_dict: Mapping[str, int]) -> dict[str, int]:
        """The one worker's position from a checkpointed one."""
        return dict(aggregated_state_dict)
