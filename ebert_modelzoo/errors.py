"""Every error type of the package, and the shape of every error a user sees (one line, of
bounded length, naming the file or key).

    ValueError
    +-- BadInputError        an input the user fixes: command lines answer it with exit status 2
    |   +-- ParamsError      a params or preprocessing YAML file, or one of its keys
    |   +-- DatasetError     a split folder (data_params.json, shards), or a key asking for what it lacks
    |   +-- MotifError       a motif file, or a motif it does not hold
    |   +-- InputError       a preprocessing input file (FASTA, BED, bigWig, labels, sequence tables)
    |   +-- InterpretError   an interpret request naming what the run or its split lacks
    +-- CheckpointError      a checkpoint unreadable or not fitting the model (exit status 1)
    +-- NotOwnedError        a deletion outside the folder a run owns
    +-- ClusterAccessError   a CSX run without the cluster it needs
    RuntimeError
    +-- FolderLockedError    another live run holds the folder
    +-- DemoError            a step of the demo failed
"""
from __future__ import annotations

import re

MAX_WORD = 120
"""Longer runs of non-space characters (a pasted sequence, a huge path) are elided in the middle."""
MAX_LINE = 1000


class BadInputError(ValueError):
    """An input the user fixes (a file, a folder, a key): the message is one line naming it, and
    every command line answers it with exit status 2."""


class ParamsError(BadInputError):
    """A params file or section is invalid; the message is one line naming the file and key."""


class DatasetError(BadInputError):
    """A split folder is inconsistent with its schema, or a config asks for what it does not hold."""


class MotifError(BadInputError):
    """A motif file is malformed or does not hold a motif asked for."""


class InputError(BadInputError):
    """A preprocessing input file is missing, malformed or inconsistent; the message is one line naming it."""


class InterpretError(BadInputError):
    """A request names something the run or its split does not have (cell type, label, region)."""


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not fit the model; the message is one line."""


class NotOwnedError(ValueError):
    """A deletion would leave the folder the run owns or pass a symlink; one line naming both."""


class ClusterAccessError(ValueError):
    """A CSX run needs a cluster that was not given; the message says how to provide one."""


class FolderLockedError(RuntimeError):
    """Another live run holds the folder; the message is one line naming the folder and its pid."""


class DemoError(RuntimeError):
    """A step of the demo failed (its own output says why)."""


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
