"""Per-sample scores of a fine-tuned checkpoint on one evaluation dataloader, in (cell type,
window) order: what a report needs to compare variants sample by sample.

It runs the trainer's own evaluation (model building, checkpoint loading, eval step) and collects
each batch's logits; the dataset's ``sample_order`` says which (cell type, window) every row
of every batch is, so the scores come back as arrays [C, W, K] (C = the dataloader's cell types
in its order, W = every window of the split in file order, K = its labels).

    python -m ebert_modelzoo.evaluation.predict --params P --out predictions.tsv \\
        [--loader trainer.validate.val_dataloader] [--data_dir SPLIT] [--checkpoint_path CKPT]

``--out`` picks the format by its name: .npz (arrays [C, W, K] with labels and weights), .tsv /
.tsv.gz / .bed (coordinates or input rows, one probability column per label), .bedGraph / .bw
(one track per cell type and label); see prediction_files.py.
"""
from __future__ import annotations

import argparse
import logging
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ebert_modelzoo.config.base import updated
from ebert_modelzoo.config.params import Params, load_params
from ebert_modelzoo.contract.data_params import load_data_params
from ebert_modelzoo.data.loader import ShardDataset
from ebert_modelzoo.errors import BadInputError, CheckpointError, ParamsError
from ebert_modelzoo.evaluation.prediction_files import describe, output_format, write_predictions
from ebert_modelzoo.evaluation.sample_scores import SampleScores
from ebert_modelzoo.folder_lock import folder_lock
from ebert_modelzoo.training.backends import BackendOptions, select_backend
from ebert_modelzoo.training.checkpoint import latest_checkpoint
from ebert_modelzoo.training.loop import Trainer
from ebert_modelzoo.training.tasks import DataSource

LOGGER = logging.getLogger("ebert_modelzoo")
DEFAULT_LOADER = "trainer.validate.val_dataloader"


@dataclass(frozen=True)
class Predictions(SampleScores):
    """A checkpoint's scores (logits) with labels and weights, each [C, W, K]."""

    step: int
    """Training step of the checkpoint that made the scores."""
    metrics: dict[str, Any]
    """The trainer's evaluation metrics of the same pass (not stored by ``save``)."""

    def _stored(self) -> dict[str, np.ndarray]:
        return {**super()._stored(), "step": np.asarray(self.step)}

    @classmethod
    def _restored(cls, data: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {**super()._restored(data), "step": int(data["step"]), "metrics": {}}


def _loader(params: Params, loader_path: str) -> Any:
    for path, loader in params.dataloaders():
        if path == loader_path:
            return loader
    raise ParamsError(f"{loader_path}: no such dataloader in the params")


def predict(params: Params, params_file: str | Path, loader_path: str = DEFAULT_LOADER,
            checkpoint: Optional[Path] = None, data_dir: Optional[str | Path] = None) -> Predictions:
    """Score every sample of ``loader_path``'s data with ``checkpoint`` (default: the newest in
    the params' model_dir), read in order (no shuffle, no dropped last batch). ``data_dir``
    scores another split folder with that dataloader's settings.

    Raises:
        ParamsError: not a fine-tuning model, or no such dataloader.
        FileNotFoundError: no checkpoint.
    """
    if params.trainer.init.model.name != "ebert_finetune":
        raise ParamsError(f"{params_file}: predictions need a fine-tuning model (ebert_finetune)")
    model_dir = Path(params.trainer.init.model_dir)
    if checkpoint is None and latest_checkpoint(model_dir) is None:
        raise FileNotFoundError(f"{model_dir.resolve()}: no checkpoint to predict with (train first, or give "
                                "--checkpoint_path; relative paths in the params are read from the current folder)")
    update: dict[str, Any] = {"shuffle": False, "drop_last": False}
    if data_dir is not None:
        update["data_dir"] = str(data_dir)
    loader_cfg = updated(_loader(params, loader_path), **update)
    # model_dir's lock, as run.py holds it in every mode: no training run saves or prunes its
    # checkpoints while they are read (a model_dir that does not exist is not created for it)
    with folder_lock(model_dir, "run") if model_dir.is_dir() else nullcontext():
        backend = select_backend(BackendOptions(target=params.trainer.init.backend.backend_type, model_dir=model_dir))
        try:
            trainer = Trainer(params, backend, params_file, model_dir)
            if checkpoint is None:  # the newest intact one
                checkpoint, state = trainer.newest_valid_checkpoint()
                trainer.load(checkpoint, ("model", "step"), strict=True, state=state)
            else:
                trainer.load(Path(checkpoint), ("model", "step"), strict=True)
            order_source = DataSource(loader_cfg)
            dataset: ShardDataset = order_source.loader.dataset
            cell_index, window_index = dataset.sample_order(0, order_source.config.num_workers)
            collected: dict[str, list[np.ndarray]] = {"scores": [], "labels": [], "weights": []}

            def collect(outputs: Any, batch: dict[str, Any]) -> None:
                collected["scores"].append(outputs.logits.detach().float().cpu().numpy())
                collected["labels"].append(batch["seq_labels"].cpu().numpy())
                collected["weights"].append(batch["seq_label_weights"].cpu().numpy())

            metrics = trainer.evaluate(loader_cfg, order_source.num_batches(), loader_path, on_batch=collect)
        finally:
            backend.close()
    data = order_source.processor
    num_windows, cells = sum(data.params.shard_windows), list(data.cells)
    arrays = {key: np.concatenate(parts) for key, parts in collected.items()}
    if arrays["scores"].ndim != 2 or arrays["scores"].shape[0] != cell_index.size:
        raise ValueError(f"{params_file}: {loader_path}: expected [samples, K] scores for {cell_index.size} samples, "
                         f"got {arrays['scores'].shape} (predictions need head: sequence)")
    position = np.full(len(data.params.cell_types), -1)
    position[cells] = np.arange(len(cells))
    position = position[cell_index]
    out = {key: np.full((len(cells), num_windows, value.shape[1]), np.nan, dtype=np.float32)
           for key, value in arrays.items()}
    for key, value in arrays.items():
        out[key][position, window_index] = value
    if np.isnan(out["scores"]).any():
        raise ValueError(f"{loader_path}: some (cell type, window) samples were never scored")
    names = data.params.cell_types
    return Predictions(tuple(data.label_names), tuple(names[c] for c in cells), out["scores"],
                       out["labels"], out["weights"], trainer.step, metrics)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: write a fine-tuned checkpoint's per-sample scores (.npz, .tsv, .bed, .bedGraph, .bw)."""
    parser = argparse.ArgumentParser(
        prog="python -m ebert_modelzoo.evaluation.predict",
        description="Scores of a fine-tuned EBERT checkpoint on one split, with coordinates (or input rows).")
    parser.add_argument("-p", "--params", required=True, help="fine-tuning params YAML")
    parser.add_argument("--out", required=True,
                        help="output file; its name picks the format: .tsv/.tsv.gz (chrom start end cell_type "
                             "+ one probability per label; labelled sequences: source row id ...), .bed (BED3+), "
                             ".bedGraph or .bw (one track per cell type and label: <stem>.<cell>.<label>.bw), "
                             ".npz (logits, labels, weights as [cell type, window, label])")
    parser.add_argument("--loader", default=DEFAULT_LOADER, help=f"dataloader to score (default {DEFAULT_LOADER})")
    parser.add_argument("--data_dir", help="score this split folder instead of the dataloader's data_dir")
    parser.add_argument("--checkpoint_path", help="checkpoint (default: the newest in model_dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    try:
        output_format(args.out)
        params = load_params(args.params)
        ckpt = Path(args.checkpoint_path) if args.checkpoint_path else None
        preds = predict(params, args.params, args.loader, ckpt, args.data_dir)
        split = load_data_params(args.data_dir or _loader(params, args.loader).data_dir)
        paths = write_predictions(args.out, split, preds)
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, CheckpointError, ValueError, RuntimeError) as err:  # OSError: a folder that cannot be locked
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    LOGGER.info("wrote %s", describe(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
