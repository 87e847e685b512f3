"""The preprocessing CLI's memory does not grow with the number of cell types' segmentations.

Measured through the user path: the real CLI, run by bench.common.run_measured (peak RSS from
wait4), on 2 and on 24 cell types whose segmentation BEDs hold 200,000 segments each. Held in
memory, the 22 extra BEDs would take 22 x 200,000 x 17 bytes (int64 starts and ends, uint8 states:
75 MB); the test asks the measured growth to stay under a quarter of that.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import yaml

from bench.common import run_measured
from ebert_modelzoo.contract import schema
from tests.preprocessing.conftest import ROOT, SCRIPTS
from tests.preprocessing.helpers import load_split, write_fasta

SEGMENTS = 200_000  # per BED
OLD_BYTES_PER_SEGMENT = 8 + 8 + 1  # what the in-memory parser held
CONTIG = "chr1"
TRAIN = 20_000  # bp of chr1 turned into windows: small, the run's cost is the BEDs
BIN = 200


def write_segmentation(path: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense segmentation BED of SEGMENTS contiguous 1-19 bp segments of states 1-15 on CONTIG;
    returns its starts, ends and states."""
    ends = np.cumsum(rng.integers(1, 20, size=SEGMENTS))
    starts = np.concatenate([[0], ends[:-1]])
    states = rng.integers(1, 16, size=SEGMENTS)
    path.write_text("".join(f"{CONTIG}\t{s}\t{e}\t{k}_S{k}\n"
                            for s, e, k in zip(starts.tolist(), ends.tolist(), states.tolist())))
    return starts, ends, states


def build(tmp: Path, fasta: Path, beds: list[Path], name: str) -> dict:
    """Run the pre-training CLI on ``beds`` (one cell type each); returns run_measured's record."""
    config = {
        "genome": {"fasta": str(fasta)},
        "split": {"train": [f"{CONTIG}:0-{TRAIN}"]},
        "windows": {"window_length": 1000, "stride": 1000, "bin_size": BIN},
        "cell_types": [{"name": f"C{i:02d}", "segmentation": str(bed)} for i, bed in enumerate(beds)],
        "chromatin_states": {"num_states": 15},
        "output": {"output_dir": str(tmp / name)},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    record = run_measured([sys.executable, str(SCRIPTS["pretraining"]), "--config", str(path), "--no_progress"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert record["returncode"] == 0, record["output"]
    return record


def test_peak_memory_does_not_grow_with_the_cell_types(tmp_path):
    rng = np.random.default_rng(0)
    beds, truth = [], []
    for i in range(24):
        beds.append(tmp_path / f"E{i:03d}.bed")
        truth.append(write_segmentation(beds[-1], rng))
    length = int(max(t[1][-1] for t in truth))
    dna = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=length)].tobytes().decode()
    fasta = write_fasta(tmp_path / "genome.fa", {CONTIG: dna}, width=1000)

    few = build(tmp_path, fasta, beds[:2], "few")
    many = build(tmp_path, fasta, beds, "many")

    old_growth_mb = (len(beds) - 2) * SEGMENTS * OLD_BYTES_PER_SEGMENT / 2**20
    growth_mb = many["peak_rss_mb"] - few["peak_rss_mb"]
    print(f"peak RSS: 2 cell types {few['peak_rss_mb']:.1f} MB, 24 cell types {many['peak_rss_mb']:.1f} MB, "
          f"growth {growth_mb:.1f} MB; held in memory the 22 extra BEDs would take {old_growth_mb:.1f} MB")
    assert growth_mb < 0.25 * old_growth_mb

    # and the states are each BED's at the bin midpoints
    states = load_split(tmp_path / "many" / "train")[schema.DATASET_STATES]  # (C, W, N)
    mids = np.arange(TRAIN // BIN) * BIN + BIN // 2
    for c, (starts, _, bed_states) in enumerate(truth):
        assert states[c].ravel().tolist() == bed_states[np.searchsorted(starts, mids, side="right") - 1].tolist()
