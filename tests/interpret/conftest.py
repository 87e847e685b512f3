"""One trained fixture run per test session (a few minutes of CPU), shared by the interpret tests.

EBERT_INTERPRET_FIXTURE=DIR keeps the run in DIR and reuses it when it is already there (for
repeated local runs; the default is a fresh run in pytest's temporary folder)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from ebert_modelzoo.interpret.scoring import Scorer
from tests.interpret.fixture import TrainedRun, train_fixture


def _trained(tmp_path_factory: pytest.TempPathFactory, name: str, motif_tracks: bool) -> TrainedRun:
    keep = os.environ.get("EBERT_INTERPRET_FIXTURE")
    if not keep:
        return train_fixture(tmp_path_factory.mktemp(name), motif_tracks=motif_tracks)
    record = Path(keep) / name / "trained.pkl"
    if record.is_file():
        return pickle.loads(record.read_bytes())
    run = train_fixture(Path(keep) / name, motif_tracks=motif_tracks)
    record.write_bytes(pickle.dumps(run))
    return run


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """The tiny model on DNA tokens and DNase."""
    return _trained(tmp_path_factory, "interpret_run", motif_tracks=False)


@pytest.fixture(scope="session")
def trained_tracks(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """The same with a known-motif track of the planted matrix and the head's linear term."""
    return _trained(tmp_path_factory, "interpret_run_tracks", motif_tracks=True)


@pytest.fixture(scope="module")
def scorer(trained: TrainedRun) -> Scorer:
    """The scorer of ``trained``'s run, as the interpret commands build it."""
    found = Scorer(trained.params)
    yield found
    found.close()


@pytest.fixture(scope="module")
def tracks_scorer(trained_tracks: TrainedRun) -> Scorer:
    """The scorer of ``trained_tracks``'s run."""
    found = Scorer(trained_tracks.params)
    yield found
    found.close()
