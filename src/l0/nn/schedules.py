"""Schedules of the training step: temperature annealing and a sparsity (budget) controller.

``anneal`` is a pure function of the progress; :class:`TemperatureScheduler` and
:func:`update_temperatures` are the 0.6.x names. :class:`SparsityController` replaces guessing
the L0 strength: it drives the expected number of open gates to a budget with a Lagrange
multiplier (constrained L0, as in structured pruning of language models).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .._validation import check_choice, check_int, check_real, fail
from .gates import HardConcrete

__all__ = [
    "anneal",
    "TemperatureScheduler",
    "update_temperatures",
    "SparsityController",
    "BudgetController",
]

SCHEDULES = ("linear", "exponential", "cosine")


def anneal(progress: float, start: float, end: float, schedule: str = "exponential") -> float:
    """Value at ``progress`` in ``[0, 1]`` (clipped) of a schedule from ``start`` to ``end``.

    Examples
    --------
    >>> anneal(0.5, 1.0, 0.01)
    0.1
    >>> anneal(0.5, 2.0, 0.0, "linear"), anneal(1.0, 2.0, 0.5, "cosine")
    (1.0, 0.5)
    """
    check_choice("schedule", schedule, SCHEDULES)
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "linear":
        value = start + (end - start) * p
    elif schedule == "exponential":
        value = math.exp(math.log(start) + (math.log(end) - math.log(start)) * p)
    else:
        value = end + (start - end) * (1.0 + math.cos(math.pi * p)) / 2.0
    return round(value, 12)


class TemperatureScheduler:
    """Temperature annealed from ``initial_temp`` to ``final_temp`` over ``anneal_epochs``.

    Parameters
    ----------
    initial_temp, final_temp : float, default 2.0, 0.1
        Temperatures (> 0) at epoch 0 and from ``anneal_epochs`` on.
    anneal_epochs : int, default 100
        Length of the annealing (>= 1).
    schedule : {"exponential", "linear", "cosine"}, default "exponential"

    Raises
    ------
    ValueError, TypeError
        On a non-positive temperature or epoch count or an unknown schedule (at construction;
        0.6.x raised only when ``get_temperature`` was first called).

    Examples
    --------
    >>> s = TemperatureScheduler(1.0, 0.1, anneal_epochs=10)
    >>> [round(s.get_temperature(e), 4) for e in (0, 5, 10, 99)]
    [1.0, 0.3162, 0.1, 0.1]
    """

    def __init__(
        self,
        initial_temp: float = 2.0,
        final_temp: float = 0.1,
        anneal_epochs: int = 100,
        schedule: str = "exponential",
    ) -> None:
        self.initial_temp = check_real("initial_temp", initial_temp, low=0.0, low_open=True)
        self.final_temp = check_real("final_temp", final_temp, low=0.0, low_open=True)
        self.anneal_epochs = check_int("anneal_epochs", anneal_epochs, low=1)
        self.schedule = check_choice("schedule", schedule, SCHEDULES)

    def get_temperature(self, epoch: int) -> float:
        """Temperature at ``epoch`` (>= 0)."""
        epoch = check_int("epoch", epoch, low=0)
        return anneal(epoch / self.anneal_epochs, self.initial_temp, self.final_temp,
                      self.schedule)

    def __repr__(self) -> str:
        return (
            f"TemperatureScheduler(initial_temp={self.initial_temp}, final_temp={self.final_temp}, "
            f"anneal_epochs={self.anneal_epochs}, schedule={self.schedule!r})"
        )


def update_temperatures(model: nn.Module, temperature: float) -> int:
    """Set the temperature of every Hard Concrete gate in ``model`` (layers and standalone gates).

    Returns the number of gate modules updated.

    Examples
    --------
    >>> from l0 import L0Linear, SampleGate
    >>> import torch
    >>> model = torch.nn.Sequential(L0Linear(3, 2), L0Linear(2, 1))
    >>> update_temperatures(model, 0.2), model[0].weight_gates.temperature
    (2, 0.2)
    """
    if not isinstance(model, nn.Module):
        raise fail("model", "a torch.nn.Module (wrap a list of modules in nn.ModuleList)", model,
                   TypeError)
    temperature = check_real("temperature", temperature, low=0.0, low_open=True)
    gates = [m for m in model.modules() if isinstance(m, HardConcrete)]
    for gate in gates:
        gate.temperature = temperature
    return len(gates)


class _LagrangianTerm(torch.autograd.Function):
    """:meth:`SparsityController.penalty` as one autograd node: with ``c = (E - t)/n`` the term
    is ``lambda*c + rho*q^2`` (``q = c``, or ``max(c, 0)`` for ``at_most``) and its derivative the
    scalar ``(lambda + 2*rho*q)/n``. The term and its derivative are numbers computed by the
    caller (:func:`_lagrangian`), so the node's forward is one tensor and its backward one
    product: a small network's training step then spends a few microseconds on the controller
    instead of the fifteen scalar tensor operations that recording the formula costs."""

    @staticmethod
    def forward(ctx, expected: Tensor, value: float | Tensor, slope: float | Tensor) -> Tensor:  # type: ignore[override]
        ctx.slope = slope
        if isinstance(value, Tensor):
            return value
        return torch.full((), value, dtype=expected.dtype, device=expected.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        return grad * ctx.slope, None, None


def _lagrangian(expected: Tensor, budget: float, total: float, multiplier: float, rho: float,
                at_most: bool, read: bool | None = None) -> tuple[Tensor, float | None]:
    """The augmented-Lagrangian term of :class:`SparsityController` for the count ``expected``
    (a 0-d tensor), and the count read: with ``read`` (default: on the CPU) in float64 numbers
    from one read of the count, else in tensor operations (no device synchronisation in the
    forward pass; no count read)."""
    if expected.device.type == "cpu" if read is None else read:
        count = _check_count("expected", expected)  # read anyway: a NaN count stops here
        c = (count - budget) / total
        q = max(c, 0.0) if at_most else c
        return _LagrangianTerm.apply(expected, c * multiplier + q * q * rho,
                                     (2.0 * rho * q + multiplier) / total), count
    with torch.no_grad():
        c = (expected.detach() - budget) / total
        q = c.clamp(min=0.0) if at_most else c
        value, slope = c * multiplier + q * q * rho, (q * (2.0 * rho) + multiplier) / total
    return _LagrangianTerm.apply(expected, value, slope), None


class SparsityController:
    """Lagrange multipliers that drive an expected L0 count to a budget.

    Add :meth:`penalty` of the expected count to the loss that the model minimises and call
    :meth:`step` after each optimiser step: the multipliers rise while the count is above the
    budget (and, with ``mode="equal"``, fall while it is below), so the count settles at the
    budget without a hand-tuned L0 strength. The constraint is scaled by ``total`` so that ``lr``
    needs no tuning with the problem size.

    The penalty is the augmented Lagrangian :math:`\\lambda c + \\rho c^2` with
    :math:`c = (E - t)/n`: the multiplier :math:`\\lambda` integrates the violation (gradient ascent
    with step ``lr``) and the fixed quadratic term damps the oscillation that a bare multiplier
    shows. With ``mode="at_most"``, :math:`\\lambda \\ge 0` and only :math:`\\max(c, 0)^2` is
    squared.

    Parameters
    ----------
    budget : float
        Budget :math:`t` (number of open gates or parameters), ``0 <= budget <= total``.
    total : float
        Number of gates or parameters in all (the scale :math:`n`).
    lr : float, default 0.05
        Step size of the multiplier's gradient ascent.
    rho : float, default 10.0
        Weight of the quadratic (damping) term.
    mode : {"equal", "at_most"}, default "equal"
    start : float, optional
        Budget at step 0; with ``ramp`` the budget falls *linearly* from ``start`` to ``budget``
        over the first ``ramp`` calls of :meth:`step` (default: ``budget`` from the start).
    ramp : int, default 0

    Notes
    -----
    On networks trained by Adam, ramp the budget down over about half the steps and damp
    strongly (``rho=1000``, ``lr=5``): a plain step to the budget overshoots, because gates that
    closed reopen slowly. How close the count ends (the test asks 2 %) is measured in
    ``docs/benchmarks.md`` ("Figures behind the code's defaults").

    Examples
    --------
    >>> import torch
    >>> ctl = SparsityController(budget=10, total=100)
    >>> ctl.step(torch.tensor(60.0)); ctl.multiplier
    0.025
    >>> ramped = SparsityController(budget=10, total=100, start=100, ramp=2)
    >>> ramped.current_budget, ramped.step(100.0), ramped.current_budget
    (100.0, None, 55.0)
    """

    def __init__(
        self,
        budget: float,
        total: float,
        lr: float = 0.05,
        rho: float = 10.0,
        mode: str = "equal",
        start: float | None = None,
        ramp: int = 0,
    ) -> None:
        self.total = check_real("total", total, low=0.0, low_open=True)
        self.budget = check_real("budget", budget, low=0.0, high=self.total)
        self.lr = check_real("lr", lr, low=0.0, low_open=True)
        self.rho = check_real("rho", rho, low=0.0)
        self.mode = check_choice("mode", mode, ("equal", "at_most"))
        self.start = self.budget if start is None else check_real("start", start, low=0.0,
                                                                  high=self.total)
        self.ramp = check_int("ramp", ramp, low=0)
        self.steps = 0
        self._multiplier = 0.0
        self._last_count: float | None = None

    @property
    def current_budget(self) -> float:
        """The budget at the current step (``budget`` once the ramp is over)."""
        if self.steps >= self.ramp:
            return self.budget
        return self.start + (self.budget - self.start) * self.steps / self.ramp

    @property
    def multiplier(self) -> float:
        """The current Lagrange multiplier :math:`\\lambda`."""
        return round(self._multiplier, 12)

    def violation(self, expected: Tensor | float) -> Tensor:
        """Scaled constraint :math:`c = (E - t)/n`."""
        return (torch.as_tensor(expected) - self.current_budget) / self.total

    def penalty(self, expected: Tensor) -> Tensor:
        """Differentiable Lagrangian term to add to the loss:
        :math:`\\lambda c + \\rho c^2` (``at_most``: :math:`\\rho \\max(c, 0)^2`)."""
        if not (isinstance(expected, Tensor) and expected.dim() == 0):
            expected = torch.as_tensor(expected)
            if expected.numel() != 1:
                raise ValueError(f"`expected` must be one number (a count of open gates); got a "
                                 f"tensor of shape {tuple(expected.shape)}.")
            expected = expected.reshape(())
        term, self._last_count = _lagrangian(expected, self.current_budget, self.total, self._multiplier,
                                             self.rho, self.mode == "at_most")
        return term

    def step(self, expected: Tensor | float | None = None) -> None:
        """One ascent step of the multiplier for the current expected count (``None``: the count
        given to the last :meth:`penalty`, read then — no second read of the tensor)."""
        if expected is None:
            if self._last_count is None:
                raise ValueError("`expected` must be given: no count was read by penalty() (of a "
                                 "CPU tensor) since the last step.")
            count, self._last_count = self._last_count, None
        else:
            count = _check_count("expected", expected)
        c = (count - self.current_budget) / self.total
        self._multiplier += self.lr * c
        if self.mode == "at_most":
            self._multiplier = max(self._multiplier, 0.0)
        self.steps += 1

    def state_dict(self) -> dict[str, float]:
        return {"multiplier": self._multiplier, "steps": self.steps}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self._multiplier = float(state["multiplier"])
        self.steps = int(state.get("steps", 0))
        self._last_count = None


def _check_count(name: str, value: Any) -> float:
    """A count of open gates must be a finite number >= 0 (a NaN would poison the multiplier);
    returns it as a float."""
    if type(value) is int and value >= 0:  # the calibration loop's count, every epoch: no tensor
        return float(value)
    try:
        number = value.item() if isinstance(value, Tensor) else float(
            torch.as_tensor(value).reshape(()))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"`{name}` must be a number (a count of open gates); got {value!r}.") from exc
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"`{name}` must be a finite count >= 0; got {number}.")
    return number


class BudgetController:
    r"""A multiplicative PI Lagrange multiplier that drives a count of open gates to a budget.

    The L0 strength :math:`\lambda` that yields a given number of open gates is unknown and can
    lie anywhere over many orders of magnitude (it depends on the scale of the data loss). This
    controller adapts it on a log scale. With the excess
    :math:`x = \mathrm{clip}(\log(E/t), -1, 1)` of the count :math:`E` over the budget :math:`t`,
    an integral term :math:`I \leftarrow I e^{\eta x}` crosses a decade in about
    :math:`2.3/\eta` steps whatever the scale, and the proportional factor in
    :math:`\lambda = I e^{k x}` cuts the multiplier at once when the count falls below the
    budget. The cut matters: a gate that has closed gets little gradient and is slow to reopen,
    so an overshoot lasts and the controller must not wind up.

    With ``start`` and ``ramp``, the budget itself falls geometrically from ``start`` to the
    budget over the first ``ramp`` steps: a budget that moves gradually is tracked without the
    overshoot that a sudden one causes. Used by the calibration engine (``max_records``); works
    for any count of gates (call :meth:`step` once per optimiser step with the current count and
    use :attr:`multiplier` as the L0 strength).

    Parameters
    ----------
    budget : float
        The budget (> 0).
    rate : float, default 0.02
        :math:`\eta`, log-step of the integral term per call at an excess of a factor ``e``.
    gain : float, default 20
        :math:`k`, proportional gain on the log excess.
    initial : float, default 1e-3
        Starting multiplier (> 0).
    floor : float, default 1e-12
        Smallest multiplier (keeps the log-scale update alive).
    start : float, optional
        Budget at step 0 (e.g. the number of gates); default: the budget from the start.
    ramp : int, default 0
        Steps over which the budget falls from ``start`` to the budget.

    Examples
    --------
    >>> ctl = BudgetController(budget=10, rate=0.1, gain=0.0, initial=1.0)
    >>> _ = ctl.step(10 * math.e); round(ctl.multiplier, 4)
    1.1052
    >>> _ = ctl.step(10 / math.e); round(ctl.multiplier, 4)
    1.0
    >>> ramped = BudgetController(budget=10, start=1000, ramp=2)
    >>> [ramped.current_budget, ramped.step(1000) > 0, ramped.current_budget,
    ...  ramped.step(100) > 0, ramped.current_budget]
    [1000.0, True, 100.0, True, 10.0]
    """

    def __init__(
        self,
        budget: float,
        rate: float = 0.02,
        gain: float = 20.0,
        initial: float = 1e-3,
        floor: float = 1e-12,
        start: float | None = None,
        ramp: int = 0,
    ) -> None:
        self.budget = check_real("budget", budget, low=0.0, low_open=True)
        self.rate = check_real("rate", rate, low=0.0, low_open=True)
        self.floor = check_real("floor", floor, low=0.0, low_open=True)
        self.gain = check_real("gain", gain, low=0.0)
        self.integral = check_real("initial", initial, low=self.floor)
        self.start = self.budget if start is None else check_real("start", start, low=0.0,
                                                                  low_open=True)
        self.ramp = check_int("ramp", ramp, low=0)
        self.multiplier = self.integral
        self.steps = 0

    @property
    def current_budget(self) -> float:
        """The budget at the current step (``budget`` once the ramp is over)."""
        if self.steps >= self.ramp:
            return self.budget
        return self.start * (self.budget / self.start) ** (self.steps / self.ramp)

    def violation(self, expected: float) -> float:
        """Log-ratio excess :math:`\\log(E/t)`, clipped to ``[-1, 1]``."""
        return min(1.0, max(-1.0, math.log(max(float(expected), 1e-12) / self.current_budget)))

    def step(self, expected: Tensor | float) -> float:
        """Update the multiplier for the current count, advance the ramp; return the multiplier."""
        excess = self.violation(_check_count("expected", expected))
        self.integral = max(self.floor, self.integral * math.exp(self.rate * excess))
        self.multiplier = max(self.floor, self.integral * math.exp(self.gain * excess))
        self.steps += 1
        return self.multiplier

    def state_dict(self) -> dict[str, float]:
        return {"multiplier": self.multiplier, "integral": self.integral, "steps": self.steps}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.multiplier = float(state["multiplier"])
        self.integral = float(state["integral"])
        self.steps = int(state.get("steps", 0))
