import math

import pytest
import torch

from l0 import HardConcrete, SparsityController, TemperatureScheduler
from l0.nn.schedules import anneal


@pytest.mark.parametrize("schedule", ["linear", "exponential", "cosine"])
def test_temperature_schedule_closed_forms(schedule):
    s = TemperatureScheduler(2.0, 0.1, anneal_epochs=10, schedule=schedule)
    closed = {
        "linear": lambda p: 2.0 - 1.9 * p,
        "exponential": lambda p: math.exp(math.log(2.0) + (math.log(0.1) - math.log(2.0)) * p),
        "cosine": lambda p: 0.1 + 1.9 * (1 + math.cos(math.pi * p)) / 2,
    }[schedule]
    for epoch in range(0, 10):
        assert s.get_temperature(epoch) == pytest.approx(closed(epoch / 10), rel=1e-10)
    assert s.get_temperature(10) == 0.1 and s.get_temperature(1000) == 0.1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"schedule": "step"}, "`schedule` must be one of 'linear', 'exponential', 'cosine'; got 'step'."),
        ({"initial_temp": 0}, "`initial_temp` must be a float > 0.0; got 0.0."),
        ({"anneal_epochs": 0}, "`anneal_epochs` must be an int >= 1; got 0."),
    ],
)
def test_scheduler_rejects_bad_arguments_at_construction(kwargs, message):
    with pytest.raises(ValueError) as info:
        TemperatureScheduler(**kwargs)
    assert str(info.value) == message
    with pytest.raises(ValueError, match="`epoch` must be an int >= 0; got -1."):
        TemperatureScheduler().get_temperature(-1)


def test_anneal_clips_progress():
    assert anneal(-1, 1.0, 0.5, "linear") == 1.0 and anneal(2, 1.0, 0.5, "linear") == 0.5


@pytest.mark.parametrize("target", [200, 300, 400])
def test_controller_drives_expected_count_to_target(target):
    gate = HardConcrete(500, init_mean=0.5)
    value = torch.rand(500, generator=torch.Generator().manual_seed(0))
    ctl = SparsityController(target, 500, lr=0.5)
    opt = torch.optim.Adam(gate.parameters(), lr=0.05)
    for _ in range(800):
        expected = gate.get_penalty()
        # a task that wants every gate open (some more than others), fought by the controller
        loss = -(value * gate.get_active_prob()).mean() + ctl.penalty(expected)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(expected)
    assert abs(gate.get_penalty().item() - target) <= 0.02 * target
    assert abs(gate.get_num_active() - target) <= 0.1 * target


@pytest.mark.parametrize("mode", ["equal", "at_most"])
@pytest.mark.parametrize("expected_value", [30.0, 100.0, 340.0])
def test_controller_penalty_value_and_gradient_equal_the_formula_through_autograd(mode, expected_value):
    ctl = SparsityController(100, 1000, lr=0.7, rho=25.0, mode=mode, start=400, ramp=10)
    for count in (500.0, 300.0, 600.0):  # some history: a non-zero multiplier, a ramped target
        ctl.step(count)
    expected = torch.tensor(expected_value, dtype=torch.float64, requires_grad=True)
    ours = ctl.penalty(expected)
    (grad,) = torch.autograd.grad(ours, expected)
    oracle_in = expected.detach().clone().requires_grad_()
    c = (oracle_in - ctl.current_budget) / 1000
    q = c.clamp(min=0.0) if mode == "at_most" else c
    oracle = ctl.multiplier * c + 25.0 * q**2
    (oracle_grad,) = torch.autograd.grad(oracle, oracle_in)
    assert ctl.multiplier != 0 and ctl.current_budget != 100
    torch.testing.assert_close(ours, oracle)
    torch.testing.assert_close(grad, oracle_grad)


def test_at_most_controller_leaves_a_count_below_budget_alone():
    ctl = SparsityController(100, 1000, mode="at_most")
    ctl.step(torch.tensor(50.0))
    assert ctl.multiplier == 0.0
    assert float(ctl.penalty(torch.tensor(50.0))) == 0.0
    ctl.step(200.0)
    assert ctl.multiplier == pytest.approx(0.05 * 0.1)
    assert float(ctl.penalty(torch.tensor(200.0))) == pytest.approx(0.005 * 0.1 + 10 * 0.01)
    other = SparsityController(100, 1000, mode="at_most")
    other.load_state_dict(ctl.state_dict())
    assert other.multiplier == ctl.multiplier


def test_controller_validation():
    with pytest.raises(ValueError, match=r"`budget` must be a float in \[0.0, 10.0\]; got 11.0."):
        SparsityController(11, 10)
    with pytest.raises(ValueError, match="`mode` must be one of 'equal', 'at_most'"):
        SparsityController(1, 10, mode="less")


def test_budget_controller_is_a_multiplicative_pi_law():
    from l0 import BudgetController

    ctl = BudgetController(budget=100, rate=0.1, gain=2.0, initial=1.0)
    ctl.step(100 * math.e)  # excess log(E/t) = 1: I *= e^0.1, lambda = I e^2
    assert ctl.integral == pytest.approx(math.exp(0.1))
    assert ctl.multiplier == pytest.approx(math.exp(0.1) * math.exp(2.0))
    ctl.step(100 / math.e**5)  # a deep undershoot is clipped at -1 and cuts lambda at once
    assert ctl.integral == pytest.approx(1.0)
    assert ctl.multiplier == pytest.approx(math.exp(-2.0))
    other = BudgetController(budget=100)
    other.load_state_dict(ctl.state_dict())
    assert (other.multiplier, other.integral, other.steps) == (ctl.multiplier, ctl.integral, 2)
    ctl = BudgetController(budget=10, rate=1.0, gain=0.0, initial=1e-11, floor=1e-12)
    for _ in range(100):
        ctl.step(0.0)
    assert ctl.multiplier == 1e-12  # the floor keeps the log-scale update alive


def test_budget_controller_drives_open_gates_to_the_budget_across_scales():
    """The same controller settles whatever the scale of the loss fighting it (1e-2 to 1e4)."""
    from l0 import BudgetController

    for scale in (1e-2, 1.0, 1e4):
        gate = HardConcrete(500, init_mean=0.9, temperature=2 / 3)
        value = scale * torch.rand(500, generator=torch.Generator().manual_seed(0))
        ctl = BudgetController(budget=150, rate=0.05, initial=1e-3, start=500, ramp=500)
        opt = torch.optim.Adam(gate.parameters(), lr=0.05)
        for _ in range(1500):
            loss = -(value * gate.get_active_prob()).sum() + ctl.multiplier * gate.get_penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            ctl.step(gate.get_num_active())
        assert abs(gate.get_num_active() - 150) <= 0.1 * 150, scale


def test_budget_controller_validation():
    from l0 import BudgetController

    with pytest.raises(ValueError, match="`budget` must be a float > 0.0; got 0.0"):
        BudgetController(0)
    with pytest.raises(ValueError, match="`initial` must be a float >= 1e-12"):
        BudgetController(5, initial=0.0)


@pytest.mark.parametrize("structure, fraction", [("input", 0.5), ("weight", 0.3)])
def test_sparsity_controller_brings_a_network_to_its_budget_within_two_percent(structure, fraction):
    from sklearn.datasets import load_digits
    from torch import nn

    from l0 import L0Linear, compute_l0_penalty

    torch.manual_seed(0)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16, dtype=torch.float32)
    y = torch.tensor(y)

    def lin(i, o):
        return L0Linear(i, o, structure=structure, init_sparsity=0.1, temperature=2 / 3)

    model = nn.Sequential(lin(64, 100), nn.ReLU(), lin(100, 50), nn.ReLU(), lin(50, 10))
    total = sum(m.weight.numel() for m in model if isinstance(m, L0Linear))
    steps = 2000
    ctl = SparsityController(fraction * total, total, lr=5.0, rho=1000.0, start=total,
                             ramp=steps // 2)
    gates = [p for n, p in model.named_parameters() if "gates" in n]
    weights = [p for n, p in model.named_parameters() if "gates" not in n]
    opt = torch.optim.Adam([{"params": weights}, {"params": gates, "lr": 2e-2}], lr=2e-3)
    batches = torch.randint(0, len(X), (steps, 128), generator=torch.Generator().manual_seed(0))
    for idx in batches:
        expected = compute_l0_penalty(model)
        loss = nn.functional.cross_entropy(model(X[idx]), y[idx]) + ctl.penalty(expected)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(expected.detach())
    target = fraction * total
    assert abs(compute_l0_penalty(model).item() - target) <= 0.02 * target
    active = sum(int((m.weight * m.test_time_masks()[0] != 0).sum()) for m in model
                 if isinstance(m, L0Linear))
    assert abs(active - target) <= 0.03 * target  # whole input units move in blocks
    model.eval()
    assert (model(X).argmax(1) == y).float().mean() > 0.95


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, torch.tensor(float("nan"))])
def test_controllers_refuse_a_count_that_is_not_a_finite_count(bad):
    from l0 import BudgetController, SparsityController

    for controller in (SparsityController(5, 10), BudgetController(5)):
        before = dict(controller.state_dict())
        with pytest.raises(ValueError, match="`expected` must be a finite count >= 0"):
            controller.step(bad)
        assert controller.state_dict() == before  # the multiplier is not poisoned


def test_controller_step_without_a_count_uses_the_count_its_penalty_read():
    with_count = SparsityController(100, 1000, lr=0.5, rho=10.0)
    without = SparsityController(100, 1000, lr=0.5, rho=10.0)
    for value in (700.0, 400.0, 90.0):
        expected = torch.tensor(value, requires_grad=True)
        with_count.penalty(expected)
        with_count.step(expected.detach())
        without.penalty(expected)
        without.step()
        assert without.multiplier == with_count.multiplier
    with pytest.raises(ValueError, match="`expected` must be given: no count was read"):
        without.step()  # the last count was used already


def test_a_controllers_goal_is_its_budget_and_ramps_from_start():
    from l0 import BudgetController

    ctl = SparsityController(budget=10, total=100, start=50, ramp=4)
    assert ctl.budget == 10 and ctl.current_budget == 50
    for _ in range(4):
        ctl.step(50.0)
    assert ctl.current_budget == 10
    assert BudgetController(budget=7).current_budget == 7
