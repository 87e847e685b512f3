"""Optimizer, learning-rate schedule and loss-scale states of one backend in the other's layout,
so that a run resumes on the other backend where it stopped (CPU/GPU <-> CSX).

The two backends save their own classes' state dicts (facts from torch 2.4/2.13 and
cerebras-pytorch 2.10):

- torch.optim.AdamW: ``state[i] = {"step": 0-d float32 tensor, "exp_avg", "exp_avg_sq"}``,
  created at a parameter's first gradient (none for a parameter that never had one); the step
  count is per parameter and the bias corrections are ``1 - beta**step``.
- cerebras.pytorch.optim.AdamW: ``state[i] = {"exp_avg", "exp_avg_sq", "beta1_power",
  "beta2_power"}`` for every parameter from the start (``preinitialize``), the powers 0-d float32
  tensors starting at ``beta`` and multiplied by ``beta`` after each step, so after ``k`` steps
  they hold ``beta**(k + 1)`` (the correction of the next step); with ``correct_bias: false``
  there are no powers and no bias correction. Its groups add ``correct_bias`` and
  ``l2_regularization_rate``.

``i`` is the parameter's position in the optimizer's groups, which both backends build from
``training/optim.py``'s ``param_groups`` in the same order, so states map by position. The moments
carry over as they are: both AdamWs update them identically. (Both then divide by
``sqrt(exp_avg_sq) + eps``, torch after bias-correcting ``exp_avg_sq``, cstorch before, so the same
``eps`` weighs slightly differently in the two; that is the optimizers' own difference, not the
state's.)

Schedules: the position (``last_epoch``, the number of scheduler steps) is carried, never the
other backend's internals; the learning rate follows from this run's own schedule.
Loss scale: carried where both sides keep one (cstorch keeps it only on CSX).

Only plain dicts and tensors are read and written here: no Cerebras package is imported.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch

from ebert_modelzoo.errors import CheckpointError

LOGGER = logging.getLogger("ebert_modelzoo")
BACKENDS = ("torch", "cstorch")
# beta1**k below this is on its way to float32 underflow: too coarse to count steps from.
_SMALLEST_POWER = 1e-30


def _fail(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}; load the rest with --load_checkpoint_states "
                           "model,dataloader,step,rng")


def _number(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _steps_from_powers(entry: Mapping[str, Any], betas: Sequence[float], index: int, path: Path,
                       checkpoint_step: int) -> int:
    """Optimizer steps a cstorch AdamW parameter has taken, from its beta powers (beta1's while
    it is far from underflowing, being the finer count, else beta2's)."""
    for key, beta in zip(("beta1_power", "beta2_power"), betas):
        power = _number(entry[key])
        if power > _SMALLEST_POWER and 0.0 < beta < 1.0:
            exact = math.log(power) / math.log(beta) - 1.0
            # Each float32 product may be off by an ulp or so (about 6e-8 relative).
            slack = 1e-3 + 2.4e-7 * (abs(exact) + 1.0) / -math.log(beta)
            if slack < 0.5 and abs(exact - round(exact)) > slack:
                raise _fail(path, f"optimizer state of parameter {index}: {key} {power:.6g} is no "
                                  f"power of beta {beta}")
            break
    else:  # both powers underflowed: the bias corrections are 1 on either backend
        exact, slack = float(checkpoint_step), 0.0
    if exact < -slack or exact > checkpoint_step + slack:
        raise _fail(path, f"optimizer state of parameter {index} has taken {exact:.0f} steps, "
                          f"the checkpoint only {checkpoint_step}")
    return min(max(round(exact), 0), checkpoint_step)


def _check_groups(saved: Mapping[str, Any], own: Mapping[str, Any], source: str,
                  path: Path) -> None:
    sizes = [len(group["params"]) for group in saved["param_groups"]]
    own_sizes = [len(group["params"]) for group in own["param_groups"]]
    if sizes != own_sizes:
        raise _fail(path, f"the {source} optimizer state has groups of {sizes} parameters, this "
                          f"run's optimizer {own_sizes} (another model?)")
    for number, (group, own_group) in enumerate(zip(saved["param_groups"], own["param_groups"])):
        betas, own_betas = [_number(b) for b in group["betas"]], [_number(b) for b in own_group["betas"]]
        if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(betas, own_betas)):
            raise _fail(path, f"the {source} optimizer state has betas {betas} in group {number}, "
                              f"this run {own_betas}: its bias corrections do not carry over")
        for correct_bias in (group.get("correct_bias", True), own_group.get("correct_bias", True)):
            if not correct_bias:
                raise _fail(path, "AdamW without bias correction (correct_bias: false) exists only on "
                                  "the cstorch backend: its state cannot continue on torch's AdamW or "
                                  "come from it")


def convert_optimizer(saved: Mapping[str, Any], source: str, optimizer: torch.optim.Optimizer,
                      target: str, path: Path, checkpoint_step: int) -> dict[str, Any]:
    """``saved`` (the state dict of ``source``'s AdamW) as a state dict ``optimizer`` (``target``'s
    AdamW, built for this run) loads: moments by parameter position, step counts as the target
    keeps them, this run's group settings with the saved learning rate (the one the next step
    uses).

    Raises:
        CheckpointError: the groups, parameter counts, shapes, betas or step counts do not fit;
            the message names ``path``.
    """
    if source not in BACKENDS or target not in BACKENDS:
        raise _fail(path, f"optimizer state of an unknown backend {source!r}")
    own = optimizer.state_dict()
    _check_groups(saved, own, source, path)
    state: dict[int, dict[str, torch.Tensor]] = {}
    groups = []
    for group, own_group, live_group in zip(saved["param_groups"], own["param_groups"], optimizer.param_groups):
        beta1, beta2 = (_number(b) for b in own_group["betas"])
        for saved_index, index, param in zip(group["params"], own_group["params"], live_group["params"]):
            entry = saved["state"].get(saved_index)
            expected = {"exp_avg", "exp_avg_sq", "step"} if source == "torch" else {
                "exp_avg", "exp_avg_sq", "beta1_power", "beta2_power"}
            if entry is None and source == "torch":
                steps, exp_avg, exp_avg_sq = 0, None, None  # never had a gradient
            elif entry is None or not expected <= set(entry):
                raise _fail(path, f"optimizer state of parameter {saved_index} is not {source}'s AdamW "
                                  f"state (keys {sorted(entry or {})}, expected {sorted(expected)})")
            else:
                exp_avg, exp_avg_sq = entry["exp_avg"], entry["exp_avg_sq"]
                for name, moment in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
                    if tuple(moment.shape) != tuple(param.shape):
                        raise _fail(path, f"optimizer state of parameter {saved_index}: {name} has shape "
                                          f"{tuple(moment.shape)}, the parameter {tuple(param.shape)}")
                if source == "torch":
                    steps = int(_number(entry["step"]))
                    if not 0 <= steps <= checkpoint_step:
                        raise _fail(path, f"optimizer state of parameter {saved_index} has taken {steps} "
                                          f"steps, the checkpoint only {checkpoint_step}")
                else:
                    steps = _steps_from_powers(entry, (beta1, beta2), saved_index, path, checkpoint_step)
            if target == "torch":
                if steps:
                    state[index] = {"step": torch.tensor(float(steps), dtype=torch.float32),
                                    "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
            else:
                if exp_avg is None:
                    exp_avg = torch.zeros(param.shape, dtype=torch.float32)
                    exp_avg_sq = torch.zeros(param.shape, dtype=torch.float32)
                state[index] = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
                                "beta1_power": torch.tensor(beta1 ** (steps + 1), dtype=torch.float32),
                                "beta2_power": torch.tensor(beta2 ** (steps + 1), dtype=torch.float32)}
        groups.append({**own_group, "lr": _number(group["lr"])})
    return {"state": state, "param_groups": groups}


def schedule_position(saved: Sequence[Mapping[str, Any]], path: Path) -> int:
    """Scheduler steps taken (``last_epoch``; both backends' schedulers keep it at the top)."""
    if len(saved) != 1 or "last_epoch" not in saved[0]:
        raise _fail(path, f"scheduler state is not one learning-rate schedule ({len(saved)} entries)")
    return int(_number(saved[0]["last_epoch"]))


def convert_schedulers(saved: Sequence[Mapping[str, Any]], own: Sequence[Mapping[str, Any]], target: str,
                       path: Path) -> list[dict[str, Any]]:
    """The state dicts of this run's schedulers (``own``, freshly built, in ``target``'s layout)
    moved to the saved schedule's position.

    torch (training/schedules.py's PhasedLinearLR): ``last_epoch`` and ``_step_count`` (one more:
    the step at construction). cstorch: ``last_epoch`` (a tensor) of the scheduler, and for a
    SequentialLR those of its phases as it advances them: the first phase every step, phase
    ``i + 1`` every step after milestone ``i``.

    Raises:
        CheckpointError: the checkpoint has a schedule and this run none, or not one each.
    """
    position = schedule_position(saved, path)
    if len(own) != 1:
        raise _fail(path, "the checkpoint has a learning-rate schedule and this run "
                          f"{len(own) or 'no'} schedulers")
    state = dict(own[0])
    if target == "torch":
        return [{**state, "last_epoch": position, "_step_count": position + 1}]
    state["last_epoch"] = torch.tensor(position, dtype=torch.int64)
    if "_schedulers" in state:
        phases = [dict(phase) for phase in state["_schedulers"]]
        starts = [0, *state["_milestones"]]
        for phase, start in zip(phases, starts):
            phase["last_epoch"] = torch.tensor(position if start == 0 else max(0, position - start),
                                               dtype=torch.int64)
        state["_schedulers"] = phases
    return [state]


def loss_scale(saved: Optional[Mapping[str, Any]]) -> Optional[float]:
    """The loss scale in a grad scaler state of either backend (torch: ``scale``; cstorch on CSX:
    ``loss_scale``; cstorch elsewhere saves an empty dict), or None."""
    for key in ("scale", "loss_scale"):
        if saved and saved.get(key) is not None:
            return _number(saved[key])
    return None


def convert_grad_scaler(saved: Optional[Mapping[str, Any]], own: Optional[Mapping[str, Any]], target: str,
                        path: Path) -> Optional[dict[str, Any]]:
    """This run's grad scaler state (``own``, None without one) with the saved loss scale, or
    None (logged) when one of the two sides keeps no loss scale: the scaler then starts at its
    configured scale and adapts as usual."""
    scale = loss_scale(saved)
    if scale is None or own is None:
        if saved or own is not None:
            LOGGER.info("%s: no loss scale carried over (%s); the grad scaler starts at its configured scale",
                        path, "the checkpoint has none" if scale is None else "this run uses no grad scaler")
        return None
    key = "scale" if target == "torch" else "loss_scale"
    return {**own, key: scale}
