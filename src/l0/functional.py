r"""The Hard Concrete math, written once (Louizos, Welling & Kingma 2017, arXiv 1712.01312).

A Hard Concrete gate with location :math:`\log\alpha`, temperature :math:`\beta` and stretch
interval :math:`(\gamma, \zeta)`, :math:`\gamma < 0 < 1 < \zeta`, is

.. math::

    u \sim U(0, 1),\quad
    s = \sigma\big((\log u - \log(1-u) + \log\alpha) / \beta\big),\quad
    z = \min(1, \max(0, s(\zeta - \gamma) + \gamma)).

Everything in the package that samples a gate, computes the probability that a gate is open,
or computes a test-time gate calls this module. The uniform noise is an *input*: callers own
their randomness (see :func:`uniform_noise`).

Examples
--------
>>> import torch
>>> from l0 import functional as F
>>> log_alpha = torch.tensor([-3.0, 0.0, 3.0])
>>> F.prob_nonzero(log_alpha, temperature=2 / 3).round(decimals=4)
tensor([0.1976, 0.8318, 0.9900])
>>> F.deterministic_gate(log_alpha, temperature=2 / 3)
tensor([0.0000, 0.5000, 1.0000])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import _kernels as K
from ._kernels import LOG_ALPHA_BOUND
from ._validation import check_choice, check_hard_concrete

__all__ = [
    "GAMMA",
    "ZETA",
    "LOG_ALPHA_BOUND",
    "uniform_noise",
    "sample_hard_concrete",
    "sample_gradient",
    "sample_with_gradient",
    "median_open_threshold",
    "open_threshold",
    "is_open",
    "prob_nonzero",
    "prob_one",
    "hard_concrete_cdf",
    "deterministic_gate",
    "log_alpha_for_prob_nonzero",
]

GAMMA: float = -0.1
"""Default lower end of the stretch interval (the paper's :math:`\\gamma`)."""
ZETA: float = 1.1
"""Default upper end of the stretch interval (the paper's :math:`\\zeta`)."""

TEST_TIME_RULES = ("median", "paper")


def _check_noise(noise: Tensor) -> None:
    if not isinstance(noise, Tensor) or not noise.dtype.is_floating_point:
        got = f"dtype {noise.dtype}" if isinstance(noise, Tensor) else type(noise).__name__
        raise TypeError(f"`noise` must be a floating-point tensor of uniforms in [0, 1]; got {got}.")


def uniform_noise(
    shape: tuple[int, ...] | torch.Size,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Draw ``U(0, 1)`` noise for :func:`sample_hard_concrete` from a given generator.

    Parameters
    ----------
    shape : tuple of int
        Shape of the noise.
    generator : torch.Generator, optional
        Source of randomness; ``None`` uses torch's default generator.
    device, dtype : optional
        Where and in which floating type to draw.

    Returns
    -------
    Tensor
        Uniform noise of the given shape.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> uniform_noise((2,), generator=g).shape
    torch.Size([2])
    """
    return torch.rand(shape, generator=generator, device=device, dtype=dtype)


def sample_hard_concrete(
    log_alpha: Tensor,
    noise: Tensor,
    temperature: float,
    low: float = GAMMA,
    high: float = ZETA,
) -> Tensor:
    """Reparameterised Hard Concrete sample for the given uniform noise.

    Parameters
    ----------
    log_alpha : Tensor
        Gate logits :math:`\\log\\alpha`.
    noise : Tensor
        Uniform noise in ``[0, 1]``, broadcastable with ``log_alpha``. It is clamped to
        ``[eps, 1 - eps]`` (``eps`` the dtype's machine epsilon), exactly as
        :class:`torch.distributions.RelaxedBernoulli` clamps its own noise.
    temperature : float
        :math:`\\beta > 0`.
    low, high : float
        Stretch interval :math:`\\gamma < 0` and :math:`\\zeta > 1`.

    Returns
    -------
    Tensor
        Gates in ``[0, 1]``, exactly 0 or 1 with positive probability; differentiable with respect
        to ``log_alpha``.

    Raises
    ------
    ValueError
        If ``temperature <= 0``, ``low >= 0`` or ``high <= 1``.

    Examples
    --------
    >>> import torch
    >>> sample_hard_concrete(torch.zeros(3), torch.tensor([0.01, 0.5, 0.99]), 0.5)
    tensor([0.0000, 0.5000, 1.0000])
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    _check_noise(noise)
    if torch.is_grad_enabled() and log_alpha.requires_grad and not noise.requires_grad:
        return _SampleHardConcrete.apply(log_alpha, noise, temperature, low, high)
    eps = torch.finfo(noise.dtype).eps
    s = torch.sigmoid((torch.logit(noise, eps=eps) + K.clamp_logits(log_alpha)) / temperature)
    # hardtanh is clamp(0, 1) with a one-kernel backward (zero where the gate is exactly 0 or 1,
    # as sample_gradient); clamp's backward costs four kernels per gate tensor and step
    return torch.nn.functional.hardtanh(s * (high - low) + low, 0.0, 1.0)


def sample_gradient(gate: Tensor, temperature: float, low: float = GAMMA, high: float = ZETA) -> Tensor:
    r"""Derivative of a Hard Concrete sample with respect to its logit, from the sample alone.

    Inside the open interval, :math:`z = s(\zeta-\gamma)+\gamma` with
    :math:`\partial s/\partial\log\alpha = s(1-s)/\beta`, so
    :math:`\partial z/\partial\log\alpha = (z-\gamma)(\zeta-z)/((\zeta-\gamma)\beta)`;
    where the sample is clamped to exactly 0 or 1 the derivative is 0. This is the analytic
    gradient that the calibration engine uses instead of autograd.

    Examples
    --------
    >>> import torch
    >>> la = torch.tensor([0.0, 0.5], requires_grad=True)
    >>> z = sample_hard_concrete(la, torch.tensor([0.5, 0.6]), 0.5)
    >>> z.sum().backward()
    >>> bool(torch.allclose(la.grad, sample_gradient(z.detach(), 0.5)))
    True
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    inside = (gate > 0.0) & (gate < 1.0)
    slope = (gate - low) * (high - gate) / ((high - low) * temperature)
    return torch.where(inside, slope, torch.zeros_like(slope))


def sample_with_gradient(
    log_alpha: Tensor,
    noise: Tensor,
    temperature: float,
    low: float = GAMMA,
    high: float = ZETA,
) -> tuple[Tensor, Tensor]:
    """A Hard Concrete sample and its derivative with respect to the logit, in one pass.

    Equal to ``(sample_hard_concrete(...), sample_gradient(sample, ...))`` but with half the
    passes over memory: the hot loop of the calibration engine calls this once per epoch.

    Examples
    --------
    >>> import torch
    >>> la, u = torch.tensor([0.0, 0.5, -4.0]), torch.tensor([0.5, 0.6, 0.1])
    >>> z, dz = sample_with_gradient(la, u, 0.5)
    >>> bool(torch.equal(z, sample_hard_concrete(la, u, 0.5)))
    True
    >>> bool(torch.allclose(dz, sample_gradient(z, 0.5)))
    True
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    _check_noise(noise)
    return K.sample_with_gradient(log_alpha, noise, temperature, low, high)


class _SampleHardConcrete(torch.autograd.Function):
    """:func:`sample_hard_concrete` with its derivative taken in the forward pass.

    The sample and its slope come from :func:`l0._kernels.sample_with_gradient` (in place,
    fused), so the backward pass is one product plus the logit clamp's mask, instead of
    autograd's replay of eight recorded operations (measured in ``docs/benchmarks.md``, "Figures
    behind the code's defaults"). Values equal the plain operations bit for bit.
    """

    @staticmethod
    def forward(ctx, log_alpha: Tensor, noise: Tensor, temperature: float, low: float,  # type: ignore[override]
                high: float) -> Tensor:
        gate, slope = K.sample_with_gradient(log_alpha, noise, temperature, low, high)
        ctx.save_for_backward(log_alpha, slope)
        return gate

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        log_alpha, slope = ctx.saved_tensors
        grad = grad * slope
        if grad.shape != log_alpha.shape:  # noise broadcast over extra dimensions
            grad = grad.sum_to_size(log_alpha.shape)
        # zero beyond the logit clamp (the clamp's derivative), one fused pass
        grad = K.clamp_gradient(grad, log_alpha)
        return grad, None, None, None, None


def median_open_threshold(temperature: float, low: float = GAMMA, high: float = ZETA) -> float:
    r"""The logit above which the test-time (median) gate is non-zero.

    :math:`\sigma(\log\alpha/\beta)(\zeta-\gamma)+\gamma > 0 \iff
    \log\alpha > \beta\,\mathrm{logit}(-\gamma/(\zeta-\gamma))`: counting open gates is then a
    comparison, with no sigmoid.

    Examples
    --------
    >>> import torch
    >>> t = median_open_threshold(2 / 3)
    >>> la = torch.tensor([t - 1e-6, t + 1e-6])
    >>> (deterministic_gate(la, 2 / 3) > 0).tolist()
    [False, True]
    """
    return open_threshold(temperature, low, high, "median")


def open_threshold(temperature: float, low: float = GAMMA, high: float = ZETA,
                   rule: str = "median") -> float:
    """The logit above which the test-time gate of ``rule`` is non-zero (for ``"paper"`` the
    temperature drops out: the threshold is that of temperature 1).

    Examples
    --------
    >>> round(open_threshold(0.5), 4), round(open_threshold(0.5, rule="paper"), 4)
    (-1.1989, -2.3979)
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    check_choice("rule", rule, TEST_TIME_RULES)
    return _open_threshold(temperature, low, high, rule)


def _open_threshold(temperature: float, low: float, high: float, rule: str) -> float:
    q = -low / (high - low)
    return (temperature if rule == "median" else 1.0) * math.log(q / (1.0 - q))


def is_open(log_alpha: Tensor, temperature: float, low: float = GAMMA, high: float = ZETA,
            rule: str = "median") -> Tensor:
    """**The** definition of an open gate at test time: its test-time gate is non-zero, i.e. its
    (clamped) logit lies above :func:`open_threshold`. Every count of open gates in the package
    uses it, and :func:`deterministic_gate` is exactly 0 wherever it is False.

    For the median rule this is :math:`P(z \ne 0) > 1/2`.

    Examples
    --------
    >>> import torch
    >>> round(open_threshold(2 / 3), 4)
    -1.5986
    >>> is_open(torch.tensor([-2.0, -1.5, 1.0]), 2 / 3).tolist()
    [False, True, True]
    """
    return K.clamp_logits(log_alpha) > open_threshold(temperature, low, high, rule)


def prob_nonzero(
    log_alpha: Tensor, temperature: float, low: float = GAMMA, high: float = ZETA
) -> Tensor:
    """Closed-form probability that a gate is not exactly zero.

    :math:`P(z \\neq 0) = \\sigma(\\log\\alpha - \\beta \\log(-\\gamma / \\zeta))`, the expected
    L0 norm contribution of each gate (eq. 12 of the paper). Differentiable.

    Examples
    --------
    >>> import torch
    >>> round(float(prob_nonzero(torch.tensor(0.0), 0.5)), 6)
    0.768338
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    return K.prob_nonzero(log_alpha, temperature, low, high)


def prob_one(log_alpha: Tensor, temperature: float, low: float = GAMMA, high: float = ZETA) -> Tensor:
    """Closed-form probability that a gate is exactly one.

    :math:`P(z = 1) = \\sigma(\\log\\alpha - \\beta\\,\\mathrm{logit}((1-\\gamma)/(\\zeta-\\gamma)))`.

    Examples
    --------
    >>> import torch
    >>> round(float(prob_one(torch.tensor(0.0), 0.5)), 6)
    0.231662
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    q = (1.0 - low) / (high - low)
    return torch.sigmoid(K.clamp_logits(log_alpha) - temperature * math.log(q / (1.0 - q)))


def hard_concrete_cdf(
    value: Tensor | float,
    log_alpha: Tensor,
    temperature: float,
    low: float = GAMMA,
    high: float = ZETA,
) -> Tensor:
    """Cumulative distribution function :math:`P(z \\le t)` of the Hard Concrete gate.

    For ``0 <= t < 1`` it is :math:`\\sigma(\\beta\\,\\mathrm{logit}((t-\\gamma)/(\\zeta-\\gamma))
    - \\log\\alpha)`; it jumps to 1 at ``t = 1`` (the atom at one) and is 0 below 0.

    Examples
    --------
    >>> import torch
    >>> la = torch.tensor(0.0)
    >>> bool(torch.isclose(hard_concrete_cdf(0.0, la, 0.5), 1 - prob_nonzero(la, 0.5)))
    True
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    log_alpha = K.clamp_logits(log_alpha)
    t = torch.as_tensor(value, dtype=log_alpha.dtype, device=log_alpha.device)
    q = ((t.clamp(0.0, 1.0) - low) / (high - low)).clamp(0.0, 1.0)
    inner = torch.sigmoid(temperature * torch.logit(q) - log_alpha)
    inner = torch.where(t >= 1.0, torch.ones_like(inner), inner)
    return torch.where(t < 0.0, torch.zeros_like(inner), inner)


def deterministic_gate(
    log_alpha: Tensor,
    temperature: float,
    low: float = GAMMA,
    high: float = ZETA,
    rule: str = "median",
) -> Tensor:
    """Test-time gate.

    ``rule="median"`` (default, what l0-python 0.6.x ships) returns
    :math:`\\min(1, \\max(0, \\sigma(\\log\\alpha/\\beta)(\\zeta-\\gamma)+\\gamma))`: the *median* of
    the Hard Concrete gate. It is exactly zero when :math:`P(z = 0) \\ge 1/2` and exactly one when
    :math:`P(z = 1) \\ge 1/2`.

    ``rule="paper"`` returns :math:`\\min(1, \\max(0, \\sigma(\\log\\alpha)(\\zeta-\\gamma)+\\gamma))`,
    eq. 13 of the paper, which ignores the temperature.

    Neither rule is "the" correct one: both are point summaries of the same distribution. The
    median is sharper (more exact zeros and ones at low temperature); the paper's rule keeps more
    fractional gates.

    Raises
    ------
    ValueError
        If ``rule`` is not ``"median"`` or ``"paper"``, or the Hard Concrete parameters are invalid.

    Examples
    --------
    >>> import torch
    >>> deterministic_gate(torch.tensor([1.0]), 0.5, rule="paper")
    tensor([0.7773])
    >>> deterministic_gate(torch.tensor([1.0]), 0.5, rule="median")
    tensor([0.9570])
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    check_choice("rule", rule, TEST_TIME_RULES)
    scale = temperature if rule == "median" else 1.0
    clamped = K.clamp_logits(log_alpha)
    gate = (torch.sigmoid(clamped / scale) * (high - low) + low).clamp(0.0, 1.0)
    # exactly 0 wherever the one open-gate test (is_open) says closed: rounding cannot disagree
    return gate.masked_fill(clamped <= _open_threshold(temperature, low, high, rule), 0.0)


def log_alpha_for_prob_nonzero(
    p: Tensor | float, temperature: float, low: float = GAMMA, high: float = ZETA
) -> Tensor:
    """Inverse of :func:`prob_nonzero`: the logit that gives ``P(z != 0) = p``.

    ``p`` is clamped to ``[1e-6, 1 - 1e-6]`` so that the result is finite.

    Examples
    --------
    >>> import torch
    >>> la = log_alpha_for_prob_nonzero(0.3, 2 / 3)
    >>> round(float(prob_nonzero(la, 2 / 3)), 6)
    0.3
    """
    temperature, low, high = check_hard_concrete(temperature, low, high)
    p = torch.as_tensor(p, dtype=torch.get_default_dtype()).clamp(1e-6, 1 - 1e-6)
    return torch.logit(p) + temperature * math.log(-low / high)
