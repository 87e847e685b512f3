"""A SIGKILLed run, rerun, equals an uninterrupted one byte for byte; --shard I/N and --workers do
not change the dataset; a rerun skips finished shards."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ebert_modelzoo.contract import schema

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "fixtures"


def digest(out: Path) -> dict[str, str]:
    """sha256 of every file of every split (shards, sidecars, data_params.json, vocab.txt)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for split in schema.SPLITS for p in sorted((out / split).iterdir())}


def test_kill_and_rerun_gives_the_same_dataset(tmp_path, make_config, run_cli):
    output = {"windows_per_shard": 1, "chunk_windows": 8, "compression": "gzip"}
    config = make_config(tmp_path, output={**output, "output_dir": str(tmp_path / "out")})
    reference = make_config(tmp_path, name="reference.yaml", output={**output, "output_dir": str(tmp_path / "ref")})
    run_cli("pretraining", reference)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "data_processing" / "create_pretraining_data.py"), "--config", str(config), "--no_progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    train = tmp_path / "out" / "train"
    deadline = time.monotonic() + 60
    while not list(train.glob(".shard-*.json")) if train.is_dir() else True:
        assert time.monotonic() < deadline and proc.poll() is None, "run ended before any shard was written"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (train / schema.DATA_PARAMS_FILE).exists(), "killed too late to test anything"
    partial = len(list(train.glob(".shard-*.json")))

    rerun = run_cli("pretraining", config)
    assert f"skipping {partial}" in rerun.stderr or partial == 0
    assert digest(tmp_path / "out") == digest(tmp_path / "ref")
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_shards_over_machines_and_workers(tmp_path, make_config, run_cli, pretraining_dir):
    config = make_config(tmp_path)
    run_cli("pretraining", config, "--shard", "1/3")
    assert not list((tmp_path / "out").rglob(schema.DATA_PARAMS_FILE)), "incomplete: no data_params.json yet"
    run_cli("pretraining", config, "--shard", "0/3")
    run_cli("pretraining", config, "--shard", "2/3")
    # built with one worker on three "machines" vs two workers on one: the same bytes
    assert digest(tmp_path / "out") == digest(pretraining_dir)
    again = run_cli("pretraining", config)
    assert "skipping" in again.stderr


def test_bgzipped_fasta_gives_the_same_shards(tmp_path, make_config, run_cli, pretraining_dir):
    config = make_config(tmp_path, genome={"fasta": str(DATA / "genome.fa.gz")})
    run_cli("pretraining", config)
    ours, ref = digest(tmp_path / "out"), digest(pretraining_dir)
    shards = [k for k in ref if k.endswith(".h5")]
    assert shards and all(ours[k] == ref[k] for k in shards)
