"""A fine-tuned run's model over one split's windows: logits of (window, cell type) samples whose
DNA may be edited and whose epigenome may be another cell type's.

The batch dicts are made by the run's own data processor (``BatchBuilder``: tokens, [CLS]/[SEP],
signal normalisation, labels), so the model sees exactly what it saw in training; only the
token ids (from edited base codes) and the cell type whose epigenome is read change.

Shapes: n samples, S = tokens_per_window x k bases, K labels; base codes A0 C1 G2 T3 N4.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from ebert_modelzoo.config.model import EBertFinetuneConfig
from ebert_modelzoo.config.params import Params, load_params
from ebert_modelzoo.contract import schema
from ebert_modelzoo.data.loader import CELL
from ebert_modelzoo.data.motifs import N_CODE, codes_from_tokens
from ebert_modelzoo.data.processors import EBertFinetuningDataProcessor
from ebert_modelzoo.errors import InterpretError, ParamsError
from ebert_modelzoo.models.ebert import EBertForFineTuningModel
from ebert_modelzoo.tokenizer import DNATokenizer
from ebert_modelzoo.training.checkpoint import latest_checkpoint, load_model_weights, read_checkpoint

DEFAULT_LOADER = "trainer.fit.val_dataloader"
DEFAULT_BATCH_SIZE = 256
"""Samples per forward pass on a GPU."""
CPU_BATCH_BYTES = 16 << 20
"""On the CPU a forward pass is sized so that each torch thread's share of one feed-forward
intermediate (samples x tokens x filter_size float32) stays about this size, cache-sized rather
than memory-sized: one thread scores 1.3-1.5x as many ebert_tiny samples per CPU-second at 64 a
pass as at 256 (bench/bench_interpret.py). With 2 threads on the shared, oversubscribed machine
larger passes did better (fewer points where a thread waits for the other): 256 > 128 > 64.
A base-like model, compute-bound, is indifferent (a few samples a pass)."""


def tokens_from_codes(codes: np.ndarray, tokenizer: DNATokenizer) -> np.ndarray:
    """[..., S / k] k-mer token ids (int32) of base codes [..., S]; a k-mer holding an N is [N]."""
    k = tokenizer.k
    kmers = codes.reshape(*codes.shape[:-1], codes.shape[-1] // k, k).astype(np.int64)
    place = 4 ** np.arange(k - 1, -1, -1)
    ids = np.minimum(kmers, 3) @ place + tokenizer.first_kmer_id
    ids[(kmers == N_CODE).any(axis=-1)] = tokenizer.n_id
    return ids.astype(np.int32)


def parse_region(text: str) -> tuple[str, int, int]:
    """``chr:start-end`` (0-based half-open, commas allowed) -> (contig, start, end).

    Raises:
        InterpretError: not of that form, or end <= start.
    """
    try:
        contig, span = text.replace(",", "").rsplit(":", 1)
        start, end = (int(v) for v in span.split("-"))
    except ValueError:
        raise InterpretError(f"region {text!r}: expected chr:start-end") from None
    if start < 0 or end <= start:
        raise InterpretError(f"region {text!r}: expected 0 <= start < end")
    return contig, start, end


def _loader_section(params: Params, loader_path: str) -> object:
    for path, loader in params.dataloaders():
        if path == loader_path:
            return loader
    raise ParamsError(f"{loader_path}: no such dataloader in the params")


@dataclass(frozen=True)
class Samples:
    """n samples to score: the window, the cell type (its identity: cell-type embedding) and the
    cell type whose epigenome is read (the same unless asked otherwise); indices into the split."""

    windows: np.ndarray
    cells: np.ndarray
    epigenome_cells: np.ndarray
    codes: Optional[np.ndarray] = None
    """[n, S] edited base codes; None = the stored DNA."""

    def __len__(self) -> int:
        return int(self.windows.size)

    def rows(self, sl: slice) -> "Samples":
        return Samples(self.windows[sl], self.cells[sl], self.epigenome_cells[sl],
                       None if self.codes is None else self.codes[sl])


class Scorer:
    """A trained fine-tuning run (params + checkpoint) and one split folder of its data."""

    def __init__(self, params_file: str | Path, checkpoint: Optional[str | Path] = None,
                 data_dir: Optional[str | Path] = None, loader: str = DEFAULT_LOADER,
                 device: Optional[str] = None, batch_size: Optional[int] = None) -> None:
        """
        Args:
            params_file: the run's params YAML.
            checkpoint: default the newest in the params' model_dir.
            data_dir: a split folder (default: the ``loader`` section's data_dir); every cell type
                of the split can be scored.
            loader: the dataloader section whose data settings (labels, inputs) batches follow.
            device: default cuda when the run's backend is GPU and one is present, else cpu.
            batch_size: samples per forward pass; default DEFAULT_BATCH_SIZE on a GPU, and on the
                CPU as many as keep a feed-forward intermediate near CPU_BATCH_BYTES.

        Raises:
            ParamsError: not a fine-tuning run with a sequence head, or no such dataloader.
            FileNotFoundError: no checkpoint, data_dir or shard.
        """
        params = load_params(params_file)
        config = params.trainer.init.model
        if not isinstance(config, EBertFinetuneConfig) or config.head != "sequence":
            raise ParamsError(f"{params_file}: interpretation needs a fine-tuning run with head: sequence")
        section = _loader_section(params, loader)
        update: dict[str, object] = {"cell_types": None}
        if data_dir is not None:
            update["data_dir"] = str(data_dir)
        self.processor = EBertFinetuningDataProcessor(section.model_copy(update=update))
        self.data = self.processor.params
        model_dir = Path(params.trainer.init.model_dir)
        path = Path(checkpoint) if checkpoint else latest_checkpoint(model_dir)
        if path is None:
            raise FileNotFoundError(f"{model_dir}: no checkpoint (train the run first or pass a checkpoint)")
        self.checkpoint = path
        if device is None:
            gpu = params.trainer.init.backend.backend_type == "GPU" and torch.cuda.is_available()
            device = "cuda" if gpu else "cpu"
        self.device = torch.device(device)
        # The loss weights are not needed to score; "auto" would need the training split.
        model = EBertForFineTuningModel(config.model_copy(update={"positive_weight": None}))
        load_model_weights(model, read_checkpoint(path)["model"], True, path)
        self.model = model.to(self.device).eval()
        self.builder = self.processor.batch_builder()
        if batch_size is None:
            batch_size = DEFAULT_BATCH_SIZE if self.device.type != "cpu" else cpu_batch_size(config, self.builder.seq_len)
        self.batch_size = batch_size
        self.tokenizer = DNATokenizer(int(self.data.raw["tokenizer"]["k"]))
        self.label_names: tuple[str, ...] = tuple(self.processor.label_names)
        self.cell_types: tuple[str, ...] = tuple(self.data.cell_types)
        self.contigs: tuple[str, ...] = tuple(self.data.raw["contigs"])
        self.window_length = int(self.data.raw["window_length"])
        self._read_coordinates()
        self._files: dict[int, h5py.File] = {}

    # ------------------------------------------------------------------ the split

    def _read_coordinates(self) -> None:
        chroms, starts = [], []
        for file in self.data.shard_files:
            with h5py.File(file, "r") as handle:
                chroms.append(handle[schema.DATASET_WINDOW_CHROM][:])
                starts.append(handle[schema.DATASET_WINDOW_START][:])
        self.window_chrom = np.concatenate(chroms).astype(np.int64)
        self.window_start = np.concatenate(starts).astype(np.int64)
        self._shard_offsets = np.concatenate(([0], np.cumsum(self.data.shard_windows)))
        self._by_contig: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def dna_derived_inputs(self) -> tuple[str, ...]:
        """Batch inputs besides the tokens that the processor computes from the DNA (the known-motif
        tracks, ``motif_scores``). ``batch`` recomputes them from edited DNA, so ISM and variant
        effects pass through them; gradient methods cannot (a motif scan is discrete)."""
        return ("motif_scores",) if self.builder.motif_tracks is not None else ()

    @property
    def num_windows(self) -> int:
        return int(self.window_start.size)

    @property
    def sequence_length(self) -> int:
        """S, bases per window."""
        return self.data.tokens_per_window * self.tokenizer.k

    def cell_index(self, name: str) -> int:
        """Index of cell type ``name`` in the split."""
        if name not in self.cell_types:
            raise InterpretError(f"cell type {name!r} is not in {self.data.path} (has {', '.join(self.cell_types)})")
        return self.cell_types.index(name)

    def label_index(self, name: str) -> int:
        """Index of label ``name`` among the model's outputs."""
        if name not in self.label_names:
            raise InterpretError(f"label {name!r} is not one of the run's labels ({', '.join(self.label_names)})")
        return self.label_names.index(name)

    def contig_name(self, name: str) -> Optional[str]:
        """The split's name of contig ``name``, which may differ from it by a "chr" prefix (FASTA
        "X" vs UCSC "chrX"); None when the split has no such contig."""
        if name in self.contigs:
            return name
        other = name[3:] if name.startswith("chr") else "chr" + name
        return other if other in self.contigs else None

    def windows_covering(self, contig: str, start: int, end: int) -> np.ndarray:
        """Windows that hold all of ``[start, end)`` on ``contig`` (either naming), the most central first."""
        contig = self.contig_name(contig)
        if contig is None:
            return np.zeros(0, dtype=np.int64)
        chrom = self.contigs.index(contig)
        if chrom not in self._by_contig:  # window indices of the contig sorted by start, built once
            rows = np.flatnonzero(self.window_chrom == chrom)
            order = np.argsort(self.window_start[rows], kind="stable")
            self._by_contig[chrom] = (rows[order], self.window_start[rows[order]])
        rows, starts = self._by_contig[chrom]
        lo, hi = np.searchsorted(starts, end - self.window_length), np.searchsorted(starts, start, side="right")
        found = rows[lo:hi]
        offset = np.abs(self.window_start[found] + self.window_length / 2 - (start + end) / 2)
        return found[np.argsort(offset, kind="stable")]

    def window_for(self, contig: str, start: int, end: int) -> int:
        """The window holding ``[start, end)`` with its centre nearest the region's.

        Raises:
            InterpretError: no window of the split holds the whole region.
        """
        found = self.windows_covering(contig, start, end)
        if not found.size:
            raise InterpretError(f"{contig}:{start}-{end}: no window of {self.data.path.parent} holds the whole region "
                                 f"(windows are {self.window_length} bp; contigs {', '.join(self.contigs)})")
        return int(found[0])

    def _file(self, shard: int) -> h5py.File:
        if shard not in self._files:
            self._files[shard] = h5py.File(self.data.shard_files[shard], "r")
        return self._files[shard]

    def read(self, windows: np.ndarray, cell: Optional[int]) -> dict[str, np.ndarray]:
        """The stored fields the batches use for ``windows`` [n] (any order, repeats allowed):
        tokens, and with ``cell`` that cell type's epigenome and labels."""
        windows = np.asarray(windows, dtype=np.int64)
        unique, inverse = np.unique(windows, return_inverse=True)
        shard_of = np.searchsorted(self._shard_offsets, unique, side="right") - 1
        fields = [f for f in self.processor.fields if cell is not None or f == schema.DATASET_TOKENS]
        parts: dict[str, list[np.ndarray]] = {f: [] for f in fields}
        for shard in np.unique(shard_of):
            rows = unique[shard_of == shard] - self._shard_offsets[shard]
            handle = self._file(int(shard))
            for name in fields:
                parts[name].append(handle[name][rows] if name == schema.DATASET_TOKENS else handle[name][cell, rows])
        return {name: np.concatenate(chunks)[inverse] for name, chunks in parts.items()}

    def codes(self, windows: np.ndarray) -> np.ndarray:
        """[n, S] stored base codes of ``windows``."""
        return codes_from_tokens(self.read(windows, None)[schema.DATASET_TOKENS], self.tokenizer)

    def labels(self, cell: int) -> np.ndarray:
        """[W, K] stored labels of cell type ``cell`` for the model's labels (1, 0, -1 ambiguous)."""
        out = [self._file(s)[schema.DATASET_LABELS][cell][:, self.processor.label_index]
               for s in range(len(self.data.shard_files))]
        return np.concatenate(out)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    # ------------------------------------------------------------------ scoring

    def batch(self, samples: Samples) -> dict[str, torch.Tensor]:
        """The batch dict of ``samples`` on the scorer's device (rows grouped by epigenome read)."""
        n = len(samples)
        parts: dict[str, np.ndarray] = {}
        for cell in np.unique(samples.epigenome_cells):
            rows = np.flatnonzero(samples.epigenome_cells == cell)
            arrays = self.read(samples.windows[rows], int(cell))
            for name, values in arrays.items():
                if name not in parts:
                    parts[name] = np.zeros((n,) + values.shape[1:], dtype=values.dtype)
                parts[name][rows] = values
        if samples.codes is not None:
            parts[schema.DATASET_TOKENS] = tokens_from_codes(samples.codes, self.tokenizer)
        parts[CELL] = samples.cells.astype(np.int64)
        # the builder computes every DNA-derived input (motif tracks) from these, possibly edited, tokens
        batch = self.builder(parts, np.random.default_rng(0))
        return {key: value.to(self.device) for key, value in batch.items()}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[n, K] logits of a batch dict."""
        return self.model.outputs(batch).logits

    def chunks(self, samples: Samples, progress: Optional[str] = None) -> Iterator[Samples]:
        """``samples`` in pieces of at most batch_size, with a progress bar when ``progress`` names it."""
        starts = range(0, len(samples), self.batch_size)
        if progress:
            starts = tqdm(starts, desc=progress, unit="batch", leave=False)
        for start in starts:
            yield samples.rows(slice(start, start + self.batch_size))

    @torch.inference_mode()
    def logits(self, samples: Samples, progress: Optional[str] = None) -> np.ndarray:
        """[n, K] float32 logits of ``samples``, batch_size at a time."""
        out = [self.forward(self.batch(piece)).float().cpu().numpy() for piece in self.chunks(samples, progress)]
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), dtype=np.float32)


def cpu_batch_size(config: EBertFinetuneConfig, tokens: int, threads: Optional[int] = None) -> int:
    """Samples per forward pass on the CPU for a model of ``config`` over ``tokens`` tokens with
    ``threads`` torch threads (default torch's): CPU_BATCH_BYTES per thread."""
    per_sample = tokens * max(config.filter_size, 3 * config.hidden_size) * 4
    budget = CPU_BATCH_BYTES * (threads or torch.get_num_threads())
    return int(min(DEFAULT_BATCH_SIZE, max(1, budget // per_sample)))


def samples_for(windows: Sequence[int] | np.ndarray, cell: int, epigenome_cell: Optional[int] = None,
                codes: Optional[np.ndarray] = None) -> Samples:
    """Samples of ``windows`` all in one cell type (with another's epigenome when given)."""
    windows = np.asarray(windows, dtype=np.int64)
    return Samples(windows, np.full(windows.size, cell), np.full(windows.size, cell if epigenome_cell is None
                                                                    else epigenome_cell), codes)
