r"""The L0 gradient engine: Adam on log-weight ratios and gate logits, with analytic gradients.

A record's weight is :math:`w_j = d_j e^{\theta_j} z_j` with design weight :math:`d_j`, log-ratio
:math:`\theta_j` and a Hard Concrete gate :math:`z_j` (logit :math:`\log\alpha_j`). One epoch draws
the gates, forms the estimates :math:`Mw` (one product), takes the loss gradient with respect to
the estimates from :class:`~l0.calibration._objective.Objective`, pulls it back with one
:math:`M^\top` product and applies the chain rule by hand:

.. math::

    \partial L/\partial\theta_j = g_j w_j,\qquad
    \partial L/\partial\log\alpha_j = g_j d_j e^{\theta_j}\,\partial z_j/\partial\log\alpha_j
        + \lambda\, p_j(1 - p_j),

with :math:`g = M^\top \partial L/\partial\hat y` and :math:`p_j = P(z_j \ne 0)`. Everything else
is O(N) vector work in float64. No autograd, so no graph and no float32 COO copy of ``M``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ... import _kernels as K
from ... import functional as F
from .._objective import Objective
from .._problem import CalibrationProblem
from ._adam import Adam

__all__ = ["EngineSettings", "GradientEngine", "DivergenceError"]


class DivergenceError(FloatingPointError):
    """A fit stopped because its loss or parameters stopped being finite."""


@dataclass(frozen=True)
class EngineSettings:
    """Hyper-parameters of the gradient engine (validated by the caller)."""

    lr: float = 0.05
    l0_weight: float = 0.0  # multiplies the expected number of open gates
    l2_weight: float = 0.0  # legacy absolute L2: multiplies sum(w_open^2), w_open = d e^theta
    closeness: float = 0.0  # multiplies sum(d (e^theta - 1)^2) / sum(d)
    temperature: float = 2 / 3
    gamma: float = F.GAMMA
    zeta: float = F.ZETA
    use_gates: bool = True


class GradientEngine:
    """Epochs of stochastic L0 training on one problem; its state can be saved and restored.

    Parameters
    ----------
    problem : CalibrationProblem
    backend : ScipyBackend or TorchBackend
        Provides ``matvec`` and ``rmatvec``.
    theta, log_alpha : Tensor
        Leaf tensors (float64, ``requires_grad=True``) updated in place; the caller owns them.
    generator : torch.Generator or None
        Source of the gate noise (``None``: torch's global generator).
    settings : EngineSettings
    noise : callable or None
        ``noise(epoch)`` → this epoch's uniforms (one per record); replaces ``generator``
        (a sharded problem draws by global record index: :class:`._noise.BlockNoise`).

    ``theta`` and ``log_alpha`` are this rank's records (``problem.shards``; every record in a
    world of one), and an epoch sums the estimates, then (with more than one rank) the expected
    and the open count over the ranks: two reductions, of Q and 2 floats (an evaluation adds
    one of Q + 2). In a world of one the sums are the identity and cost nothing.
    """

    def __init__(
        self,
        problem: CalibrationProblem,
        backend: Any,
        theta: Tensor,
        log_alpha: Tensor,
        generator: torch.Generator | None,
        settings: EngineSettings,
        noise: Any = None,
    ) -> None:
        self.problem = problem
        self.noise = noise
        self.comm = problem.shards.comm
        self._open_after: tuple[int, int] | None = None  # (epoch, open count) of a step
        self.backend = backend
        self.settings = settings
        self.objective = Objective(problem, backend.device)
        self.theta = theta
        self.log_alpha = log_alpha
        self.generator = generator
        device = theta.device
        self.design = torch.tensor(problem.design, dtype=torch.float64, device=device)
        low, high = problem.bounds
        self._theta_bounds = (
            math.log(low) if low > 0 else -math.inf,
            math.log(high) if math.isfinite(high) else math.inf,
        )
        self._theta, self._log_alpha = theta.detach(), log_alpha.detach()  # views, no autograd
        # 2 * closeness * d / sum(d), computed once (only when the penalty is on)
        total_design = float(problem.total(np.array([problem.design.sum()]))[0])
        self._closeness_scale = (2.0 * settings.closeness) * self.design / total_design \
            if settings.closeness else None
        self._unit_design = bool((problem.design == 1.0).all())
        with torch.no_grad():  # the hot loop relies on logits within the bound
            log_alpha.clamp_(-F.LOG_ALPHA_BOUND, F.LOG_ALPHA_BOUND)
        self._bounded = math.isfinite(self._theta_bounds[0]) or math.isfinite(self._theta_bounds[1])
        # the median gate is open above this logit
        self._threshold = F.median_open_threshold(settings.temperature, settings.gamma,
                                                  settings.zeta)
        params = [theta, log_alpha] if settings.use_gates else [theta]
        self.optimizer = Adam(params, settings.lr)
        self.epoch = 0
        self.l0_weight = settings.l0_weight

    # ---------------------------------------------------------------- weights
    def open_weights(self) -> Tensor:
        """:math:`d e^{\\theta}`: the weight each record has when its gate is open."""
        base = torch.exp(self._theta)
        return base if self._unit_design else base.mul_(self.design)

    def deterministic_gates(self) -> Tensor:
        if not self.settings.use_gates:
            return torch.ones_like(self.design)
        s = self.settings
        return F.deterministic_gate(self.log_alpha.detach(), s.temperature, s.gamma, s.zeta)

    def _count_local(self) -> int:
        if not self.settings.use_gates:
            return self.design.numel()
        return int((self.log_alpha.detach() > self._threshold).sum())

    def count_open(self) -> int:
        """Number of gates open at test time (cheap: a threshold on the logits; over every
        rank — with several, the count of the last step comes with its reduction)."""
        if self._open_after is not None and self._open_after[0] == self.epoch:
            return self._open_after[1]
        return int(self.comm.total(self._count_local())[0])

    def expected_open(self) -> Tensor:
        """P(gate open) of this process's records."""
        s = self.settings
        return F.prob_nonzero(self.log_alpha.detach(), s.temperature, s.gamma, s.zeta)

    def _estimates(self, weights: Tensor, *scalars: float) -> tuple[Tensor, list[float]]:
        """``M @ w`` over every record, with scalars summed in the same reduction."""
        return self.comm.sum_tensor(self.backend.matvec(weights), *scalars)

    # ---------------------------------------------------------------- one epoch
    @torch.inference_mode()  # no autograd bookkeeping on any of the epoch's ~30 operations
    def step(self) -> tuple[float, float]:
        """One epoch; returns (data loss, expected number of open gates) before the update.

        Temporaries are updated in place where the math allows: at a million records every
        vector is 8 MB, and the peak memory of an epoch is a handful of them.
        """
        s = self.settings
        log_alpha = self._log_alpha
        base = self.open_weights()
        if s.use_gates:
            # float32 noise: 2^-24 resolution is plenty for a gate, and it is drawn faster
            noise = self.noise(self.epoch) if self.noise is not None else torch.rand(
                base.shape, generator=self.generator, dtype=torch.float32, device=base.device)
            # the logits stay within the bound (projected after every step): no clamp needed
            gate, slope = K.sample_with_gradient(log_alpha, noise, s.temperature, s.gamma,
                                                  s.zeta, clamp=False)
            del noise
            weights = gate.mul_(base)
        else:
            weights = base.clone()
        loss, grad_estimates = self.objective(self._estimates(weights)[0])
        if not math.isfinite(loss):
            raise DivergenceError(
                f"the calibration loss became {loss} at epoch {self.epoch}: the weights overflowed. "
                f"Lower `lr` (now {s.lr}) or use a relative loss; the parameters are those of the "
                "last finite epoch."
            )
        grad_weights = self.backend.rmatvec(grad_estimates)
        grad_theta = weights.mul_(grad_weights)
        del weights
        if s.l2_weight:
            grad_theta.addcmul_(base, base, value=2.0 * s.l2_weight)
        if s.closeness:
            ratio = base / self.design
            grad_theta += self._closeness_scale * (ratio - 1.0) * ratio
            del ratio
        grads = [grad_theta]
        expected = 0.0
        if s.use_gates:
            grad_alpha = slope.mul_(grad_weights).mul_(base)
            del grad_weights, base
            if self.l0_weight:
                p = K.prob_nonzero(log_alpha, s.temperature, s.gamma, s.zeta, clamp=False)
                expected = float(p.sum())
                grad_alpha.add_(torch.addcmul(p, p, p, value=-1.0), alpha=self.l0_weight)
                del p
            grads.append(grad_alpha)
        self.optimizer.step(grads)
        del grads, grad_theta
        if self._bounded:
            self._theta.clamp_(*self._theta_bounds)
        if s.use_gates:
            log_alpha.clamp_(-F.LOG_ALPHA_BOUND, F.LOG_ALPHA_BOUND)
        self.epoch += 1
        if self.comm.world > 1:  # the expected count and the new open count: one reduction
            # (one process counts the open gates only when asked: count_open)
            expected, n_open = self.comm.total(expected, self._count_local())
            self._open_after = (self.epoch, int(n_open))
        return loss, expected

    # ---------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, float]:
        """Loss and errors of the deterministic (test-time) weights, the open and the expected
        number of open gates (one reduction when sharded)."""
        weights = self.open_weights() * self.deterministic_gates()
        estimates, (n_open, expected) = self._estimates(
            weights, float((weights > 0).sum()), float(self.expected_open().sum()))
        errors = np.abs(self.problem.relative_errors(estimates.cpu().numpy()))
        return {
            "deterministic_loss": self.objective.loss(estimates),
            "mean_error": float(errors.mean()),
            "max_error": float(errors.max()),
            "n_open": int(n_open),
            "expected_open": expected,
        }

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "theta": self.theta.detach().clone(),
            "log_alpha": self.log_alpha.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "generator": None if self.generator is None else self.generator.get_state(),
            "epoch": self.epoch,
            "l0_weight": self.l0_weight,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.theta.copy_(state["theta"])
            self.log_alpha.copy_(state["log_alpha"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.l0_weight = float(state["l0_weight"])
