"""A convolutional peer of the field's standard shape (DeepBind / FactorNet-like), on EBERT's inputs.

DNA enters one-hot at base resolution: a convolution (motif-detector filters) -> ReLU -> max
pooling -> a second convolution -> ReLU -> global max pooling; the per-bin epigenome (the
``floor_baselines`` epigenome features: normalised signal, presence, one-hot states of every bin)
joins that vector before two dense layers that give one logit per TF. Training draws batches
uniformly from the training split's (window, cell type) samples, flips each batch to the reverse
complement with probability 1/2 (bins reversed with it), and scoring averages the two strands'
probabilities (FactorNet's reverse-complement handling). Seeded: weights and batch order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from ebert_modelzoo.contract import schema
from ebert_modelzoo.data.motifs import N_CODE, token_code_table
from ebert_modelzoo.data.shards import ShardReader, load_split
from ebert_modelzoo.errors import DatasetError
from ebert_modelzoo.evaluation.floor_baselines import read_floor_features
from ebert_modelzoo.evaluation.sample_scores import SampleScores
from ebert_modelzoo.tokenizer import DNATokenizer


@dataclass(frozen=True)
class CNNConfig:
    """Shape and training of the peer."""

    filters: int = 32
    filter_width: int = 19
    """Width of the first-layer filters (bp): a TF motif's length."""
    pool: int = 25
    second_filters: int = 32
    second_width: int = 5
    hidden: int = 64
    steps: int = 600
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 1


class CNNPeer(nn.Module):
    """One-hot DNA [B, 4, S] and per-bin epigenome [B, F] -> logits [B, K]."""

    def __init__(self, config: CNNConfig, bin_features: int, num_labels: int) -> None:
        super().__init__()
        self.dna = nn.Sequential(
            nn.Conv1d(4, config.filters, config.filter_width), nn.ReLU(), nn.MaxPool1d(config.pool),
            nn.Conv1d(config.filters, config.second_filters, config.second_width), nn.ReLU(),
            nn.AdaptiveMaxPool1d(1), nn.Flatten())
        self.dense = nn.Sequential(nn.Linear(config.second_filters + bin_features, config.hidden), nn.ReLU(),
                                   nn.Linear(config.hidden, num_labels))

    def forward(self, one_hot: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        return self.dense(torch.cat([self.dna(one_hot), bins], dim=1))


def _one_hot(codes: np.ndarray) -> torch.Tensor:
    """[n, S] base codes (N = 4) -> [n, 4, S] float one-hot (N is all zeros)."""
    table = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])
    return torch.from_numpy(table[codes]).transpose(1, 2).contiguous()


def _reverse_complement(one_hot: torch.Tensor, bins: torch.Tensor, num_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs of the other strand: bases complemented (A<->T, C<->G) and reversed, bins reversed."""
    flipped = one_hot.flip(dims=(1, 2))  # rows A C G T -> T G C A, positions reversed
    per_bin = bins.view(bins.shape[0], num_bins, -1).flip(dims=(1,)).reshape(bins.shape)
    return flipped, per_bin


def read_codes(data_dir: str | Path) -> np.ndarray:
    """[W, S] base codes of every window of a split (file order)."""
    params, _ = load_split(data_dir)
    table = token_code_table(DNATokenizer.from_vocab_file(Path(data_dir) / schema.VOCAB_FILE))
    reader = ShardReader(params, (schema.DATASET_TOKENS,))
    try:
        parts = [table[reader.read(shard, 0, windows, 0)[schema.DATASET_TOKENS].astype(np.int64)]
                 for shard, windows in enumerate(params.shard_windows)]
    finally:
        reader.close()
    codes = np.concatenate(parts).reshape(sum(params.shard_windows), -1)
    if np.any(codes > N_CODE):
        raise DatasetError(f"{data_dir}: tokens hold non-DNA ids")
    return codes


def run_cnn_peer(train_dir: str | Path, eval_dir: str | Path, train_cell_types: Sequence[str],
                 eval_cell_types: Sequence[str], tracks: Optional[Sequence[str]] = None,
                 config: CNNConfig = CNNConfig()) -> SampleScores:
    """Train the peer on ``train_dir``'s cell types and score ``eval_dir``'s ([C, W, K] probabilities)."""
    train = read_floor_features(train_dir, "epigenome", train_cell_types, tracks)
    test = read_floor_features(eval_dir, "epigenome", eval_cell_types, tracks)
    num_bins = load_split(train_dir)[0].num_bins
    train_codes, test_codes = read_codes(train_dir), read_codes(eval_dir)
    n_cells, n_windows, n_labels = train.labels.shape
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = CNNPeer(config, train.features.shape[-1], n_labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    features = torch.from_numpy(train.features.reshape(n_cells * n_windows, -1))
    labels = torch.from_numpy(train.labels.reshape(n_cells * n_windows, -1).astype(np.int64))
    model.train()
    for _ in range(config.steps):
        rows = torch.randint(0, n_cells * n_windows, (config.batch_size,), generator=generator)
        one_hot, bins = _one_hot(train_codes[(rows % n_windows).numpy()]), features[rows]
        if torch.rand(1, generator=generator).item() < 0.5:
            one_hot, bins = _reverse_complement(one_hot, bins, num_bins)
        target = labels[rows]
        loss = nn.functional.binary_cross_entropy_with_logits(model(one_hot, bins), (target == 1).float(),
                                                              weight=(target >= 0).float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    n_test_cells, n_test_windows, _ = test.labels.shape
    scores = np.zeros(test.labels.shape, dtype=np.float32)
    with torch.no_grad():
        for c in range(n_test_cells):
            for start in range(0, n_test_windows, 256):
                stop = min(n_test_windows, start + 256)
                one_hot = _one_hot(test_codes[start:stop])
                bins = torch.from_numpy(np.ascontiguousarray(test.features[c, start:stop]))
                forward = torch.sigmoid(model(one_hot, bins))
                reverse = torch.sigmoid(model(*_reverse_complement(one_hot, bins, num_bins)))
                scores[c, start:stop] = ((forward + reverse) / 2).numpy()
    return SampleScores(label_names=test.label_names, cell_types=test.cell_types, scores=scores,
                        labels=np.clip(test.labels, 0, 1).astype(np.int8), weights=(test.labels >= 0).astype(np.float32))
