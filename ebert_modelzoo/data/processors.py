"""The registered data processors: one config in, a DataLoader of batch dicts (batch.py) out.

A feature group is in the batch only when both the config asks for it (``use_*``) and the split
holds it; ``features()`` says what a processor yields, under the model config's key names, so the
trainer can check the two agree before building anything.

Signal is stored transformed (log1p/arcsinh) but not normalised: the processor applies
(x - tracks.mean) / tracks.std from data_params.json (the train split's statistics) and turns NaN
(not measured) into 0 with signal_mask 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from ebert_modelzoo.config.base import parse_section
from ebert_modelzoo.config.data import (
    DataLoaderConfig,
    FinetuningDataProcessorConfig,
    PretrainingDataProcessorConfig,
)
from ebert_modelzoo.contract import layout, schema
from ebert_modelzoo.contract.batch import state_mask_id
from ebert_modelzoo.contract.data_params import DataParams
from ebert_modelzoo.data.augment import ReverseComplement
from ebert_modelzoo.data.loader import CELL, ResumableDataLoader, ShardDataset
from ebert_modelzoo.data.masking import StateMasking, TokenMasking
from ebert_modelzoo.data.motifs import MotifTracks, load_motifs
from ebert_modelzoo.data.sampler import Blocks, sample_blocks
from ebert_modelzoo.data.shards import (
    ShardReader,
    Vocab,
    check_shard_shapes,
    load_split,
    shard_has_dataset,
)
from ebert_modelzoo.errors import DatasetError
from ebert_modelzoo.tokenizer import DNATokenizer


@dataclass(frozen=True)
class DataFeatures:
    """What a processor's batches hold; the counts use the model config's key names (0 = absent)."""

    vocab_size: int
    max_sequence_length: int
    tokens_per_bin: int
    num_bins: int
    num_chromatin_states: int
    num_signal_tracks: int
    num_motif_tracks: int
    num_cell_types: int
    num_labels: int
    label_names: tuple[str, ...]
    groups: tuple[str, ...]
    """Batch groups (batch.GROUPS) present in every batch."""
    dims: dict[str, int] = field(default_factory=dict)
    """Sizes of the batch dimensions (B, L, N, ...), ready for batch.check_batch."""


@dataclass(frozen=True)
class BatchBuilder:
    """Turns the rows of one batch read from the shards into the batch dict (runs in the worker)."""

    num_tokens: int
    seq_len: int
    cls_id: int
    sep_id: int
    pad_id: int
    n_id: int
    dna: bool
    states: bool
    signal: bool
    cell_type: bool
    token_masking: Optional[TokenMasking] = None
    state_masking: Optional[StateMasking] = None
    signal_tracks: Optional[np.ndarray] = None
    """Indices of the data's tracks fed, in order."""
    signal_mean: Optional[np.ndarray] = None
    signal_std: Optional[np.ndarray] = None
    label_index: Optional[np.ndarray] = None
    bin_labels: bool = False
    motif_tracks: Optional[MotifTracks] = None
    reverse_complement: Optional[ReverseComplement] = None

    def __call__(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        if self.reverse_complement is not None:
            arrays = self.reverse_complement(arrays, rng)
        tokens = arrays[schema.DATASET_TOKENS]
        rows, n = tokens.shape[0], self.num_tokens
        input_ids = np.full((rows, self.seq_len), self.pad_id, dtype=np.int32)
        input_ids[:, layout.CLS_POSITION] = self.cls_id
        # [PAD] inside the window: a labelled sequence shorter than the window (sequence_data.py)
        real = tokens != self.pad_id
        input_ids[:, layout.dna_positions(n)] = tokens if self.dna else np.where(real, self.n_id, self.pad_id)
        input_ids[:, layout.sep_position(n)] = self.sep_id
        attention_mask = np.zeros((rows, self.seq_len), dtype=np.int32)
        attention_mask[:, : layout.sequence_length(n)] = 1
        attention_mask[:, layout.dna_positions(n)] = real
        out: dict[str, np.ndarray] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_masking is not None:
            out.update(self.token_masking.apply(input_ids, n, rng))
        if self.states:
            states = arrays[schema.DATASET_STATES].astype(np.int32)
            if self.state_masking is not None:
                out.update(self.state_masking.apply(states, rng))
            out["chromatin_states"] = states
        if self.signal:
            signal = arrays[schema.DATASET_SIGNAL][..., self.signal_tracks].astype(np.float32)
            signal = (signal - self.signal_mean) / self.signal_std
            measured = ~np.isnan(signal)
            signal[~measured] = 0.0
            out["signal"] = signal
            out["signal_mask"] = measured.astype(np.float32)
        if self.motif_tracks is not None:
            out["motif_scores"] = self.motif_tracks(tokens)
        if self.cell_type:
            out["cell_type_ids"] = arrays[CELL].astype(np.int32)
        if self.label_index is not None:
            name = schema.DATASET_BIN_LABELS if self.bin_labels else schema.DATASET_LABELS
            raw = arrays[name][..., self.label_index]
            prefix = "bin" if self.bin_labels else "seq"
            out[f"{prefix}_labels"] = (raw == schema.LABEL_BOUND).astype(np.float32)
            out[f"{prefix}_label_weights"] = (raw != schema.LABEL_AMBIGUOUS).astype(np.float32)
        return {key: torch.from_numpy(value) for key, value in out.items()}


def _pick_names(wanted: Optional[list[str]], available: tuple[str, ...], key: str, params: DataParams) -> list[int]:
    """Indices of ``wanted`` in ``available`` (all when None); unknown or repeated names are errors."""
    if wanted is None:
        return list(range(len(available)))
    if len(set(wanted)) != len(wanted):
        raise DatasetError(f"{key}: names repeat: {wanted}")
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise DatasetError(f"{key}: {unknown} not in {params.path} (has {list(available)})")
    return [available.index(name) for name in wanted]


class _EBertDataProcessor:
    """What both processors share: reading the split, checking it against the config, the loader."""

    config_class: type[DataLoaderConfig]
    # sampler tuning (see sampler.py): virtual streams, batches per chunk (windows per contiguous
    # read: the loader's shuffle_block_windows)
    streams = 8
    chunk_batches = 8

    def __init__(self, config: DataLoaderConfig) -> None:
        # The annotations name the config class alone: Model Zoo derives a processor's config
        # schema from them. A plain mapping (CSX input workers, tests) is validated here.
        if not isinstance(config, self.config_class):
            config = parse_section(self.config_class, config, "dataloader")
        self.config = config
        self.params, self.vocab = load_split(config.data_dir)
        params = self.params
        self.cells = _pick_names(config.cell_types, params.cell_types, "cell_types", params)
        needed = layout.sequence_length(params.tokens_per_window)
        if config.max_sequence_length < needed:
            raise DatasetError(
                f"max_sequence_length {config.max_sequence_length} is shorter than tokens_per_window "
                f"{params.tokens_per_window} + [CLS] + [SEP] in {params.path}"
            )
        self.use_states = config.use_chromatin_states and params.num_states > 0
        self.use_signal = config.use_signal and len(params.track_names) > 0
        self.tracks = _pick_names(config.signal_tracks, params.track_names, "signal_tracks", params)
        self.fields = (schema.DATASET_TOKENS,)
        if self.use_states:
            self.fields += (schema.DATASET_STATES,)
        if self.use_signal:
            self.fields += (schema.DATASET_SIGNAL,)
        self.motif_tracks: Optional[MotifTracks] = None
        if config.motif_file is not None:
            motifs = load_motifs(config.motif_file)
            names = tuple(config.motif_tracks) if config.motif_tracks is not None else motifs.tfs
            if len(set(names)) != len(names) or not names:
                raise DatasetError(f"motif_tracks: names must be distinct and at least one, got {list(names)}")
            tokenizer = DNATokenizer.from_vocab_file(Path(config.data_dir) / schema.VOCAB_FILE)
            self.motif_tracks = MotifTracks.build(motifs, names, tokenizer, params.tokens_per_bin,
                                                  config.motif_window_bp)

    def _builder(self) -> BatchBuilder:
        raise NotImplementedError

    def batch_builder(self) -> BatchBuilder:
        """What turns rows read from the shards into batch dicts (e.g. to score edited samples)."""
        return self._builder()

    def features(self) -> DataFeatures:
        """What the batches hold (see DataFeatures)."""
        raise NotImplementedError

    def _base_features(self, groups: tuple[str, ...], dims: dict[str, int], labels: tuple[str, ...]) -> DataFeatures:
        p, c = self.params, self.config
        groups = ("dna",) + groups
        dims = {"B": c.batch_size, "L": c.max_sequence_length, **dims}
        if self.use_states:
            groups += ("states",)
            dims["N"] = p.num_bins
        if self.use_signal:
            groups += ("signal",)
            dims.update(N=p.num_bins, T=len(self.tracks))
        if self.motif_tracks is not None:
            groups += ("motifs",)
            dims.update(N=p.num_bins, M=len(self.motif_tracks.names))
        if c.use_cell_type:
            groups += ("cell_type",)
        return DataFeatures(
            vocab_size=self.vocab.size,
            max_sequence_length=c.max_sequence_length,
            tokens_per_bin=p.tokens_per_bin,
            num_bins=p.num_bins,
            num_chromatin_states=p.num_states if self.use_states else 0,
            num_signal_tracks=len(self.tracks) if self.use_signal else 0,
            num_motif_tracks=len(self.motif_tracks.names) if self.motif_tracks is not None else 0,
            num_cell_types=len(p.cell_types) if c.use_cell_type else 0,
            num_labels=len(labels),
            label_names=labels,
            groups=groups,
            dims=dims,
        )

    def _extra_blocks(self) -> Optional[Blocks]:
        """Samples an epoch visits more than once (none here; see the fine-tuning processor)."""
        return None

    def dataset(self) -> ShardDataset:
        """The IterableDataset behind create_dataloader (one epoch per iteration)."""
        c = self.config
        check_shard_shapes(self.params, self.fields)
        return ShardDataset(
            self.params,
            self.fields,
            self.cells,
            c.batch_size,
            self._builder(),
            seed=c.shuffle_seed,
            shuffle=c.shuffle,
            drop_last=c.drop_last,
            block_windows=c.shuffle_block_windows,
            streams=self.streams,
            chunk_batches=self.chunk_batches,
            extra_blocks=self._extra_blocks(),
        )

    def create_dataloader(self) -> ResumableDataLoader:
        """A DataLoader yielding batch dicts of torch tensors, with state_dict/load_state_dict."""
        c = self.config
        extra: dict[str, Any] = {}
        if c.num_workers > 0:
            extra["persistent_workers"] = c.persistent_workers
            if c.prefetch_factor is not None:
                extra["prefetch_factor"] = c.prefetch_factor
        return ResumableDataLoader(self.dataset(), num_workers=c.num_workers, **extra)

    def _common_builder_args(self) -> dict[str, Any]:
        v: Vocab = self.vocab
        return dict(
            num_tokens=self.params.tokens_per_window,
            seq_len=self.config.max_sequence_length,
            cls_id=v.cls_id,
            sep_id=v.sep_id,
            pad_id=v.pad_id,
            n_id=v.n_id,
            dna=self.config.use_dna,
            states=self.use_states,
            signal=self.use_signal,
            signal_tracks=np.asarray(self.tracks, dtype=np.int64),
            signal_mean=self.params.track_mean[self.tracks],
            signal_std=self.params.track_std[self.tracks],
            cell_type=self.config.use_cell_type,
            motif_tracks=self.motif_tracks,
            reverse_complement=(ReverseComplement(v.reverse_complement, self.config.reverse_complement_prob)
                                if self.config.reverse_complement_prob > 0 else None),
        )


class EBertPretrainingDataProcessor(_EBertDataProcessor):
    """Pre-training batches: DNA with dynamic MLM masking, optionally masked chromatin states."""

    config_class = PretrainingDataProcessorConfig

    def __init__(self, config: PretrainingDataProcessorConfig) -> None:
        super().__init__(config)
        if self.config.state_mask_rate > 0 and not self.use_states:
            raise DatasetError(
                "state_mask_rate > 0 needs chromatin states, but "
                + ("use_chromatin_states is false" if not self.config.use_chromatin_states
                   else f"{self.params.path} has none")
            )

    def _builder(self) -> BatchBuilder:
        c, v = self.config, self.vocab
        is_target = np.zeros(v.size, dtype=bool)
        is_target[v.kmer_ids] = True
        token_masking = TokenMasking(
            rate=c.mask_rate,
            mask_prob=c.mask_token_prob,
            random_prob=c.random_token_prob,
            max_predictions=c.max_predictions_per_seq,
            mask_id=v.mask_id,
            kmer_ids=v.kmer_ids,
            is_target=is_target,
        )
        state_masking = None
        if c.state_mask_rate > 0:
            state_masking = StateMasking(
                rate=c.state_mask_rate,
                max_predictions=c.max_state_predictions,
                mask_state=state_mask_id(self.params.num_states),
            )
        return BatchBuilder(**self._common_builder_args(), token_masking=token_masking, state_masking=state_masking)

    def features(self) -> DataFeatures:
        c = self.config
        groups: tuple[str, ...] = ("mlm",)
        dims = {"P": c.max_predictions_per_seq}
        if c.state_mask_rate > 0:
            groups += ("state_mlm",)
            dims["Q"] = c.max_state_predictions
        return self._base_features(groups, dims, ())


class EBertFinetuningDataProcessor(_EBertDataProcessor):
    """Fine-tuning batches: DNA + epigenome of one cell type with multi-label targets."""

    config_class = FinetuningDataProcessorConfig

    def __init__(self, config: FinetuningDataProcessorConfig) -> None:
        super().__init__(config)
        p = self.params
        if not p.label_names:
            raise DatasetError(f"{p.path}: no labels (kind {p.kind!r}); fine-tuning needs a fine-tuning split")
        self.label_index = _pick_names(self.config.labels, p.label_names, "labels", p)
        self.label_names = tuple(p.label_names[i] for i in self.label_index)
        if self.config.label_level == "bin":
            if not shard_has_dataset(p, schema.DATASET_BIN_LABELS):
                raise DatasetError(f"label_level is 'bin' but {p.shard_files[0]} has no bin_labels dataset")
            self.fields += (schema.DATASET_BIN_LABELS,)
        else:
            self.fields += (schema.DATASET_LABELS,)

    def _builder(self) -> BatchBuilder:
        return BatchBuilder(
            **self._common_builder_args(),
            label_index=np.asarray(self.label_index, dtype=np.int64),
            bin_labels=self.config.label_level == "bin",
        )

    def _label_dataset(self) -> str:
        return schema.DATASET_BIN_LABELS if self.config.label_level == "bin" else schema.DATASET_LABELS

    def _each_labels(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(shard, cell, raw labels [windows, ..., K]) for every shard and configured cell type."""
        name = self._label_dataset()
        check_shard_shapes(self.params, (name,))
        reader = ShardReader(self.params, (name,))
        try:
            for shard in range(len(self.params.shard_files)):
                for cell in self.cells:
                    raw = reader.read(shard, 0, self.params.shard_windows[shard], cell)[name]
                    yield shard, cell, raw[..., self.label_index]
        finally:
            reader.close()

    def bound_samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(shard, window, cell) index arrays of the samples with a bound label (any configured
        label; for bin labels any bin), in shard, cell, window order."""
        found = []
        for shard, cell, raw in self._each_labels():
            bound = (raw == schema.LABEL_BOUND).reshape(raw.shape[0], -1).any(axis=1)
            windows = np.flatnonzero(bound)
            found.append((np.full(windows.size, shard), windows, np.full(windows.size, cell)))
        if not found:
            return (np.zeros(0, dtype=np.int64),) * 3
        return tuple(np.concatenate([f[i] for f in found]).astype(np.int64) for i in range(3))

    def _extra_blocks(self) -> Optional[Blocks]:
        repeats = self.config.bound_repeats - 1
        return sample_blocks(*self.bound_samples(), repeats) if repeats else None

    def label_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(positives, labelled) per label [K] over the configured cell types and every window,
        as the batches count them (bound = 1, ambiguous/missing = no label; a sample with a bound
        label counts bound_repeats times); int64."""
        positives = np.zeros(len(self.label_index), dtype=np.int64)
        labelled = np.zeros(len(self.label_index), dtype=np.int64)
        for _, _, raw in self._each_labels():
            copies = np.ones(raw.shape[0], dtype=np.int64)
            copies[(raw == schema.LABEL_BOUND).reshape(raw.shape[0], -1).any(axis=1)] = self.config.bound_repeats
            copies = copies.reshape((-1,) + (1,) * (raw.ndim - 1))
            positives += ((raw == schema.LABEL_BOUND) * copies).reshape(-1, raw.shape[-1]).sum(axis=0)
            labelled += ((raw != schema.LABEL_AMBIGUOUS) * copies).reshape(-1, raw.shape[-1]).sum(axis=0)
        return positives, labelled

    def features(self) -> DataFeatures:
        k = len(self.label_index)
        if self.config.label_level == "bin":
            return self._base_features(("bin_labels",), {"N": self.params.num_bins, "K": k}, self.label_names)
        return self._base_features(("seq_labels",), {"K": k}, self.label_names)


PROCESSORS: dict[str, type[_EBertDataProcessor]] = {
    "EBertPretrainingDataProcessor": EBertPretrainingDataProcessor,
    "EBertFinetuningDataProcessor": EBertFinetuningDataProcessor,
}
"""Registered processor names (the configs' ``data_processor`` values) -> classes."""


def create_processor(config: DataLoaderConfig) -> _EBertDataProcessor:
    """The processor a dataloader config names."""
    return PROCESSORS[config.data_processor](config)
