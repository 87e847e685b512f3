"""Learning-rate schedules as written in the params (SequentialLR of LinearLR phases), for the
plain torch backend. The cstorch backend builds cstorch's own schedulers from the same
``phases``."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ebert_modelzoo.config.params import InitConfig, LinearLRConfig, SequentialLRItem


def schedule_phases(init: InitConfig) -> Optional[list[LinearLRConfig]]:
    """The LinearLR phases of ``init.schedulers`` in order, or None for a constant learning rate."""
    if not init.schedulers:
        return None
    (item,) = init.schedulers
    if isinstance(item, SequentialLRItem):
        return [phase.LinearLR for phase in item.SequentialLR.schedulers]
    return [item.LinearLR]


def learning_rate_at(step: int, phases: Sequence[LinearLRConfig]) -> float:
    """Learning rate used by optimizer step ``step`` (0-based); constant at the last end value."""
    start = 0
    for phase in phases:
        if step < start + phase.total_iters:
            frac = (step - start) / phase.total_iters
            return phase.initial_learning_rate + frac * (phase.end_learning_rate - phase.initial_learning_rate)
        start += phase.total_iters
    return phases[-1].end_learning_rate


class PhasedLinearLR(torch.optim.lr_scheduler.LRScheduler):
    """Every param group follows ``learning_rate_at``; state is the step count (last_epoch)."""

    def __init__(self, optimizer: torch.optim.Optimizer, phases: Sequence[LinearLRConfig]) -> None:
        self.phases = list(phases)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [learning_rate_at(self.last_epoch, self.phases)] * len(self.optimizer.param_groups)

    def state_dict(self) -> dict:
        # The phases come from the params, not from the checkpoint.
        return {"last_epoch": self.last_epoch, "_step_count": self._step_count}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self.get_lr()
