"""Fine-tuning labels from the real CLI against the documented rule, computed here by brute force."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import h5py
import numpy as np

from ebert_modelzoo.contract import schema

DATA = Path(__file__).resolve().parents[1] / "fixtures"


def dream_rows() -> tuple[list[str], list[tuple[int, int, list[str]]]]:
    with gzip.open(DATA / "CTCF.train.labels.tsv.gz", "rt") as fh:
        header = fh.readline().split()
        rows = [(int(f[1]), int(f[2]), f[3:]) for f in (line.split() for line in fh)]
    return header[3:], rows


def dream_rule(rows, cell: int, lo: int, hi: int) -> int:
    codes = {r[2][cell] for r in rows if r[0] >= lo and r[1] <= hi}
    return 1 if "B" in codes else -1 if "A" in codes else 0 if "U" in codes else -1


def peak_rule(peaks, lo: int, hi: int) -> int:
    if any(lo <= summit < hi for _, _, summit in peaks):
        return 1
    return -1 if any(s < hi and e > lo for s, e, _ in peaks) else 0


def test_labels_follow_the_rule(finetuning_dir):
    cells, rows = dream_rows()
    assert cells == ["E003", "E017"]
    peaks = [(int(f[1]), int(f[2]), int(f[1]) + int(f[9]))
             for f in (line.split("\t") for line in (DATA / "E003.NRF1.narrowPeak").read_text().splitlines())]
    counts = np.zeros(3, dtype=int)
    for split in schema.SPLITS:
        split_dir = finetuning_dir / split
        params = json.loads((split_dir / schema.DATA_PARAMS_FILE).read_text())
        assert params["kind"] == "finetuning" and params["labels"]["names"] == ["CTCF", "NRF1"]
        for shard in params["shards"]:
            with h5py.File(split_dir / shard["file"], "r") as f:
                starts, labels, bin_labels = f["window_start"][...], f["labels"][...], f["bin_labels"][...]
            assert labels.dtype == np.int8 and labels.shape == (2, len(starts), 2)
            assert bin_labels.shape == (2, len(starts), 5, 2)
            for w, start in enumerate(starts):
                lo = int(start) + 400  # central 200 bp of a 1000 bp window
                for c in range(2):
                    assert labels[c, w, 0] == dream_rule(rows, c, lo, lo + 200)
                    for b in range(5):
                        s = int(start) + 200 * b
                        assert bin_labels[c, w, b, 0] == dream_rule(rows, c, s, s + 200)
                assert labels[0, w, 1] == peak_rule(peaks, lo, lo + 200)
                assert labels[1, w, 1] == -1, "E017 has no NRF1 peaks: missing, not negative"
                counts += np.bincount(labels[:, w, 0] + 1, minlength=3)
    assert (counts > 0).all(), f"each of -1/0/1 should occur for CTCF, got {counts}"
