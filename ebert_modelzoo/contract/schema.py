"""The on-disk dataset: one folder per split holding HDF5 shards, data_params.json and the vocab.

Writers (``ebert_modelzoo.preprocessing``) and readers (``ebert_modelzoo.data``) both import the
names below, so the layout is defined once; contract/data_params.py writes and reads
data_params.json.

Folder ``<output_dir>/<split>/`` (split is ``train``, ``validation`` or ``test``):
    data_params.json   the schema of this split (DataParams below, as JSON)
    vocab.txt          the tokenizer's vocabulary, one token per line (line number = id)
    shard-00000.h5     shards, complete ones only (written as ``.shard-00000.h5.tmp`` then renamed)

Each shard holds W windows (W differs per shard) and all C cell types of the split:
    window_chrom   int32   [W]          index into data_params.contigs
    window_start   int64   [W]          0-based start of the window on its contig
    tokens         uint16  [W, n_tok]   DNA token ids, no specials (DNA stored once per window)
    states         uint8   [C, W, N]    chromatin state per bin, 0 = unknown   (if states are used)
    signal         float16 [C, W, N, T] transformed (not normalised) signal per bin, NaN = missing;
                                        readers apply (x - tracks.mean) / tracks.std (if tracks are used)
    labels         int8    [C, W, K]    1 bound, 0 unbound, -1 ambiguous/missing (fine-tuning only)
    bin_labels     int8    [C, W, N, K] the same per bin (fine-tuning, when bin-level labels are made)
The epigenome is stored once per (cell type, window) at bin resolution: the C axis comes first
so a reader of one cell type touches contiguous chunks, and no (window x cell type) copy of the
DNA is ever written. A sample is the pair (window w, cell type c); a shard has W * C samples.

data_params.json (keys every reader may rely on; writers may add more):
    schema_version, kind ("pretraining" | "finetuning"), split, num_windows,
    shards: [{file, num_windows, sha256}],
    contigs: [names], window_length, stride, bin_size (all in bp),
    tokenizer: {k, vocab_size}, tokens_per_window (n_tok), tokens_per_bin, num_bins (N),
    cell_types: [names] (the C axis, in order),
    chromatin_states: null | {num_states (S), names},
    tracks: null | {names (the T axis), transform, mean: [per track], std: [per track]},
    labels: null | {names (the K axis)},
    provenance: {inputs with sizes and checksums, the preprocessing config}
"""
from __future__ import annotations

SCHEMA_VERSION = 1
DATA_PARAMS_FILE = "data_params.json"
VOCAB_FILE = "vocab.txt"
SHARD_PATTERN = "shard-{index:05d}.h5"
SHARD_GLOB = "shard-*.h5"
SPLITS = ("train", "validation", "test")

DATASET_WINDOW_CHROM = "window_chrom"
DATASET_WINDOW_START = "window_start"
DATASET_TOKENS = "tokens"
DATASET_STATES = "states"
DATASET_SIGNAL = "signal"
DATASET_LABELS = "labels"
DATASET_BIN_LABELS = "bin_labels"

LABEL_BOUND = 1
LABEL_UNBOUND = 0
LABEL_AMBIGUOUS = -1
