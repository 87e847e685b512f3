"""Model config sections (``trainer.init.model``): the encoder shared by both tasks, and one class
per registered model name. Keys follow Model Zoo's BERT names."""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, model_validator

from ebert_modelzoo.config.base import ModelSection, StrictConfig
from ebert_modelzoo.tokenizer import kmer_size


class EBertEncoderConfig(StrictConfig):
    """Embeddings + transformer encoder. Every epigenetic input is off at 0; all off = DNA BERT."""

    vocab_size: int = Field(ge=1)
    """DNA vocabulary size, including the BERT specials; must match the data's vocab.txt."""
    hidden_size: int = Field(768, ge=1)
    """Width of the encoder."""
    num_hidden_layers: int = Field(12, ge=1)
    """Number of transformer blocks."""
    num_heads: int = Field(12, ge=1)
    """Attention heads per block; must divide hidden_size."""
    filter_size: int = Field(3072, ge=1)
    """Width of the feed-forward layer inside each block."""
    max_position_embeddings: int = Field(512, ge=1)
    """Longest sequence (tokens, with [CLS]/[SEP]) the position table covers."""
    position_embedding_type: Literal["learned", "fixed"] = "learned"
    """Learned absolute positions (BERT) or fixed sinusoidal ones."""
    dropout_rate: float = Field(0.1, ge=0, lt=1)
    """Dropout on embeddings, attention output and feed-forward output."""
    attention_dropout_rate: float = Field(0.1, ge=0, lt=1)
    """Dropout on attention probabilities."""
    layer_norm_epsilon: float = 1e-12
    """LayerNorm epsilon (BERT uses 1e-12)."""
    encoder_nonlinearity: Literal["gelu", "gelu_tanh", "relu"] = "gelu"
    """Feed-forward activation (exact erf GELU as in BERT)."""
    norm_first: bool = False
    """False: post-LN as in BERT. True: pre-LN (more stable for deep or low-precision runs)."""
    attention_kernel: Literal["sdpa", "explicit"] = "sdpa"
    """torch scaled_dot_product_attention, or explicit matmul-softmax for backends without it."""
    sparse_final_layer: bool = True
    """Compute the last block only at the token rows the heads read (masked tokens, pooled bins,
    [CLS]): same loss and gradients as computing every row, fewer FLOPs. False computes all rows."""
    initializer_range: float = 0.02
    """Std of the truncated-normal init of weights."""
    tokens_per_bin: int = Field(200, ge=1)
    """DNA tokens per epigenome bin (bin_size / k); ties every token to one bin."""
    num_chromatin_states: int = Field(0, ge=0)
    """States of the segmentation model (e.g. 15, 18, 25 for ChromHMM); 0 = no state input."""
    num_signal_tracks: int = Field(0, ge=0)
    """Continuous signal tracks per bin (DNase, ATAC, histone marks); 0 = no signal input."""
    num_cell_types: int = Field(0, ge=0)
    """Cell types for a learned cell-type embedding; 0 = no cell-type input."""
    num_motif_tracks: int = Field(0, ge=0)
    """Known-motif tracks per bin (the loaders' motif_file/motif_tracks), projected like the
    signal tracks; 0 = none: the model reads motifs only from the DNA tokens, as the paper's EBERT."""
    dna_conv_filters: int = Field(0, ge=0)
    """Filters of a nucleotide-resolution convolution over the window's DNA whose maxima per token
    are added to the token embeddings (models/dna_stem.py); 0 = off: k-mer tokens only, as the
    paper's EBERT. Needs a k-mer vocabulary."""
    dna_conv_width: int = Field(15, ge=1)
    """Width of that convolution in bases (odd, so it is centred on each base)."""

    @model_validator(mode="after")
    def _check_sizes(self) -> "EBertEncoderConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.dna_conv_width % 2 == 0:
            raise ValueError(f"dna_conv_width must be odd, got {self.dna_conv_width}")
        if self.dna_conv_filters and kmer_size(self.vocab_size) is None:
            raise ValueError(f"dna_conv_filters needs a k-mer vocabulary (6 specials + 4^k ids), "
                             f"but vocab_size is {self.vocab_size}")
        return self


class EBertPretrainConfig(EBertEncoderConfig, ModelSection):
    """EBERT pre-training: masked DNA tokens, optionally masked chromatin states."""

    name: Literal["ebert"]
    """Registered model name."""
    mlm_loss_weight: float = 1.0
    """Weight of the masked-DNA-token loss."""
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    """Label smoothing of the masked-token cross-entropy."""
    state_mlm_loss_weight: float = 0.0
    """Weight of the masked-chromatin-state loss; 0 turns the second objective (and its head) off."""
    share_embedding_weights: bool = True
    """Tie the MLM decoder to the DNA input embeddings, as BERT does."""

    @model_validator(mode="after")
    def _check_state_objective(self) -> "EBertPretrainConfig":
        if self.state_mlm_loss_weight > 0 and self.num_chromatin_states == 0:
            raise ValueError("state_mlm_loss_weight > 0 needs num_chromatin_states > 0")
        return self


class EBertFinetuneConfig(EBertEncoderConfig, ModelSection):
    """EBERT fine-tuning: multi-label classification per window (e.g. TFs) or per bin."""

    name: Literal["ebert_finetune"]
    """Registered model name."""
    num_labels: int = Field(ge=1)
    """Number of labels (e.g. TFs) predicted at once."""
    label_names: Optional[list[str]] = None
    """Names of the labels, in the order of the data's label axis. Optional: our trainer reads them
    from the data; Cerebras Model Zoo's Trainer names its per-label metrics with them (label_0,
    label_1, ... without). Checked against the data when given."""
    head: Literal["sequence", "bin"] = "sequence"
    """Classify the whole window from [CLS] ('sequence') or each bin ('bin')."""
    classifier_dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout before the classification layer."""
    positive_weight: Optional[Union[list[float], Literal["auto"]]] = None
    """Weight of the positive term of each label's binary cross-entropy (torch's pos_weight), one
    per label; None = 1 for all. "auto" is resolved by the trainer before the model is built, from
    the training split's label counts (see ebert_modelzoo/training/label_weights.py), and the
    resolved list is what the run's checkpoints record."""
    pooling: Literal["cls", "center_bins"] = "cls"
    """Sequence head input: the [CLS] vector (BERT), or the mean of the tokens of the window's
    central pooled_bins bins (where window labels are defined)."""
    pooled_bins: int = 1
    """Bins averaged by pooling: center_bins, centred in the window's num_bins bins."""
    num_bins: Optional[int] = None
    """Bins per window (data_params.json's num_bins); needed by pooling: center_bins, checked
    against the data."""
    head_bin_inputs: bool = False
    """With pooling: center_bins, the head also reads the pooled bins' own inputs (mean over them
    of the normalised signal, its presence mask, the motif tracks and the one-hot chromatin
    state) beside the encoder's pooled vector: a wide-and-deep head, so what the window's centre
    measures reaches the classifier in one step, and the encoder adds what the context says."""
    head_linear_bins: int = 0
    """> 0: the sequence head adds to its logits a linear function (weights starting at 0) of the
    inputs of the window's central head_linear_bins bins, each bin separately: the normalised
    signal, its presence mask, the motif tracks, the one-hot chromatin state, and every motif
    track x signal track product (the motif-in-open-chromatin AND the ENCODE-DREAM winners
    built by hand). Needs num_bins. 0 = no such term."""
    head_linear_scale: float = Field(1.0, gt=0)
    """Multiplier of that linear term. Adam's steps are about the learning rate whatever the
    gradient, so this is the term's learning rate relative to the schedule's: a linear model
    over a few hundred steps needs a larger one than the pre-trained encoder."""

    @model_validator(mode="after")
    def _check_labels(self) -> "EBertFinetuneConfig":
        if self.label_names is not None and len(self.label_names) != self.num_labels:
            raise ValueError(
                f"label_names has {len(self.label_names)} names but num_labels is {self.num_labels}"
            )
        if isinstance(self.positive_weight, list):
            if len(self.positive_weight) != self.num_labels:
                raise ValueError(f"positive_weight has {len(self.positive_weight)} values but num_labels "
                                 f"is {self.num_labels}")
            if not all(0.0 < w < float("inf") for w in self.positive_weight):
                raise ValueError(f"positive_weight values must be finite and > 0, got {self.positive_weight}")
        return self

    @model_validator(mode="after")
    def _check_pooling(self) -> "EBertFinetuneConfig":
        if self.head_bin_inputs and self.pooling != "center_bins":
            raise ValueError("head_bin_inputs needs pooling: center_bins (it reads the pooled bins' inputs)")
        if self.head_linear_bins:
            if self.head != "sequence" or self.num_bins is None:
                raise ValueError("head_linear_bins needs head: sequence and num_bins (the data's bins per window)")
            if not 1 <= self.head_linear_bins <= self.num_bins or (self.num_bins - self.head_linear_bins) % 2:
                raise ValueError(f"head_linear_bins must be 0, or in [1, num_bins] with num_bins - head_linear_bins "
                                 f"even (centred), got {self.head_linear_bins}, num_bins {self.num_bins}")
        if self.pooling == "cls":
            return self
        if self.head != "sequence":
            raise ValueError(f"pooling {self.pooling!r} is for head: sequence (the bin head pools every bin)")
        if self.num_bins is None:
            raise ValueError("pooling center_bins needs num_bins (the data's bins per window)")
        if not 1 <= self.pooled_bins <= self.num_bins or (self.num_bins - self.pooled_bins) % 2:
            raise ValueError(f"pooled_bins must be in [1, num_bins] with num_bins - pooled_bins even "
                             f"(centred), got pooled_bins {self.pooled_bins}, num_bins {self.num_bins}")
        if self.num_bins * self.tokens_per_bin + 2 > self.max_position_embeddings:
            raise ValueError(f"num_bins x tokens_per_bin + 2 ({self.num_bins * self.tokens_per_bin + 2}) "
                             f"exceeds max_position_embeddings ({self.max_position_embeddings})")
        return self
