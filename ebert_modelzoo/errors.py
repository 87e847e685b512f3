"""The shape of every error a user sees (one line, of bounded length), and the errors more than
one subpackage raises."""
from __future__ import annotations

import re

MAX_WORD = 120
"""Longer runs of non-space characters (a pasted sequence, a huge path) are elided in the middle."""
MAX_LINE = 1000


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not fit the model; the message is one line."""


def one_line(message: str) -> str:
    """``message`` on one line (whitespace collapsed), each overlong word and then the whole line
    cut in the middle with a note of how much was left out."""
    text = " ".join(message.split())
    text = re.sub(rf"\S{{{MAX_WORD + 1},}}", lambda m: _elide(m.group(0), MAX_WORD), text)
    return _elide(text, MAX_LINE)


def _elide(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = limit - 40
    return f"{text[:keep * 2 // 3]}...[{len(text) - keep} characters left out]...{text[len(text) - keep // 3:]}"
