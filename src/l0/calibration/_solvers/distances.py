r"""The calibration distances, one object each, registered once (R survey's ``cal.linear``,
``cal.raking``, ``cal.logit``).

Minimum-distance calibration (Deville & Särndal, 1992) moves reference weights :math:`a` to
:math:`w = a \odot g(u)`, :math:`u = A^\top\lambda`, where :math:`g` is the distance's weight
ratio function of the dual variable. A distance gives, untruncated:

* :math:`g(u)` — ``linear`` :math:`1 + u` (chi-square, GREG), ``raking`` :math:`e^u`,
  ``logit`` :math:`L + (U - L)\,\sigma(a u + c)` (bounded between ``low`` = L and ``high`` = U
  by construction, :math:`g(0) = 1`);
* its ``slope`` :math:`g'(u)`;
* :math:`\Phi(u) = \int_0^u g` (``phi``, the dual's per-record term).

Bound to per-record bounds ``[low, high]`` on :math:`g` (``DISTANCES[name](low, high)``), it is
truncated there: :math:`u` is clipped to the preimage of the bounds, the slope is 0 outside, and
:math:`\Phi` continues linearly. :meth:`Distance.ratio_bounds` says what bounds a calibration
with this distance uses when the caller gives none. :data:`DISTANCES` is read by the classical
methods (``method=``), the support refit (``refit_distance=``) and :class:`L0Options`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..._validation import fail

__all__ = ["Distance", "Linear", "Raking", "Logit", "DISTANCES", "REFIT_DISTANCES"]

_EXP_MAX = 700.0  # exp() stays finite


class Distance:
    """A distance bound to per-record bounds ``low``/``high`` on ``g`` (``-inf``/``inf`` for
    none). Subclasses give the untruncated ``_g``, ``_slope``, ``_phi`` (:math:`\\Phi(0) = 0`)
    and the preimage ``(u_low, u_high)`` of the bounds."""

    name: ClassVar[str]
    refits: ClassVar[bool] = True  # usable as the refit of a support (any bounds on g)

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        self.low, self.high = low, high
        with np.errstate(divide="ignore"):
            self.u_low, self.u_high = self._u_bounds(low, high)

    @classmethod
    def ratio_bounds(cls, bounds: tuple[float, float], given: bool) -> tuple[float, float]:
        """The bounds on ``g`` of a classical calibration: the caller's, else none (linear)."""
        return bounds if given else (-math.inf, math.inf)

    # the untruncated pieces
    def _u_bounds(self, low: np.ndarray, high: np.ndarray) -> tuple[Any, Any]:
        raise NotImplementedError

    def _g(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _slope(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _phi(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # truncated at the bounds
    def clip(self, u: np.ndarray) -> np.ndarray:
        return np.clip(u, self.u_low, self.u_high)

    def g(self, u: np.ndarray) -> np.ndarray:
        """The weight ratio ``w/a`` at dual value ``u``, within ``[low, high]``."""
        return np.clip(self._g(self.clip(u)), self.low, self.high)

    def slope(self, u: np.ndarray) -> np.ndarray:
        """``g'(u)``: 0 where the bounds hold ``g``."""
        inside = (u > self.u_low) & (u < self.u_high)
        return np.where(inside, self._slope(self.clip(u)), 0.0)

    def phi(self, u: np.ndarray) -> np.ndarray:
        """:math:`\\int_0^u g`: the untruncated integral inside, continued linearly outside."""
        c = self.clip(u)
        out = self._phi(c)
        above, below = u > self.u_high, u < self.u_low
        if above.any():
            out = out + np.where(above, self.high * (u - np.where(above, self.u_high, 0.0)), 0.0)
        if below.any():
            out = out + np.where(below, self.low * (u - np.where(below, self.u_low, 0.0)), 0.0)
        return out


class Linear(Distance):
    """Chi-square distance (GREG): :math:`g = 1 + u`, :math:`\\Phi = u + u^2/2`."""

    name = "linear"

    def _u_bounds(self, low: np.ndarray, high: np.ndarray) -> tuple[Any, Any]:
        return low - 1.0, high - 1.0

    def _g(self, u: np.ndarray) -> np.ndarray:
        return 1.0 + u

    def _slope(self, u: np.ndarray) -> np.ndarray:
        return np.ones_like(u)

    def _phi(self, u: np.ndarray) -> np.ndarray:
        return u + 0.5 * u * u


class Raking(Distance):
    """Multiplicative distance (raking ratio): :math:`g = e^u`, :math:`\\Phi = e^u - 1`;
    positive weights without bounds."""

    name = "raking"

    @classmethod
    def ratio_bounds(cls, bounds: tuple[float, float], given: bool) -> tuple[float, float]:
        return bounds if given else (0.0, math.inf)

    def _u_bounds(self, low: np.ndarray, high: np.ndarray) -> tuple[Any, Any]:
        return np.log(low), np.log(high)

    def _g(self, u: np.ndarray) -> np.ndarray:
        return np.exp(np.minimum(u, _EXP_MAX))

    def _slope(self, u: np.ndarray) -> np.ndarray:
        return np.exp(np.minimum(u, _EXP_MAX))

    def _phi(self, u: np.ndarray) -> np.ndarray:
        return np.expm1(np.minimum(u, _EXP_MAX))


class Logit(Distance):
    """Logit distance: :math:`g = L + (U - L)\\,\\sigma(a u + c)` with
    :math:`a = (U - L)/((1 - L)(U - 1))`, :math:`c = \\log((1 - L)/(U - 1))` (so :math:`g(0) =
    1`, :math:`g'(0) = 1`), strictly within finite bounds ``L < 1 < U``;
    :math:`\\Phi = L u + \\frac{U - L}{a}(\\log(1 + e^{a u + c}) - \\log(1 + e^c))`."""

    name = "logit"
    refits = False  # needs finite bounds around 1: a support's refit has none in general

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__(low, high)
        with np.errstate(divide="ignore"):
            self._a = (high - low) / ((1.0 - low) * (high - 1.0))
            self._c = np.log((1.0 - low) / (high - 1.0))

    @classmethod
    def ratio_bounds(cls, bounds: tuple[float, float], given: bool) -> tuple[float, float]:
        low, high = bounds
        if not (given and math.isfinite(high) and low < 1.0 < high):
            raise fail("bounds", "(low, high) with 0 <= low < 1 < high < inf for method='logit'",
                       bounds if given else None)
        return low, high

    def _u_bounds(self, low: np.ndarray, high: np.ndarray) -> tuple[Any, Any]:
        # g runs from low to high as u runs over the real line
        return np.full_like(low, -np.inf), np.full_like(high, np.inf)

    def _g(self, u: np.ndarray) -> np.ndarray:
        return self.low + (self.high - self.low) * _sigmoid(self._a * u + self._c)

    def _slope(self, u: np.ndarray) -> np.ndarray:
        s = _sigmoid(self._a * u + self._c)
        return (self.high - self.low) * self._a * s * (1.0 - s)

    def _phi(self, u: np.ndarray) -> np.ndarray:
        softplus = np.logaddexp(0.0, self._a * u + self._c) - np.logaddexp(0.0, self._c)
        return self.low * u + (self.high - self.low) / self._a * softplus


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


DISTANCES: dict[str, type[Distance]] = {d.name: d for d in (Linear, Raking, Logit)}
REFIT_DISTANCES = tuple(name for name, d in DISTANCES.items() if d.refits)
