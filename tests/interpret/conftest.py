"""One trained fixture run per test session (a few minutes of CPU), shared by the interpret tests.

EBERT_INTERPRET_FIXTURE=DIR keeps the run in DIR and reuses it when it is already there (for
repeated local runs; the default is a fresh run in pytest's temporary folder)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from tests.interpret.fixture import TrainedRun, train_fixture


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    keep = os.environ.get("EBERT_INTERPRET_FIXTURE")
    if not keep:
        return train_fixture(tmp_path_factory.mktemp("interpret_run"))
    record = Path(keep) / "trained.pkl"
    if record.is_file():
        return pickle.loads(record.read_bytes())
    run = train_fixture(Path(keep))
    record.write_bytes(pickle.dumps(run))
    return run
