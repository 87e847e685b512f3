"""training/optimizer_state.py on real torch AdamW / PhasedLinearLR / GradScaler states: the
cstorch layout it writes (beta powers after k steps are beta**(k + 1)), the round trip back to
torch continuing the same updates, the schedule position, the loss scale, and one-line refusals
of states that do not fit. (tests/cerebras/test_checkpoint_interop.py resumes real runs across
the real backends.)"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch

from ebert_modelzoo.config.params import LinearLRConfig
from ebert_modelzoo.errors import CheckpointError
from ebert_modelzoo.training.optim import param_groups
from ebert_modelzoo.training.optimizer_state import (
    convert_grad_scaler,
    convert_optimizer,
    convert_schedulers,
)
from ebert_modelzoo.training.schedules import PhasedLinearLR, learning_rate_at

PATH = Path("/runs/x/checkpoint_3.mdl")
PHASES = [LinearLRConfig(initial_learning_rate=0.0, end_learning_rate=1e-2, total_iters=2),
          LinearLRConfig(initial_learning_rate=1e-2, end_learning_rate=0.0, total_iters=10)]


class Net(torch.nn.Module):
    """Two decayed matrices, undecayed bias/LayerNorm, and a head that never gets a gradient."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(4, width)
        self.norm = torch.nn.LayerNorm(width)
        self.unused = torch.nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.inner(x)).pow(2).sum()


def adamw(model: torch.nn.Module, betas=(0.9, 0.999)) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, 0.01), lr=0.0, betas=betas, eps=1e-6, weight_decay=0.01)


def train(model: Net, optimizer: torch.optim.Optimizer, scheduler, steps: int, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        model(torch.randn(5, 4, generator=generator)).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


@pytest.fixture
def trained():
    torch.manual_seed(0)
    model = Net()
    optimizer = adamw(model)
    scheduler = PhasedLinearLR(optimizer, PHASES)
    train(model, optimizer, scheduler, 3)
    return model, optimizer, scheduler


def test_torch_state_in_cstorch_layout_and_back_continues_the_same_updates(trained):
    model, optimizer, scheduler = trained
    saved = copy.deepcopy(optimizer.state_dict())  # not the live tensors the optimizer updates
    params = [p for group in optimizer.param_groups for p in group["params"]]
    unused = {i for i in range(len(params)) if i not in saved["state"]}
    assert len(unused) == 2  # the head's weight and bias never had a gradient: torch keeps no state for them

    fresh = Net()
    cs = convert_optimizer(saved, "torch", adamw(fresh), "cstorch", PATH, checkpoint_step=3)
    assert sorted(cs["state"]) == list(range(len(params)))
    for i, entry in cs["state"].items():
        steps = 0 if i in unused else 3
        assert entry["beta1_power"].dtype == torch.float32
        assert entry["beta1_power"].item() == pytest.approx(0.9 ** (steps + 1), rel=1e-7)
        assert entry["beta2_power"].item() == pytest.approx(0.999 ** (steps + 1), rel=1e-7)
        if i in unused:
            assert not entry["exp_avg"].any() and entry["exp_avg"].shape == params[i].shape
        else:
            assert torch.equal(entry["exp_avg"], saved["state"][i]["exp_avg"])
            assert torch.equal(entry["exp_avg_sq"], saved["state"][i]["exp_avg_sq"])
    assert [g["lr"] for g in cs["param_groups"]] == [learning_rate_at(3, PHASES)] * 2

    fresh.load_state_dict(model.state_dict())
    restored = adamw(fresh)
    restored.load_state_dict(convert_optimizer(cs, "cstorch", restored, "torch", PATH, checkpoint_step=3))
    back = restored.state_dict()
    assert sorted(back["state"]) == sorted(saved["state"])
    for i, entry in saved["state"].items():
        assert back["state"][i]["step"].item() == entry["step"].item() == 3
        assert torch.equal(back["state"][i]["exp_avg_sq"], entry["exp_avg_sq"])
    restored_scheduler = PhasedLinearLR(restored, PHASES)
    restored_scheduler.load_state_dict(scheduler.state_dict())
    train(model, optimizer, scheduler, 2, seed=1)
    train(fresh, restored, restored_scheduler, 2, seed=1)
    for mine, theirs in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(mine, theirs)


def test_cstorch_powers_give_the_step_count_even_after_beta1_underflows(trained):
    _, optimizer, _ = trained
    params = [p for group in optimizer.param_groups for p in group["params"]]
    own = optimizer.state_dict()
    state = {i: {"exp_avg": torch.zeros(p.shape), "exp_avg_sq": torch.zeros(p.shape),
                 # float32 products, as cstorch accumulates them
                 "beta1_power": torch.tensor(0.9).pow(torch.tensor(2001.0)),
                 "beta2_power": torch.tensor(0.999).pow(torch.tensor(2001.0))} for i, p in enumerate(params)}
    cs = {"state": state, "param_groups": [{**g, "correct_bias": True} for g in own["param_groups"]]}
    converted = convert_optimizer(cs, "cstorch", optimizer, "torch", PATH, checkpoint_step=2000)
    assert state[0]["beta1_power"].item() == 0.0
    assert {entry["step"].item() for entry in converted["state"].values()} == {2000.0}


def _refusal(message_part: str, call) -> None:
    with pytest.raises(CheckpointError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and str(PATH) in message and "--load_checkpoint_states" in message
    assert message_part in message


def test_states_that_do_not_fit_are_refused_with_one_line(trained):
    model, optimizer, _ = trained
    saved = copy.deepcopy(optimizer.state_dict())  # not the live tensors the optimizer updates
    _refusal("groups of [2, 4] parameters, this run's optimizer [3, 5] (another model?)",
             lambda: convert_optimizer(saved, "torch", adamw(torch.nn.Sequential(Net(), torch.nn.Linear(2, 2))),
                                       "cstorch", PATH, 3))
    _refusal("exp_avg has shape (3, 4), the parameter (5, 4)",
             lambda: convert_optimizer(saved, "torch", adamw(Net(width=5)), "cstorch", PATH, 3))
    _refusal("betas [0.9, 0.999] in group 0, this run [0.8, 0.999]",
             lambda: convert_optimizer(saved, "torch", adamw(Net(), betas=(0.8, 0.999)), "cstorch", PATH, 3))
    _refusal("has taken 3 steps, the checkpoint only 2",
             lambda: convert_optimizer(saved, "torch", adamw(Net()), "cstorch", PATH, 2))
    _refusal("is not cstorch's AdamW state",
             lambda: convert_optimizer(saved, "cstorch", adamw(Net()), "torch", PATH, 3))

    cs = convert_optimizer(saved, "torch", adamw(Net()), "cstorch", PATH, 3)
    cs["state"][1]["beta1_power"] = torch.tensor(0.5)
    _refusal("beta1_power 0.5 is no power of beta 0.9",
             lambda: convert_optimizer(cs, "cstorch", adamw(Net()), "torch", PATH, 3))
    cs = convert_optimizer(saved, "torch", adamw(Net()), "cstorch", PATH, 3)
    cs["param_groups"][0]["correct_bias"] = False
    _refusal("correct_bias: false", lambda: convert_optimizer(cs, "cstorch", adamw(Net()), "torch", PATH, 3))


def test_schedule_position_carries_over_in_each_layout(trained):
    _, optimizer, scheduler = trained
    # cstorch's SequentialLR of two LinearLRs (milestone 2) as cerebras-pytorch 2.10 saves it
    # after 3 steps, and freshly built (outer and first phase at 0, the second at 0).
    cs_saved = [{"_milestones": [2], "last_epoch": torch.tensor(3), "_step_count": 4, "total_iters": None,
                 "_schedulers": [{"last_epoch": torch.tensor(3), "total_iters": 2},
                                 {"last_epoch": torch.tensor(1), "total_iters": 10}]}]
    fresh = PhasedLinearLR(adamw(Net()), PHASES)
    (as_torch,) = convert_schedulers(cs_saved, [fresh.state_dict()], "torch", PATH)
    fresh.load_state_dict(as_torch)
    assert fresh.state_dict() == scheduler.state_dict() == {"last_epoch": 3, "_step_count": 4}
    assert fresh.optimizer.param_groups[0]["lr"] == learning_rate_at(3, PHASES)

    cs_fresh = {**cs_saved[0], "last_epoch": torch.tensor(0), "_step_count": 1,
                "_schedulers": [{"last_epoch": torch.tensor(0), "total_iters": 2},
                                {"last_epoch": torch.tensor(0), "total_iters": 10}]}
    for position, phases in ((3, [3, 1]), (1, [1, 0]), (12, [12, 10])):
        (as_cs,) = convert_schedulers([{"last_epoch": position, "_step_count": position + 1}], [cs_fresh],
                                      "cstorch", PATH)
        assert as_cs["last_epoch"].item() == position
        assert [phase["last_epoch"].item() for phase in as_cs["_schedulers"]] == phases
        assert as_cs["_milestones"] == [2] and as_cs["_schedulers"][1]["total_iters"] == 10
    _refusal("the checkpoint has a learning-rate schedule and this run no schedulers",
             lambda: convert_schedulers([scheduler.state_dict()], [], "cstorch", PATH))


def test_loss_scale_carries_over_where_both_sides_keep_one(caplog):
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    own = scaler.state_dict()
    assert convert_grad_scaler({"loss_scale": torch.tensor(256.0)}, own, "torch", PATH) == {**own, "scale": 256.0}
    assert convert_grad_scaler(own, {}, "cstorch", PATH) == {"loss_scale": 1024.0}
    with caplog.at_level(logging.INFO, logger="ebert_modelzoo"):
        # cstorch saves an empty grad scaler state off CSX
        assert convert_grad_scaler({}, own, "torch", PATH) is None
    assert "no loss scale carried over (the checkpoint has none)" in caplog.text
