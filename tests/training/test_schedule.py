"""training.lr_schedule: the learning rate of every step, a pure function of the step."""

from __future__ import annotations

import math

import pytest
import torch

from ssimrecon.training.schedule import LR_SCHEDULES, learning_rate


def test_constant_is_the_paper_lr_throughout() -> None:
    assert {learning_rate("constant", 1e-4, s, 50) for s in range(50)} == {1e-4}


def test_cosine_falls_from_lr_towards_zero() -> None:
    rates = [learning_rate("cosine", 2e-3, s, 100) for s in range(100)]
    assert rates[0] == pytest.approx(2e-3)
    assert rates[50] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert 0 < rates[-1] < 1e-5


def test_onecycle_matches_torch_onecycle_defaults() -> None:
    """Same course as torch's OneCycleLR (pct_start 0.3, div 25, final div 1e4, cosine)."""
    steps, lr = 40, 3e-3
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for step in range(steps):
        assert learning_rate("onecycle", lr, step, steps) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-6
        )
        opt.step()
        sched.step()


def test_unknown_schedule_is_an_error_naming_the_key() -> None:
    assert LR_SCHEDULES == ("constant", "cosine", "onecycle")
    with pytest.raises(ValueError, match="training.lr_schedule"):
        learning_rate("step", 1e-3, 0, 10)
    assert math.isfinite(learning_rate("onecycle", 1e-3, 0, 1))
