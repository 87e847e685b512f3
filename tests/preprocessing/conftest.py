"""Shared helpers: fixture paths, config files written into tmp folders, real CLI subprocess runs."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "fixtures"
SCRIPTS = {"pretraining": ROOT / "data_processing" / "create_pretraining_data.py",
           "finetuning": ROOT / "data_processing" / "create_finetuning_data.py"}

BASE_CONFIG: dict[str, Any] = {
    "genome": {"fasta": str(DATA / "genome.fa")},
    "split": {"train": ["X:0-70,000"], "validation": ["chrX:70,000-85,000"], "test": ["X:85,000-100,000"]},
    "windows": {"window_length": 1000, "stride": 500, "bin_size": 200, "max_n_fraction": 0.3,
                "blacklist": str(DATA / "blacklist.bed")},
    "tokenizer": {"k": 4},
    "cell_types": [
        {"name": "E003", "segmentation": str(DATA / "E003_15_coreMarks_segments.bed"),
         "tracks": {"DNase": str(DATA / "E003.DNase.bw"), "H3K27ac": str(DATA / "E003.H3K27ac.bw")}},
        {"name": "E017", "segmentation": str(DATA / "E017_15_coreMarks_segments.bed"),
         "tracks": {"DNase": str(DATA / "E017.DNase.bw")}},
    ],
    "chromatin_states": {"num_states": 15},
    "signal": {"transform": "arcsinh", "tracks": ["DNase", "H3K27ac"]},
    "output": {"windows_per_shard": 16, "chunk_windows": 8, "compression": "gzip"},
}
LABELS = {
    "center_bp": 200, "bin_labels": True,
    "tfs": [{"name": "CTCF", "dream_tsv": str(DATA / "CTCF.train.labels.tsv.gz")},
            {"name": "NRF1", "peaks": {"E003": str(DATA / "E003.NRF1.narrowPeak")}}],
}


def make_config(tmp: Path, kind: str = "pretraining", name: str = "config.yaml", **sections: Any) -> Path:
    """Write a config (BASE_CONFIG, labels for fine-tuning, sections replaced) into ``tmp``."""
    config = copy.deepcopy(BASE_CONFIG)
    if kind == "finetuning":
        config["labels"] = copy.deepcopy(LABELS)
    config["output"]["output_dir"] = str(tmp / "out")
    for key, value in sections.items():
        config[key] = value
    path = tmp / name
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(kind: str, config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(SCRIPTS[kind]), "--config", str(config), "--no_progress", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"CLI failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def pretraining_dir(tmp_path_factory) -> Path:
    """The pre-training dataset built once by the real CLI with two workers."""
    tmp = tmp_path_factory.mktemp("pretraining")
    run_cli("pretraining", make_config(tmp), "--workers", "2")
    return tmp / "out"


@pytest.fixture(scope="session")
def finetuning_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("finetuning")
    run_cli("finetuning", make_config(tmp, "finetuning"))
    return tmp / "out"


@pytest.fixture(name="make_config")
def make_config_fixture():
    return make_config


@pytest.fixture(name="run_cli")
def run_cli_fixture():
    return run_cli
