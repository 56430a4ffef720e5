"""Extended log-barrier: both branches by hand, continuity, safe gradients, schedule and resume."""

from __future__ import annotations

import math

import pytest
import torch

from fcam.errors import CheckpointError, ConfigError
from fcam.losses import BarrierSchedule, absolute_size_loss, extended_log_barrier


@pytest.mark.parametrize(
    ("z", "t", "expected"),
    [
        (-4.0, 1.0, -math.log(4.0)),  # barrier branch: z <= -1/t^2 = -1
        (-1.0, 2.0, 0.0),  # -log(1)/2; switch at -1/4
        (-100.0, 5.0, -math.log(100.0) / 5),
        (0.5, 1.0, 1.5),  # linear branch: 1 * 0.5 - log(1) / 1 + 1
        (0.0, 2.0, math.log(4.0) / 2 + 0.5),  # 0 - log(1/4) / 2 + 1/2
        (-0.1, 2.0, -0.2 + math.log(4.0) / 2 + 0.5),
    ],
)
def test_both_branches_by_hand(z, t, expected):
    value = extended_log_barrier(torch.tensor([z], dtype=torch.float64), t)
    assert value.item() == pytest.approx(expected)


@pytest.mark.parametrize("t", [0.5, 1.0, 3.0, 10.0])
def test_value_and_slope_are_continuous_at_the_switch(t):
    switch = -1.0 / t**2
    eps = 1e-7
    z = torch.tensor([switch - eps, switch, switch + eps], dtype=torch.float64, requires_grad=True)
    values = extended_log_barrier(z, t)
    values.sum().backward()
    assert values[0].item() == pytest.approx(values[2].item(), abs=1e-5)
    assert values[1].item() == pytest.approx(math.log(t**2) / t)  # -log(1/t^2) / t
    assert z.grad is not None
    torch.testing.assert_close(z.grad, torch.full((3,), t, dtype=torch.float64), rtol=1e-5, atol=0)


def test_no_nan_from_the_unused_branch():
    z = torch.tensor([-5.0, 0.0, 3.0, 1e6], requires_grad=True)
    values = extended_log_barrier(z, 2.0)
    values.sum().backward()
    assert torch.isfinite(values).all()
    assert z.grad is not None
    assert torch.isfinite(z.grad).all()


def test_size_loss_by_hand():
    probs = torch.zeros(2, 2, 4, 5, dtype=torch.float64)
    probs[0, 0] = 1.0  # sizes (20, 0)
    probs[1] = 0.5  # sizes (10, 10)
    t = 2.0
    expected = (-math.log(20.0) / t + (math.log(t**2) / t + 1 / t) - 2 * math.log(10.0) / t) / 4
    assert absolute_size_loss(probs, t).item() == pytest.approx(expected)


def test_size_loss_pushes_small_regions_to_grow():
    logits = torch.zeros(1, 2, 6, 6, requires_grad=True)
    with torch.no_grad():
        logits[0, 0] = 3.0  # the foreground is small
    absolute_size_loss(torch.softmax(logits, dim=1), 1.0).backward()
    assert logits.grad is not None
    assert (logits.grad[0, 1] < 0).all()  # descending the loss raises the foreground logit


def test_t_must_be_positive():
    with pytest.raises(ValueError, match="t must be"):
        extended_log_barrier(torch.zeros(1), 0.0)
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        absolute_size_loss(torch.zeros(2, 4, 4), 1.0)


def test_schedule_grows_and_is_capped():
    schedule = BarrierSchedule()
    assert schedule.t == 1.0
    assert schedule.step() == pytest.approx(1.01)
    for _ in range(300):
        schedule.step()
    assert schedule.t == 10.0
    assert schedule.epochs == 301
    # 1.01^n reaches 10 after ceil(log(10) / log(1.01)) = 232 epochs.
    fresh = BarrierSchedule()
    steps = [fresh.step() for _ in range(232)]
    assert steps[-2] < 10.0
    assert steps[-1] == 10.0


def test_schedule_resumes_from_its_state():
    schedule = BarrierSchedule(t0=2.0, factor=1.1, t_max=5.0)
    for _ in range(4):
        schedule.step()
    resumed = BarrierSchedule(t0=2.0, factor=1.1, t_max=5.0)
    resumed.load_state_dict(schedule.state_dict())
    assert (resumed.t, resumed.epochs) == (schedule.t, schedule.epochs)
    assert resumed.step() == schedule.step()


def test_schedule_rejects_mismatched_or_incomplete_state():
    state = BarrierSchedule(factor=1.02).state_dict()
    with pytest.raises(CheckpointError, match="factor"):
        BarrierSchedule().load_state_dict(state)
    with pytest.raises(CheckpointError, match="epochs"):
        BarrierSchedule().load_state_dict({"t0": 1.0, "factor": 1.01, "t_max": 10.0, "t": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"t0": 0.0}, "t0"), ({"factor": 0.9}, "factor"), ({"t0": 5.0, "t_max": 2.0}, "t_max")],
)
def test_schedule_rejects_bad_settings(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        BarrierSchedule(**kwargs)
