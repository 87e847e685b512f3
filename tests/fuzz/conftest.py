"""Hypothesis profiles of the fuzz tests.

``ci`` (the default): a fixed seed (derandomized) and few examples, the whole folder in well
under a minute. ``long``: random seeds, ``EBERT_FUZZ_EXAMPLES`` examples per test (default
20,000); run it with
    EBERT_FUZZ_PROFILE=long .venv/bin/python -m pytest -q tests/fuzz
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.function_scoped_fixture])
settings.register_profile("ci", derandomize=True, max_examples=60, **_COMMON)
settings.register_profile("long", max_examples=int(os.environ.get("EBERT_FUZZ_EXAMPLES", "20000")), **_COMMON)
settings.load_profile(os.environ.get("EBERT_FUZZ_PROFILE", "ci"))
