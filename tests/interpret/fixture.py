"""A small fine-tuning run whose truth is known, for the interpretation tests.

The split (real h5py shards in the schema's layout, one contig ``chrTest``, 100 bp windows
tiled end to end, 4-mer tokens) has three cell types and one label, NRF1. Each window carries,
with probability 0.5, one site of the real JASPAR NRF1 matrix (MA0506.1, from the demo's
motifs.json): its consensus, on a random strand; its one signal track (DNase) is high over the whole
window where the window is open in that cell type (probability 0.5, per cell type and window)
and low elsewhere. The label is bound exactly where the site is present and the window is open:
the demo's rule, motif x open chromatin, without noise. A tiny EBERT trained on it with
``run.py`` learns both (the tests check it does before using it). ``motif_tracks=True`` trains the
demo's best variant's kind of model on the same data: the loaders add a known-motif track scanned
with that same JASPAR matrix and the head a linear term over the bins' inputs and motif x signal
products, so the model is handed the planted motif.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import yaml

from ebert_modelzoo.contract import schema
from ebert_modelzoo.data.motifs import BASES, MotifSet, load_motifs
from ebert_modelzoo.tokenizer import DNATokenizer
from tests.data.split_builder import build_split
from tests.run_cases import REPO, run_py, run_python

MOTIFS = REPO / "data_processing" / "demo_data" / "motifs.json"
TF = "NRF1"
CELLS = ("cell_a", "cell_b", "cell_c")
BOUND_CELL = CELLS[2]  # the validation loader's (held-out) cell type
WINDOW = 200
K = 4
TOKENS_PER_BIN = 10
NUM_BINS = 5
BACKGROUND = np.array([0.3, 0.2, 0.2, 0.3])


@dataclass(frozen=True)
class Truth:
    """What the generator decided, window axis = the split's windows in file order."""

    codes: np.ndarray  # [W, S] base codes
    site_start: np.ndarray  # [W] start of the planted site in the window, -1 = none
    open: np.ndarray  # [C, W] bool
    labels: np.ndarray  # [C, W] int8


def _site(motifs: MotifSet, rng: np.random.Generator) -> np.ndarray:
    """The consensus of the TF's matrix, on a random strand."""
    site = motifs.get(TF).counts.argmax(axis=0).astype(np.uint8)
    return (3 - site)[::-1] if rng.random() < 0.5 else site


def write_split(root: Path, windows: int, seed: int) -> Truth:
    """The split folder ``root`` (data_params.json, vocab.txt, one shard) and its truth."""
    rng = np.random.default_rng(seed)
    motifs = load_motifs(MOTIFS)
    width = motifs.get(TF).width
    build_split(root, shard_windows=(windows,), cell_types=CELLS, k=K, tokens_per_bin=TOKENS_PER_BIN, num_bins=NUM_BINS,
                num_states=0, tracks=("DNase",), labels=(TF,), n_fraction=0.0, seed=seed)
    codes = rng.choice(4, size=(windows, WINDOW), p=BACKGROUND).astype(np.uint8)
    site_start = np.full(windows, -1)
    for w in np.flatnonzero(rng.random(windows) < 0.5):
        start = int(rng.integers(5, WINDOW - width - 5))
        codes[w, start:start + width] = _site(motifs, rng)
        site_start[w] = start
    is_open = rng.random((len(CELLS), windows)) < 0.5
    labels = (is_open & (site_start >= 0)[None, :]).astype(np.int8)
    signal = np.where(is_open[:, :, None, None], 2.0, 0.0) + rng.normal(0, 0.2, (len(CELLS), windows, NUM_BINS, 1))
    with h5py.File(root / schema.SHARD_PATTERN.format(index=0), "r+") as f:
        f[schema.DATASET_TOKENS][...] = DNATokenizer(K).encode(decode(codes)).reshape(windows, -1)
        f[schema.DATASET_SIGNAL][...] = signal.astype(np.float16)
        f[schema.DATASET_LABELS][...] = labels[:, :, None]
    params = json.loads((root / schema.DATA_PARAMS_FILE).read_text())
    params["tracks"].update(mean=[1.0], std=[1.0])
    (root / schema.DATA_PARAMS_FILE).write_text(json.dumps(params, indent=1))
    return Truth(codes, site_start, is_open, labels)


def decode(codes: np.ndarray) -> str:
    """The DNA string of base codes [..., S], rows concatenated."""
    return "".join(np.array(list(BASES))[codes.ravel()])


def loader(data_dir: Path, shuffle: bool, motif_tracks: bool) -> dict:
    motifs = {"motif_file": str(MOTIFS), "motif_tracks": [TF]} if motif_tracks else {}
    return {"data_processor": "EBertFinetuningDataProcessor", "data_dir": str(data_dir), "batch_size": 32,
            "shuffle": shuffle, "shuffle_seed": 1, "max_sequence_length": 52, "use_chromatin_states": False,
            "use_signal": True, "label_level": "sequence", **motifs}


def write_params(root: Path, train: Path, validation: Path, steps: int, motif_tracks: bool) -> Path:
    """Fine-tuning params for a tiny encoder on the fixture splits (model_dir under ``root``)."""
    model = {"name": "ebert_finetune", "vocab_size": 262, "tokens_per_bin": TOKENS_PER_BIN, "hidden_size": 32,
             "num_hidden_layers": 2, "num_heads": 2, "filter_size": 64, "max_position_embeddings": 52,
             "dropout_rate": 0.0, "attention_dropout_rate": 0.0, "num_chromatin_states": 0,
             "num_signal_tracks": 1, "num_cell_types": 0, "num_labels": 1, "head": "sequence",
             "classifier_dropout": 0.0}
    if motif_tracks:
        model.update(num_motif_tracks=1, num_bins=NUM_BINS, head_linear_bins=NUM_BINS, head_linear_scale=10.0)
    params = {"trainer": {
        "init": {"backend": {"backend_type": "CPU"}, "model_dir": str(root / "run"), "seed": 1, "model": model,
                 "optimizer": {"AdamW": {"weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1.0e-6}},
                 "schedulers": [{"LinearLR": {"initial_learning_rate": 2.0e-3, "end_learning_rate": 2.0e-4,
                                              "total_iters": steps}}],
                 "precision": {"enabled": False, "max_gradient_norm": 1.0},
                 "loop": {"max_steps": steps, "eval_frequency": steps, "eval_steps": None},
                 "checkpoint": {"steps": steps},
                 "logging": {"log_steps": 50},
                 "callbacks": [{"KeepNCheckpoints": {"n": 1}}]},
        "fit": {"train_dataloader": {**loader(train, True, motif_tracks), "cell_types": list(CELLS[:2])},
                "val_dataloader": {**loader(validation, False, motif_tracks), "cell_types": [CELLS[2]]}},
    }}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@dataclass(frozen=True)
class TrainedRun:
    params: Path
    train: Path
    validation: Path
    truth: Truth
    """Truth of the validation split."""
    log: str


def train_fixture(root: Path, steps: int = 500, train_windows: int = 4000, validation_windows: int = 600,
                  motif_tracks: bool = False) -> TrainedRun:
    """Write both splits and train the tiny model on them with ``run.py CPU`` (a real subprocess)."""
    train, validation = root / "data" / "train", root / "data" / "validation"
    write_split(train, train_windows, seed=1)
    truth = write_split(validation, validation_windows, seed=2)
    params = write_params(root, train, validation, steps, motif_tracks)
    done = run_py(["CPU", "--params", params, "--mode", "train_and_eval"], cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"fixture training failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return TrainedRun(params, train, validation, truth, done.stdout + done.stderr)


def run_interpret(args: list, cwd: Path):
    """``python -m ebert_modelzoo.interpret ARGS`` as a user runs it (a finished subprocess)."""
    return run_python(["-m", "ebert_modelzoo.interpret", *map(str, args), "--no_progress"], cwd)
