"""Fixtures shared by the training tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from .fixtures import make_data


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Pre-training and fine-tuning train/validation splits, written once per test module."""
    return make_data(tmp_path_factory.mktemp("data"))
