r"""The calibration loss and its gradient with respect to the estimates, written once.

For estimates :math:`\hat y = Mw`, each target has a scaled residual
:math:`e_i = (\hat y_i - y_i)/s_i` (``s = max(|y|, floor)`` for relative losses, 1 for the
absolute loss), a tolerance band :math:`b_i = \mathrm{sign}(e_i)\max(|e_i| - \tau_i, 0)` and a
penalty :math:`\phi(b_i)`: :math:`b^2`, or for the ``"capped"`` loss the Huber function that is
:math:`b^2` up to the cap :math:`\kappa` and :math:`\kappa(2|b| - \kappa)` beyond (an impossible
target pulls with a bounded force). The loss is :math:`\sum_i c_i \phi(b_i)`; its gradient
:math:`c_i \phi'(b_i)/s_i` with respect to :math:`\hat y_i` is pulled back to the weights by one
:math:`M^\top` product in the solver. All in float64 tensors, on any device.

The ``"max"`` loss scores a weighting by its largest weighted relative error beyond the bands,
:math:`\max_i c_i |b_i| / \max_i c_i`: :meth:`Objective.loss` returns it, while the gradient
(the gate training, and the pricing of records) is the relative loss's — the largest error is
minimised exactly, as a linear program, by the refit (:func:`.refit.minimax_on_support`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._problem import CalibrationProblem

__all__ = ["Objective"]


class Objective:
    """Loss of the estimates and its gradient for one :class:`CalibrationProblem`."""

    def __init__(self, problem: CalibrationProblem, device: torch.device | str = "cpu") -> None:
        def tensor(array):  # noqa: ANN001, ANN202
            return torch.tensor(array, dtype=torch.float64, device=device)

        self.y = tensor(problem.y)
        self.scale = tensor(problem.scale)
        self.inv_scale = 1.0 / self.scale
        self.coef = tensor(problem.coef)
        self._slope = 2.0 * self.coef * self.inv_scale  # d loss / d estimate = slope * residual
        self.tolerance = tensor(problem.tolerance)
        self.banded = bool((problem.tolerance > 0).any())
        self.cap = problem.cap if problem.loss == "capped" else None
        self.maximum = problem.loss == "max"

    def band(self, estimates: Tensor) -> Tensor:
        """Scaled residuals with the tolerance band removed (zero inside the band)."""
        e = (estimates - self.y).mul_(self.inv_scale)
        if self.banded:
            e = torch.sign(e).mul_((e.abs() - self.tolerance).clamp_(min=0.0))
        return e

    def loss(self, estimates: Tensor) -> float:
        """Value of the loss at ``estimates``."""
        if self.maximum:
            return float((self.coef * self.band(estimates).abs()).max() / self.coef.max())
        return float(torch.dot(self.coef, self._phi(self.band(estimates))))

    def __call__(self, estimates: Tensor) -> tuple[float, Tensor]:
        """Loss and its gradient with respect to the estimates."""
        b = self.band(estimates)
        if self.cap is None:  # the common case in the fewest passes
            value = float(torch.dot(self.coef * b, b))
            return value, b.mul_(self._slope)
        value = float(torch.dot(self.coef, self._phi(b)))
        return value, (2.0 * self.coef) * b.clamp(-self.cap, self.cap) * self.inv_scale

    def _phi(self, b: Tensor) -> Tensor:
        if self.cap is None:
            return b * b
        a = b.abs()
        return torch.where(a <= self.cap, b * b, self.cap * (2.0 * a - self.cap))
