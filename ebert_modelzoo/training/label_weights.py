"""``positive_weight: auto``: per-label weights of the positive BCE term from the training split's
label counts, resolved into explicit numbers before the model is built.

The model only ever sees a list of K numbers (a fixed buffer); the resolved list replaces "auto"
in the params the trainer keeps, so every checkpoint records the weights that were used.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ebert_modelzoo.config.base import parse_section
from ebert_modelzoo.config.model import EBertFinetuneConfig
from ebert_modelzoo.config.params import Params
from ebert_modelzoo.data.processors import EBertFinetuningDataProcessor
from ebert_modelzoo.errors import ParamsError

LOGGER = logging.getLogger("ebert_modelzoo")
KEY = "trainer.init.model.positive_weight"


def auto_positive_weight(positives: np.ndarray, labelled: np.ndarray) -> list[float]:
    """sqrt(negatives / positives) per label, rounded to 4 significant digits.

    The square root is the usual compromise between no reweighting and full balance
    (negatives / positives, which at 1% positives multiplies the positive gradients a
    hundredfold and makes the early steps unstable).

    Raises:
        ValueError: a label has no positive or no negative example.
    """
    weights = []
    for k, (pos, total) in enumerate(zip(positives.tolist(), labelled.tolist())):
        if pos == 0 or pos == total:
            raise ValueError(f"label {k} has {pos} positives of {total} labelled examples")
        weights.append(float(f"{math.sqrt((total - pos) / pos):.4g}"))
    return weights


def resolve_positive_weight(params: Params, source: str | Path) -> Params:
    """``params`` with ``positive_weight: auto`` replaced by explicit weights from the labels of
    ``trainer.fit.train_dataloader`` (its cell types, labels and label level); other params as is.

    Raises:
        ParamsError: naming the key, when there is no training dataloader or a label has no
            positive (or no negative) example in it.
    """
    model = params.trainer.init.model
    if not isinstance(model, EBertFinetuneConfig) or model.positive_weight != "auto":
        return params
    fit = params.trainer.fit
    if fit is None:
        raise ParamsError(f"{source}: {KEY}: 'auto' needs trainer.fit.train_dataloader (its label counts)")
    processor = EBertFinetuningDataProcessor(fit.train_dataloader)
    positives, labelled = processor.label_counts()
    try:
        weights = auto_positive_weight(positives, labelled)
    except ValueError as err:
        names = ", ".join(processor.label_names)
        raise ParamsError(f"{source}: {KEY}: 'auto' from {fit.train_dataloader.data_dir} (labels {names}): "
                          f"{err}") from None
    LOGGER.info("%s auto -> %s (sqrt(negatives / positives); positives %s of %s labelled in %s)",
                KEY, weights, positives.tolist(), labelled.tolist(), fit.train_dataloader.data_dir)
    data = params.model_dump(by_alias=True)
    data["trainer"]["init"]["model"]["positive_weight"] = weights
    return parse_section(Params, data, "", source)
