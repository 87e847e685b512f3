"""The one error type of the preprocessing pipeline."""
from __future__ import annotations


class InputError(ValueError):
    """An input file is missing, malformed or inconsistent; the message is one line naming it."""
