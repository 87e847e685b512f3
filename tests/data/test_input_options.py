"""Input options of the TF-binding variants: signal_tracks, known-motif tracks, shuffle_block_windows,
the wide head (head_bin_inputs), and the floors and CNN peer the demo reports beside them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ebert_modelzoo.data.motifs import MotifTracks, load_motifs
from ebert_modelzoo.errors import DatasetError, ParamsError
from ebert_modelzoo.evaluation.metrics import auroc
from ebert_modelzoo.models.ebert import EBertForFineTuningModel
from ebert_modelzoo.tokenizer import DNATokenizer
from tests.data.helpers import finetuning
from tests.data.split_builder import build_split
from tests.evaluation.test_baselines import PFMS, motif_and_open_split, write_motif_file

TPB, BINS = 4, 6


def _batch(processor):
    return next(iter(processor.create_dataloader()))


def test_signal_tracks_pick_and_order_the_tracks(tmp_path: Path) -> None:
    split = build_split(tmp_path / "s", tracks=("DNase", "H3K27ac", "H3K4me3"), labels=("A",), seed=1)
    full = finetuning(split, shuffle=False)
    picked = finetuning(split, shuffle=False, signal_tracks=["H3K4me3", "DNase"])
    assert picked.features().num_signal_tracks == 2 and picked.features().dims["T"] == 2
    a, b = _batch(full), _batch(picked)
    np.testing.assert_array_equal(b["signal"].numpy(), a["signal"].numpy()[..., [2, 0]])
    np.testing.assert_array_equal(b["signal_mask"].numpy(), a["signal_mask"].numpy()[..., [2, 0]])
    with pytest.raises(DatasetError, match=r"signal_tracks: \['ATAC'\] not in"):
        finetuning(split, signal_tracks=["ATAC"])


def test_motif_tracks_in_the_batch_equal_the_scorer_on_the_stored_tokens(tmp_path: Path) -> None:
    motif_file = write_motif_file(tmp_path / "motifs.json")
    split = build_split(tmp_path / "s", k=1, tokens_per_bin=10, num_bins=6, labels=("TFA", "TFB"), seed=2)
    processor = finetuning(split, shuffle=False, max_sequence_length=64, motif_file=str(motif_file),
                           motif_tracks=["TFB", "TFA"], motif_window_bp=30)
    features = processor.features()
    assert features.num_motif_tracks == 2 and "motifs" in features.groups and features.dims["M"] == 2
    batch = _batch(processor)
    tokens = batch["input_ids"].numpy()[:, 1:61]
    scorer = MotifTracks.build(load_motifs(motif_file), ("TFB", "TFA"), DNATokenizer(1), 10, 30)
    np.testing.assert_allclose(batch["motif_scores"].numpy(), scorer(tokens))
    assert batch["motif_scores"].shape == (8, 6, 2)
    assert 0 <= batch["motif_scores"].min() and batch["motif_scores"].max() <= 1
    without = _batch(finetuning(split, shuffle=False, max_sequence_length=64))
    assert "motif_scores" not in without


def test_motif_window_widens_what_a_bin_sees(tmp_path: Path) -> None:
    """A consensus site counts for its own bin only with the default window, for the neighbouring
    bins too with a window of three bins."""
    tokenizer = DNATokenizer(1)
    motif_set = load_motifs(write_motif_file(tmp_path / "m.json"))
    consensus = "".join("ACGT"[i] for i in PFMS["TFA"].argmax(axis=0))
    sequence = "C" * 26 + consensus + "C" * 26  # centre at base 30: bin 3 of six 10-bp bins
    tokens = tokenizer.encode(sequence)[None]
    own = MotifTracks.build(motif_set, ("TFA",), tokenizer, 10)(tokens)[0, :, 0]
    wide = MotifTracks.build(motif_set, ("TFA",), tokenizer, 10, 30)(tokens)[0, :, 0]
    assert own[3] == pytest.approx(1.0) and np.all(own[[0, 1, 2, 4, 5]] < 0.5)
    assert np.all(wide[2:5] == pytest.approx(1.0)) and np.all(wide[[0, 1, 5]] < 0.5)


@pytest.mark.parametrize("keys,message", [
    ({"motif_tracks": ["TFA"]}, "motif_tracks and motif_window_bp need motif_file"),
    ({"motif_file": "m.json", "motif_window_bp": 0}, "motif_window_bp must be >= 1"),
    ({"shuffle_block_windows": 0}, "shuffle_block_windows must be >= 1"),
])
def test_bad_loader_options_name_the_key(tmp_path: Path, keys: dict, message: str) -> None:
    split = build_split(tmp_path / "s", labels=("A",))
    with pytest.raises(ParamsError, match=message):
        finetuning(split, **keys)


def test_head_bin_inputs_reads_the_pooled_bins_inputs() -> None:
    """The wide head's logits depend on the central bins' own inputs even when the encoder's
    output is held fixed, and not on other bins' inputs beyond what the encoder passes on."""
    from tests.models.test_model import finetune_config, make_batch
    with pytest.raises(ValueError, match="head_bin_inputs needs pooling: center_bins"):
        finetune_config(head_bin_inputs=True)
    config = finetune_config(pooling="center_bins", num_bins=BINS, pooled_bins=2, head_bin_inputs=True,
                             num_motif_tracks=3, dropout_rate=0.0, attention_dropout_rate=0.0, classifier_dropout=0.0)
    torch.manual_seed(0)
    model = EBertForFineTuningModel(config).eval()
    batch = make_batch()
    batch["motif_scores"] = torch.rand(batch["signal"].shape[:2] + (3,))
    encoder_out = model.ebert(batch, model.head.token_positions(batch["input_ids"].shape[0]))
    base = model.head(encoder_out, batch)
    centre = dict(batch, motif_scores=batch["motif_scores"].clone())
    centre["motif_scores"][:, BINS // 2] += 1.0
    edge = dict(batch, motif_scores=batch["motif_scores"].clone())
    edge["motif_scores"][:, 0] += 1.0
    assert not torch.allclose(model.head(encoder_out, centre), base)
    assert torch.allclose(model.head(encoder_out, edge), base)
    model(batch).backward()
    hidden = config.hidden_size
    assert model.head.pooler.weight.shape[1] > hidden and model.head.pooler.weight.grad[:, hidden:].abs().sum() > 0


def test_floors_and_cnn_peer_learn_motif_and_open_chromatin(tmp_path: Path) -> None:
    """On splits where binding = motif AND DNase-open: the epigenome regression and the CNN peer
    score the held-out cell type above chance, the k-mer regression sees only DNA; all keep the
    evaluation split's sample order and labels."""
    from ebert_modelzoo.evaluation.cnn_peer import CNNConfig, run_cnn_peer
    from ebert_modelzoo.evaluation.floor_baselines import read_floor_features, run_floor
    motif_and_open_split(tmp_path / "train", ("c1", "c2", "c3"), (180, 120), seed=1, no_dnase=("c3",))
    motif_and_open_split(tmp_path / "test", ("held_out",), (250,), seed=2)
    cells = ["c1", "c2", "c3"]
    kmer = read_floor_features(tmp_path / "train", "kmer", cells)
    assert kmer.features.shape == (1, 300, 2)  # k = 1: A/T and C/G, strands folded
    assert np.all(kmer.features[0].sum(axis=1) <= 60) and kmer.features[0].sum() > 0.9 * 300 * 60
    results = {}
    for name, scores in (
        ("epigenome", run_floor(tmp_path / "train", tmp_path / "test", "epigenome", cells, ["held_out"])),
        ("kmer", run_floor(tmp_path / "train", tmp_path / "test", "kmer", cells, ["held_out"])),
        ("cnn", run_cnn_peer(tmp_path / "train", tmp_path / "test", cells, ["held_out"],
                             config=CNNConfig(steps=150, filters=8, second_filters=8, hidden=16, filter_width=8,
                                              pool=4, seed=3))),
    ):
        assert scores.scores.shape == scores.labels.shape == (1, 250, 2) and np.isfinite(scores.scores).all()
        results[name] = np.mean([auroc(scores.scores[..., k].ravel(), scores.labels[..., k].ravel(),
                                       scores.weights[..., k].ravel()) for k in range(2)])
    assert results["epigenome"] > 0.6 and results["cnn"] > 0.6, results
    with pytest.raises(DatasetError, match=r"signal tracks \['ATAC'\] not in the split"):
        read_floor_features(tmp_path / "train", "epigenome", cells, ["ATAC"])
