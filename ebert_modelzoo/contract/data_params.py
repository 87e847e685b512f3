"""data_params.json, the schema of one split folder (keys: contract/schema.py): what the writers
(preprocessing/pipeline.py, preprocessing/sequence_data.py) start it from, and what the readers
(data/, evaluation/) get back, checked.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ebert_modelzoo.contract.schema import DATA_PARAMS_FILE, SCHEMA_VERSION
from ebert_modelzoo.errors import DatasetError

DATA_DECIDED_SIZES: dict[str, str] = {
    "vocab_size": "(its vocab.txt)",
    "tokens_per_bin": "",
    "num_chromatin_states": "(0 when the data has none or use_chromatin_states is false)",
    "num_signal_tracks": "(0 when the data has none or use_signal is false)",
    "num_motif_tracks": "(0 when the loader has no motif_file)",
    "num_labels": "labels",
    "num_bins": "bins per window",
}
"""Model config keys (``trainer.init.model``) whose value the data decides, each with the words
that follow the data's value in a mismatch error. They follow data_params.json's
``tokenizer.vocab_size``, ``tokens_per_bin``, ``chromatin_states.num_states``, ``tracks.names``,
``labels.names`` and ``num_bins``, as the dataloader selects from them (``use_chromatin_states``,
``use_signal``, ``signal_tracks``, ``labels``); motif tracks come from its ``motif_file``. The
trainer checks each against what the dataloader yields before the first step (training/tasks.py)."""


def data_params_header(*, kind: str, split: str, shards: list[dict[str, Any]], contigs: list[str],
                       regions: list[str], window_length: int, stride: int, bin_size: int, k: int,
                       vocab_size: int, cell_types: list[str], chromatin_states: Optional[dict[str, Any]],
                       tracks: Optional[dict[str, Any]], labels: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The keys of data_params.json every reader relies on, in the order they are written (a writer
    appends its own keys after them). The token counts follow from the window, bin and k-mer size.

    ``shards`` lists ``{file, num_windows, sha256}`` per shard; ``num_windows`` is their total.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "split": split,
        "num_windows": sum(int(s["num_windows"]) for s in shards),
        "shards": shards,
        "contigs": contigs,
        "regions": regions,
        "window_length": window_length,
        "stride": stride,
        "bin_size": bin_size,
        "tokenizer": {"k": k, "vocab_size": vocab_size},
        "tokens_per_window": window_length // k,
        "tokens_per_bin": bin_size // k,
        "num_bins": window_length // bin_size,
        "cell_types": cell_types,
        "chromatin_states": chromatin_states,
        "tracks": tracks,
        "labels": labels,
    }


@dataclass(frozen=True)
class DataParams:
    """The parts of data_params.json the processors use, checked for consistency."""

    path: Path
    kind: str
    shard_files: tuple[Path, ...]
    shard_windows: tuple[int, ...]
    vocab_size: int
    tokens_per_window: int
    tokens_per_bin: int
    num_bins: int
    cell_types: tuple[str, ...]
    num_states: int
    """S of the segmentation model; 0 = the split has no chromatin states."""
    track_names: tuple[str, ...]
    track_mean: np.ndarray
    """Per-track mean of the transformed train-split signal (float32 [T])."""
    track_std: np.ndarray
    """Per-track std of the transformed train-split signal (float32 [T], > 0)."""
    label_names: tuple[str, ...]
    raw: dict[str, Any]


def _require(raw: dict[str, Any], key: str, path: Path) -> Any:
    if key not in raw:
        raise DatasetError(f"{path}: key {key!r} is missing")
    return raw[key]


def load_data_params(data_dir: str | Path) -> DataParams:
    """Read and check ``<data_dir>/data_params.json`` and that every listed shard exists.

    Raises:
        FileNotFoundError: data_dir, data_params.json or a shard is missing.
        DatasetError: a key is missing or values disagree (e.g. tokens per window vs bins).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data_dir not found")
    path = data_dir / DATA_PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (is data_dir a split folder written by data_processing?)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    version = _require(raw, "schema_version", path)
    if version != SCHEMA_VERSION:
        raise DatasetError(f"{path}: schema_version {version}, this reader reads {SCHEMA_VERSION}")
    shards = _require(raw, "shards", path)
    if not shards:
        raise DatasetError(f"{path}: 'shards' is empty")
    files, windows = [], []
    for entry in shards:
        file = data_dir / entry["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{file}: shard listed in {path} not found")
        files.append(file)
        windows.append(int(entry["num_windows"]))
    tokenizer = _require(raw, "tokenizer", path)
    n_tok = int(_require(raw, "tokens_per_window", path))
    per_bin = int(_require(raw, "tokens_per_bin", path))
    num_bins = int(_require(raw, "num_bins", path))
    if per_bin * num_bins != n_tok:
        raise DatasetError(
            f"{path}: tokens_per_bin ({per_bin}) x num_bins ({num_bins}) != tokens_per_window ({n_tok})"
        )
    states = raw.get("chromatin_states")
    tracks = raw.get("tracks")
    labels = raw.get("labels")
    names = tuple(tracks["names"]) if tracks else ()
    mean = np.asarray(_require(tracks, "mean", path) if tracks else [], dtype=np.float32)
    std = np.asarray(_require(tracks, "std", path) if tracks else [], dtype=np.float32)
    if mean.shape != (len(names),) or std.shape != (len(names),):
        raise DatasetError(f"{path}: tracks.mean and tracks.std need one value per track ({len(names)})")
    if not (np.isfinite(std).all() and (std > 0).all() and np.isfinite(mean).all()):
        raise DatasetError(f"{path}: tracks.mean must be finite and tracks.std finite and > 0, got {std.tolist()}")
    return DataParams(
        path=path,
        kind=str(_require(raw, "kind", path)),
        shard_files=tuple(files),
        shard_windows=tuple(windows),
        vocab_size=int(_require(tokenizer, "vocab_size", path)),
        tokens_per_window=n_tok,
        tokens_per_bin=per_bin,
        num_bins=num_bins,
        cell_types=tuple(_require(raw, "cell_types", path)),
        num_states=int(states["num_states"]) if states else 0,
        track_names=names,
        track_mean=mean,
        track_std=std,
        label_names=tuple(labels["names"]) if labels else (),
        raw=raw,
    )
