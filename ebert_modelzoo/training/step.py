"""The train step and the eval step, written once for every backend."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ebert_modelzoo.config.params import PrecisionConfig
from ebert_modelzoo.training.backends.base import Backend, Batch


def make_train_step(
    backend: Backend,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedulers: Sequence[Any],
    grad_scaler: Any,
    precision: PrecisionConfig,
) -> Callable[[Batch], torch.Tensor]:
    """One optimizer step: forward -> loss, backward (scaled when a grad scaler is given), gradients
    averaged over data-parallel processes where the backend does that, unscale
    and clip to ``precision.max_gradient_norm``, optimizer and scheduler steps, zero_grad.

    Returns the backend-wrapped function ``step(batch) -> loss`` (a scalar tensor, not synced).
    """

    def train_step(batch: Batch) -> torch.Tensor:
        with backend.autocast(precision):
            loss = model(batch)
        if grad_scaler is not None:
            grad_scaler.scale(loss).backward()
            backend.reduce_gradients(model)
            grad_scaler.unscale_(optimizer)
        else:
            loss.backward()
            backend.reduce_gradients(model)
        if precision.max_gradient_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(model.parameters()), precision.max_gradient_norm)
        if grad_scaler is not None:
            grad_scaler.step(optimizer)
            grad_scaler.update()
        else:
            optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        optimizer.zero_grad()
        return loss

    return backend.wrap_train_step(train_step)


def make_eval_step(
    backend: Backend,
    evaluate: Callable[[Batch], Any],
    precision: PrecisionConfig,
) -> Callable[[Batch], Any]:
    """Forward only: ``evaluate(batch)`` (the model's eval method) under no_grad and autocast."""

    def eval_step(batch: Batch) -> Any:
        with torch.no_grad(), backend.autocast(precision):
            return evaluate(batch)

    return backend.wrap_eval_step(eval_step)
