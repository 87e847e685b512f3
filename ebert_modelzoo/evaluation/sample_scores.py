"""Per-sample scores of one scorer (a fine-tuned checkpoint or the motif + accessibility baseline)
on an evaluation split, with the labels they are judged against, and their .npz file.

Arrays are [C, W, K]: C cell types (in the scorer's order), W windows of the split (file order),
K labels. The .npz holds ``scores``, ``labels``, ``weights``, ``label_names``, ``cell_types`` and
whatever a subclass adds (evaluation/predict.py's ``Predictions`` adds ``step``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar

import numpy as np

from ebert_modelzoo.atomic import atomic_path

S = TypeVar("S", bound="SampleScores")


@dataclass(frozen=True)
class SampleScores:
    """Scores, 0/1 labels and label weights (0 where the label is ambiguous), each [C, W, K]."""

    label_names: tuple[str, ...]
    cell_types: tuple[str, ...]
    scores: np.ndarray
    labels: np.ndarray
    weights: np.ndarray

    def save(self, path: str | Path) -> Path:
        """Write an .npz atomically (tmp name, fsync, rename)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **self._stored())
        return path

    @classmethod
    def load(cls: type[S], path: str | Path) -> S:
        """Read a file written by ``save``."""
        with np.load(path) as data:
            return cls(**cls._restored(data))

    def _stored(self) -> dict[str, np.ndarray]:
        """The arrays ``save`` writes (subclasses add theirs)."""
        return {"scores": self.scores, "labels": self.labels, "weights": self.weights,
                "label_names": np.array(self.label_names), "cell_types": np.array(self.cell_types)}

    @classmethod
    def _restored(cls, data: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Constructor arguments from a saved file's arrays (subclasses add theirs)."""
        return {"label_names": tuple(str(x) for x in data["label_names"]),
                "cell_types": tuple(str(x) for x in data["cell_types"]),
                "scores": data["scores"], "labels": data["labels"], "weights": data["weights"]}
