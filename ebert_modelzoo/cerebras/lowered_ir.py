"""What ``--validate_only`` leaves behind: the Cerebras IR (``cirh.mlir``) of each lowered step.

Cerebras' tools log "Compile validated locally" even when a step's lowering wrote no IR (seen
with ``nn.Conv1d``: a cirh.mlir of 0 bytes), so run.py reads the files themselves.
"""
from __future__ import annotations

from pathlib import Path

MTIME_SLACK_S = 2.0
"""File systems that store modification times in whole seconds (or coarser) can date a file
written just after ``since`` before it."""


def lowered_ir(model_dir: Path, since: float) -> list[Path]:
    """The cirh.mlir files written under ``model_dir``/cerebras_logs at or after ``since`` (a
    time.time(), less MTIME_SLACK_S): our cstorch backend writes executors/<n>/, Model Zoo's Trainer
    <timestamp>/executors/<n>/; the ``latest`` links are left out."""
    logs = Path(model_dir) / "cerebras_logs"
    found = [*logs.glob("executors/*/cirh.mlir"), *logs.glob("*/executors/*/cirh.mlir")]
    since -= MTIME_SLACK_S
    return sorted(path for path in found if "latest" not in path.parts and path.stat().st_mtime >= since)


def check_lowered(model_dir: Path, since: float) -> None:
    """Raise unless a ``--validate_only`` run that started at ``since`` wrote Cerebras IR for every step.

    Raises:
        RuntimeError: no cirh.mlir was written, or one is empty (the step did not lower).
    """
    found = lowered_ir(model_dir, since)
    if not found:
        raise RuntimeError(f"--validate_only wrote no Cerebras IR (cirh.mlir) under {Path(model_dir) / 'cerebras_logs'}")
    empty = [path for path in found if path.stat().st_size == 0]
    if empty:
        raise RuntimeError(f"--validate_only: {empty[0]} is empty: the step did not lower to Cerebras IR although "
                           "the log says 'Compile validated locally'; an operation of the model has no Cerebras lowering")
