"""The pre-training dataset built by the real CLI agrees with the input files, checked independently:
tokens against the FASTA text, signal against pyBigWig's own stats, states against the BED lines."""
from __future__ import annotations

import json

import numpy as np
import pyBigWig
import pytest

from ebert_modelzoo.contract import schema
from ebert_modelzoo.tokenizer import DNATokenizer
from tests.preprocessing.helpers import DATA, fixture_dna, load_split

SPLIT_REGIONS = {"train": (0, 70_000), "validation": (70_000, 85_000), "test": (85_000, 100_000)}


@pytest.mark.parametrize("split", schema.SPLITS)
def test_layout_and_params(pretraining_dir, split):
    split_dir = pretraining_dir / split
    params = json.loads((split_dir / schema.DATA_PARAMS_FILE).read_text())
    for key in ("schema_version", "kind", "split", "num_windows", "shards", "contigs", "window_length", "stride",
                "bin_size", "tokenizer", "tokens_per_window", "tokens_per_bin", "num_bins", "cell_types",
                "chromatin_states", "tracks", "labels", "provenance"):
        assert key in params, key
    assert params["kind"] == "pretraining" and params["split"] == split and params["contigs"] == ["X"]
    assert params["tokenizer"] == {"k": 4, "vocab_size": 262}
    assert (params["tokens_per_window"], params["tokens_per_bin"], params["num_bins"]) == (250, 50, 5)
    assert params["cell_types"] == ["E003", "E017"] and params["labels"] is None
    assert params["chromatin_states"]["num_states"] == 15 and params["chromatin_states"]["names"][0] == "1_TssA"
    assert DNATokenizer.from_vocab_file(split_dir / schema.VOCAB_FILE).k == 4
    on_disk = sorted(p.name for p in split_dir.glob(schema.SHARD_GLOB))
    assert on_disk == sorted(s["file"] for s in params["shards"])
    assert not list(split_dir.glob("*.tmp"))
    roles = {i["role"] for i in params["provenance"]["inputs"]}
    assert {"genome", "track:E017:DNase", "segmentation:E003"} <= roles
    arrays = load_split(split_dir)
    w = params["num_windows"]
    assert arrays["tokens"].shape == (w, 250) and arrays["tokens"].dtype == np.uint16
    assert arrays["states"].shape == (2, w, 5) and arrays["signal"].shape == (2, w, 5, 2)
    assert arrays["signal"].dtype == np.float16 and arrays["window_start"].dtype == np.int64


@pytest.mark.parametrize("split", schema.SPLITS)
def test_windows_are_the_filtered_tiling(pretraining_dir, split):
    """Every window inside the split's region at stride 500, minus N-rich and blacklisted ones."""
    seq = fixture_dna()
    lo, hi = SPLIT_REGIONS[split]
    expected = [s for s in range(lo, hi - 1000 + 1, 500)
                if sum(c not in "ACGT" for c in seq[s:s + 1000].upper()) <= 300 and not (s < 5600 and s + 1000 > 5000)]
    arrays = load_split(pretraining_dir / split)
    assert arrays["window_start"].tolist() == expected
    assert set(arrays["window_chrom"].tolist()) == {0}


@pytest.mark.parametrize("split", schema.SPLITS)
def test_tokens_decode_to_the_fasta(pretraining_dir, split):
    seq = fixture_dna()
    tok = DNATokenizer(4)
    arrays = load_split(pretraining_dir / split)
    saw_n = False
    for start, ids in zip(arrays["window_start"], arrays["tokens"]):
        want = "".join(seq[i:i + 4].upper() if set(seq[i:i + 4].upper()) <= set("ACGT") else "NNNN"
                       for i in range(start, start + 1000, 4))
        assert tok.decode(ids) == want
        saw_n |= tok.n_id in ids
    if split == "train":
        assert saw_n, "the train split should hold a window touching the N gap"


@pytest.mark.parametrize("split", schema.SPLITS)
def test_signal_equals_bigwig_stats(pretraining_dir, split):
    arrays = load_split(pretraining_dir / split)
    files = {(0, 0): "E003.DNase.bw", (0, 1): "E003.H3K27ac.bw", (1, 0): "E017.DNase.bw"}
    signal = arrays["signal"].astype(np.float64)
    for (c, t), name in files.items():
        bw = pyBigWig.open(str(DATA / name))
        for w, start in enumerate(arrays["window_start"]):
            for b in range(5):
                s = int(start) + 200 * b
                mean = bw.stats("chrX", s, s + 200, type="mean", exact=True)[0]
                if mean is None:
                    assert np.isnan(signal[c, w, b, t])
                else:
                    assert signal[c, w, b, t] == pytest.approx(np.arcsinh(mean), rel=2e-3, abs=1e-3)
    assert np.isnan(signal[1, :, :, 1]).all(), "E017 has no H3K27ac: stored as missing"


def test_normalisation_stats_from_train(pretraining_dir):
    train = load_split(pretraining_dir / "train")["signal"].astype(np.float64)  # (C, W, N, T)
    for split in schema.SPLITS:
        tracks = json.loads((pretraining_dir / split / schema.DATA_PARAMS_FILE).read_text())["tracks"]
        assert tracks["transform"] == "arcsinh" and tracks["names"] == ["DNase", "H3K27ac"]
        for t in range(2):
            values = train[..., t][np.isfinite(train[..., t])]
            assert tracks["mean"][t] == pytest.approx(values.mean(), rel=1e-9)
            assert tracks["std"][t] == pytest.approx(values.std(), rel=1e-6)
        own = load_split(pretraining_dir / split)["signal"]
        assert tracks["missing_bins"] == np.isnan(own).sum(axis=(0, 1, 2)).tolist()


def bed_segments(name: str) -> list[tuple[int, int, int]]:
    rows = []
    for line in (DATA / name).read_text().splitlines():
        f = line.split("\t")
        rows.append((int(f[1]), int(f[2]), int(f[3].split("_")[0])))
    return rows


def test_states_follow_the_bin_midpoint(pretraining_dir):
    spanning = 0
    for split in schema.SPLITS:
        arrays = load_split(pretraining_dir / split)
        for c, name in enumerate(["E003_15_coreMarks_segments.bed", "E017_15_coreMarks_segments.bed"]):
            segments = bed_segments(name)
            for w, start in enumerate(arrays["window_start"]):
                for b in range(5):
                    s = int(start) + 200 * b
                    mid = s + 100
                    (state,) = [st for a, e, st in segments if a <= mid < e]
                    assert arrays["states"][c, w, b] == state
                    spanning += sum(1 for a, e, _ in segments if a < s + 200 and e > s) > 1
    assert spanning > 50, "the fixture should hold many bins spanning two segments"
