"""Tiny real datasets (h5py shards written by the data-processor tests' split builder) and
params for them, shared by the trainer tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.data.split_builder import build_split

REPO = Path(__file__).resolve().parents[2]
# k = 1 (vocabulary 6 + 4), 6 bins of 4 tokens: 24 DNA tokens, 26 with [CLS]/[SEP]
VOCAB, TOKENS_PER_BIN, SEQ_LEN, STATES, TRACKS = 10, 4, 32, 5, ("DNase", "H3K27ac")
LABELS = ("CTCF", "NRF1", "REST")


def make_data(root: Path) -> dict[str, Path]:
    """Pre-training and fine-tuning train/validation splits under ``root``."""
    dirs = {
        "pre_train": root / "pretraining" / "train",
        "pre_val": root / "pretraining" / "validation",
        "fine_train": root / "finetuning" / "train",
        "fine_val": root / "finetuning" / "validation",
    }
    build_split(dirs["pre_train"], seed=0, tracks=TRACKS, num_states=STATES)
    build_split(dirs["pre_val"], shard_windows=(10,), seed=1, tracks=TRACKS, num_states=STATES)
    build_split(dirs["fine_train"], seed=2, tracks=TRACKS, num_states=STATES, labels=LABELS)
    build_split(dirs["fine_val"], shard_windows=(12,), seed=3, tracks=TRACKS, num_states=STATES,
                labels=LABELS, cell_types=("GM12878", "K562"))
    return dirs


def encoder() -> dict[str, Any]:
    return {"vocab_size": VOCAB, "tokens_per_bin": TOKENS_PER_BIN, "hidden_size": 32, "num_hidden_layers": 2,
            "num_heads": 2, "filter_size": 64, "max_position_embeddings": SEQ_LEN,
            "num_chromatin_states": STATES, "num_signal_tracks": len(TRACKS)}


def schedule(peak: float, warmup: int, total: int) -> list[dict[str, Any]]:
    return [{"SequentialLR": {"schedulers": [
        {"LinearLR": {"initial_learning_rate": 0.0, "end_learning_rate": peak, "total_iters": warmup}},
        {"LinearLR": {"initial_learning_rate": peak, "end_learning_rate": 0.0, "total_iters": total - warmup}},
    ]}}]


def pretrain_params(data: dict[str, Path], model_dir: Path, max_steps: int = 20, **init: Any) -> dict[str, Any]:
    loader = {"data_processor": "EBertPretrainingDataProcessor", "batch_size": 8,
              "max_sequence_length": SEQ_LEN, "max_predictions_per_seq": 6}
    val = {**loader, "data_dir": str(data["pre_val"]), "shuffle": False}
    base_init = {
        "model_dir": str(model_dir), "seed": 3,
        "model": {"name": "ebert", **encoder()},
        "optimizer": {"AdamW": {"weight_decay": 0.01}},
        "schedulers": schedule(3e-3, 4, max_steps),
        "precision": {"max_gradient_norm": 1.0},
        "loop": {"max_steps": max_steps, "eval_frequency": 10},
        "checkpoint": {"steps": 5},
        "logging": {"log_steps": 1},
    }
    base_init.update(init)
    return {"trainer": {
        "init": base_init,
        "fit": {"train_dataloader": {**loader, "data_dir": str(data["pre_train"])}, "val_dataloader": val},
        "validate": {"val_dataloader": val},
        "validate_all": {"val_dataloaders": val},
    }}


def finetune_params(data: dict[str, Path], model_dir: Path, max_steps: int = 6) -> dict[str, Any]:
    loader = {"data_processor": "EBertFinetuningDataProcessor", "batch_size": 8, "max_sequence_length": SEQ_LEN}
    val = {**loader, "data_dir": str(data["fine_val"]), "shuffle": False}
    return {"trainer": {
        "init": {
            "model_dir": str(model_dir), "seed": 5,
            "model": {"name": "ebert_finetune", **encoder(), "num_labels": len(LABELS)},
            "optimizer": {"AdamW": {"weight_decay": 0.01}},
            "schedulers": schedule(1e-3, 2, max_steps),
            "loop": {"max_steps": max_steps},
            "checkpoint": {"steps": 3, "disable_strict_checkpoint_loading": True},
            "logging": {"log_steps": 1},
        },
        "fit": {"train_dataloader": {**loader, "data_dir": str(data["fine_train"])}, "val_dataloader": val},
        "validate": {"val_dataloader": val},
    }}


def write_params(path: Path, params: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(params))
    return path


def run_py(*args: str, timeout: float = 240, check: Optional[int] = 0) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` in the repository root, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert done.returncode == check, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def logged_losses(model_dir: Path) -> dict[int, float]:
    """step -> training loss from the TensorBoard events (a resumed run's values win)."""
    events = EventAccumulator(str(model_dir / "train"))
    events.Reload()
    return {event.step: event.value for event in events.Scalars("loss")}
