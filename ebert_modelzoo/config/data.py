"""Data processor config sections (``trainer.fit.train_dataloader`` and friends), one class per
registered processor name; ``data_processor`` is the discriminator."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from ebert_modelzoo.config.base import DataSection, StrictConfig


class DataLoaderConfig(StrictConfig):
    """Keys every EBERT data processor takes (Model Zoo's names)."""

    data_dir: str
    """Split folder written by data_processing/ (holds data_params.json, vocab.txt, shards)."""
    batch_size: int = Field(ge=1)
    """Global batch size."""
    shuffle: bool = True
    """Shuffle samples each epoch (seeded by shuffle_seed)."""
    shuffle_seed: int = 0
    """Seed of the shuffle order and of dynamic masking."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes; each reads a disjoint set of shards."""
    prefetch_factor: Optional[int] = None
    """Batches prefetched per worker (only with num_workers > 0)."""
    persistent_workers: bool = False
    """Keep workers alive between epochs (only with num_workers > 0)."""
    shuffle_block_windows: int = Field(64, ge=1)
    """Windows per contiguous read when shuffling (ebert_modelzoo/data/sampler.py): a batch mixes
    the samples of a few such blocks, so smaller blocks give better-mixed batches (each rare
    positive and its overlapping neighbours spread over more batches) for more, smaller reads."""
    drop_last: bool = True
    """Drop the last incomplete batch, keeping every batch's shape static."""
    max_sequence_length: int = 512
    """Tokens per sample with [CLS]/[SEP]; shorter windows are padded with [PAD]."""
    use_dna: bool = True
    """Feed the DNA sequence; false replaces every DNA token by [N] (the epigenome-only ablation)."""
    use_chromatin_states: bool = True
    """Feed chromatin states (if the data has them); off for a DNA-only or signal-only ablation."""
    use_signal: bool = True
    """Feed signal tracks (if the data has them)."""
    signal_tracks: Optional[list[str]] = None
    """Feed only these tracks of the data, in this order (default: all). For held-out cell types,
    the tracks they have: a track always measured in training but missing in evaluation is an
    input the model never learnt to do without."""
    use_cell_type: bool = False
    """Feed the cell-type id (only meaningful when cell types are shared between train and eval)."""
    cell_types: Optional[list[str]] = None
    """Use only these cell types of the data (default: all)."""
    motif_file: Optional[str] = None
    """Known motifs as per-bin input tracks (``motif_scores``, the ENCODE-DREAM winners' motif
    features): a motif JSON file (ebert_modelzoo/data/motifs.py's format, e.g. JASPAR matrices). Each
    track is the best two-strand score of one motif's sites centred in each bin, as a fraction
    of the consensus score, clipped to [0, 1], computed from the window's DNA as batches are
    built. None = no motif tracks."""
    motif_tracks: Optional[list[str]] = None
    """TFs of motif_file to score, in track order (default: every motif of the file)."""
    motif_window_bp: Optional[int] = Field(None, ge=1)
    """Sites count for a bin when centred within this many bp around the bin's centre (e.g. 600
    for a 200 bp bin and its two flanks); default: the bin itself."""

    reverse_complement_prob: float = Field(0.0, ge=0, le=1)
    """Chance that a sample is read from the other DNA strand (data/augment.py), drawn per sample
    with the masking seed; 0 = always the forward strand (evaluation loaders keep 0)."""

    @model_validator(mode="after")
    def _check_loader(self) -> "DataLoaderConfig":
        if self.num_workers == 0 and (self.prefetch_factor is not None or self.persistent_workers):
            raise ValueError("prefetch_factor and persistent_workers need num_workers > 0")
        if (self.motif_tracks is not None or self.motif_window_bp is not None) and self.motif_file is None:
            raise ValueError("motif_tracks and motif_window_bp need motif_file")
        return self


class PretrainingDataProcessorConfig(DataLoaderConfig, DataSection):
    """Pre-training samples with dynamic masking, redrawn every time a sample is read."""

    data_processor: Literal["EBertPretrainingDataProcessor"]
    """Registered processor name."""
    mask_rate: float = Field(0.15, gt=0, lt=1)
    """Fraction of DNA tokens selected for prediction."""
    mask_token_prob: float = Field(0.8, ge=0)
    """Of the selected tokens, the fraction replaced by [MASK]."""
    random_token_prob: float = Field(0.1, ge=0)
    """Of the selected tokens, the fraction replaced by a random DNA token (the rest stay)."""
    max_predictions_per_seq: int = Field(80, ge=1)
    """Fixed number of masked positions per sample (P); padded with masked_lm_mask = 0."""
    state_mask_rate: float = Field(0.0, ge=0, lt=1)
    """Fraction of bins whose chromatin state is masked for the second objective; 0 = off."""
    max_state_predictions: int = Field(0, ge=0)
    """Fixed number of masked bins per sample (Q)."""

    @model_validator(mode="after")
    def _check_masking(self) -> "PretrainingDataProcessorConfig":
        if self.mask_token_prob + self.random_token_prob > 1.0:
            raise ValueError(
                f"mask_token_prob ({self.mask_token_prob}) + random_token_prob "
                f"({self.random_token_prob}) must be within [0, 1]"
            )
        if not self.use_dna:
            raise ValueError("use_dna: false leaves no DNA token to mask; it is for fine-tuning only")
        if self.state_mask_rate > 0 and self.max_state_predictions < 1:
            raise ValueError("state_mask_rate > 0 needs max_state_predictions >= 1")
        return self


class FinetuningDataProcessorConfig(DataLoaderConfig, DataSection):
    """Fine-tuning samples: one (window, cell type) with its multi-label targets."""

    data_processor: Literal["EBertFinetuningDataProcessor"]
    """Registered processor name."""
    labels: Optional[list[str]] = None
    """Use only these labels (e.g. TFs) of the data, in this order (default: all)."""
    label_level: Literal["sequence", "bin"] = "sequence"
    """Targets per window (seq_labels) or per bin (bin_labels)."""
    bound_repeats: int = Field(1, ge=1)
    """Each sample (window, cell type) with a bound label (any of ``labels``; with label_level bin,
    any bin) appears this many times per epoch, each copy at its own shuffled place: a training
    loader shows rare positives more often (ENCODE-DREAM entries sampled bound windows the same
    way). 1 = every sample once. Scores are ranked per label, so auROC/auPRC are unaffected by the
    shifted base rate; calibrated probabilities are not."""
    strand_average: bool = False
    """Evaluation loaders: score every sample on both DNA strands and average the two logits (the
    other strand as ``reverse_complement_prob: 1`` reads it; a bin head's logits are put back in
    forward bin order), as DeepSEA and FactorNet score; the reported loss is the mean of the two
    strands' losses. Read by run.py's own trainer (eval, eval_all, train_and_eval) and the
    prediction tool, at the cost of a second pass; Model Zoo's Trainer scores one strand (run.py
    CSX refuses the key there)."""

    @model_validator(mode="after")
    def _check_strands(self) -> "FinetuningDataProcessorConfig":
        if self.strand_average and self.reverse_complement_prob > 0:
            raise ValueError("strand_average reads both strands itself: reverse_complement_prob must be 0")
        return self


PROCESSOR_OF_MODEL = {
    "ebert": "EBertPretrainingDataProcessor",
    "ebert_finetune": "EBertFinetuningDataProcessor",
}
"""Which data processor (``data_processor``) feeds which model (``trainer.init.model.name``)."""
