"""Refit the weights of a fixed support: the published weights fit the targets, not the selection.

The selection (the L0 gates or an LP vertex) chooses *which* records to keep; the gates'
test-time weights are shrunk by fractional gate values and carry the noise of the last epochs,
a vertex's weights sit at their bounds. Two refits, tried in this order:

* :func:`refit_on_support` — the minimum-distance weights (linear or raking distance from equal
  ratios, :mod:`._newton`) that meet every target exactly within the bounds: the most even
  weights the support allows, when it allows an exact fit at all;
* :func:`polish` / :func:`refit_with_repair` — otherwise, the kept records' ratios
  :math:`x = w/d` refit by L-BFGS-B (scipy) inside the ratio bounds, on the calibration loss
  (plus the closeness term, if any), with records priced into a free budget.

In the least-loss refit the two products are restricted to the support. With the
default (quadratic) losses the problem is convex in :math:`x`, so this reaches the best fit the
support allows; a ratio may reach 0, which drops that record too.

Nested and overlapping targets make the loss badly conditioned. A first pass therefore weights
each target by the inverse squared norm of its scaled row (the Jacobi preconditioner of the
target-space Gram matrix): it reaches the targets that can be met much faster (figures in
``docs/benchmarks.md``), and on a feasible support its solution is also optimal for the true
weights. A second pass on the true loss finishes what the first could not meet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp
import torch

from .._objective import Objective
from .._problem import CalibrationProblem
from ._newton import solve_distance
from ._support import SupportView

__all__ = ["PolishReport", "polish", "minimax_on_support", "refit_on_support",
           "refit_with_repair"]


@dataclass(frozen=True)
class PolishReport:
    iterations: int
    loss_before: float
    loss_after: float
    message: str


def polish(
    problem: CalibrationProblem,
    backend: Any,
    support: np.ndarray,
    start: np.ndarray,
    *,
    closeness: float = 0.0,
    max_iter: int = 3000,
    stop_error: float = 1e-8,
) -> tuple[np.ndarray, PolishReport]:
    """Best ratios ``w/d`` on ``support`` (indices), starting from ``start`` (ratios on support).

    Returns the ratios of all records (zero off the support) and a report. Stops early once every
    scaled residual is within its tolerance band plus ``stop_error``.
    """
    view = SupportView(problem, backend, support)  # every rank: the whole support vector
    if view.size == 0:
        return np.zeros(problem.n_records), PolishReport(0, np.nan, np.nan, "empty support")
    low, high = problem.bounds
    fit = _LeastLoss(view, Objective(problem, "cpu"), closeness)
    x0 = np.clip(view.whole(start), low, high)
    before = fit.value_and_grad(x0)[0]
    # L-BFGS-B starts from an identity Hessian and its tolerances are absolute below f = 1, so
    # both the variables (u = x / x0, all of order 1) and the loss (f / f0) are rescaled.
    unit_x = np.where(x0 > 0, x0, max(float(x0.max()), 1.0))
    bounds = (low / unit_x, high / unit_x)
    norms = view.squared_row_norms(problem.scale, view.design * unit_x)
    coef = np.where(norms > 0, problem.coef / np.where(norms > 0, norms, 1.0), 0.0)
    u = np.ones(len(x0)) if (x0 > 0).all() else x0 / unit_x
    iterations = 0
    if coef.sum() > 0:  # the first pass, on the Jacobi-preconditioned targets
        first = _LeastLoss(view, Objective(replace(problem, coef=coef / coef.sum()), "cpu"),
                           closeness)
        result = first.minimize(u, unit_x, bounds, max_iter, stop_error)
        iterations += int(result.nit)
        u = result.x
    result = fit.minimize(u, unit_x, bounds, max_iter, stop_error)
    iterations += int(result.nit)
    x = np.clip(result.x * unit_x, low, high)
    after = fit.value_and_grad(x)[0]
    return view.ratios(x), PolishReport(iterations, before, after, str(result.message))


class _LeastLoss:
    """The loss (plus the closeness term) of the support vector's ratios and its gradient, and
    its minimisation by L-BFGS-B in rescaled variables."""

    def __init__(self, view: SupportView, objective: Objective, closeness: float) -> None:
        self.view, self.objective, self.closeness = view, objective, closeness
        self.design = view.design
        self.share = self.design / view.total_design

    def estimates(self, x: np.ndarray) -> torch.Tensor:
        return self.view.estimates(self.design * x)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad_est = self.objective(self.estimates(x))
        grad = self.design * self.view.pull(grad_est)
        if self.closeness:
            loss += self.closeness * float(self.share @ (x - 1.0) ** 2)
            grad += 2.0 * self.closeness * self.share * (x - 1.0)
        return loss, grad

    def minimize(self, u: np.ndarray, unit_x: np.ndarray, bounds: tuple[np.ndarray, np.ndarray],
                 max_iter: int, stop_error: float) -> so.OptimizeResult:
        """L-BFGS-B from ``u`` in the variables ``x / unit_x`` and the loss over its value at
        ``u``; stops once every target is within its band plus ``stop_error``."""
        unit_f = self.value_and_grad(u * unit_x)[0] or 1.0

        def scaled(u: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = self.value_and_grad(u * unit_x)
            return value / unit_f, grad * unit_x / unit_f

        def done(intermediate_result: so.OptimizeResult) -> None:
            b = self.objective.band(self.estimates(intermediate_result.x * unit_x)).abs().max()
            if float(b) <= stop_error:
                raise StopIteration

        return so.minimize(
            scaled,
            u,
            jac=True,
            method="L-BFGS-B",
            bounds=so.Bounds(*bounds),
            callback=done,
            options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 0.0, "maxcor": 20},
        )


def minimax_on_support(problem: CalibrationProblem, support: np.ndarray) -> np.ndarray:
    """Ratios on ``support`` (within the bounds) with the smallest largest weighted relative
    error beyond the bands, ``t* = min t`` s.t. ``c_i (|(A x - b)_i| - tau_i) <= t``; among those,
    the smallest weighted sum of errors (a second LP), so that when ``t*`` cannot be improved —
    say a target no kept record reaches — every other target is still fit as well as it can be.
    Both by HiGHS."""
    ratios = np.zeros(problem.n_records)
    if len(support) == 0:
        return ratios
    A, b = problem.scaled()
    weight = problem.coef / problem.coef.max()
    A = sp.csr_array(sp.diags_array(weight) @ A[:, support] @ sp.diags_array(
        problem.design[support]))
    b, tol = weight * b, weight * problem.relative_tolerance()
    q, m = A.shape
    low, high = problem.bounds
    x_bounds = [(low, None if np.isinf(high) else high)] * m
    column = sp.csr_array(-np.ones((q, 1)))
    first = so.linprog(np.r_[np.zeros(m), 1.0],
                       A_ub=sp.csr_array(sp.vstack([sp.hstack([A, column]),
                                                    sp.hstack([-A, column])])),
                       b_ub=np.concatenate([b + tol, tol - b]), bounds=x_bounds + [(0.0, None)],
                       method="highs")
    if first.status != 0 or first.x is None:  # pragma: no cover - the LP is always feasible
        raise RuntimeError(f"the minimax refit failed: {first.message}")
    x = first.x[:-1]
    limit = (float(first.x[-1]) + tol) * (1.0 + 1e-9) + 1e-12
    eye = sp.identity(q, format="csr")
    second = so.linprog(np.r_[np.zeros(m), np.ones(2 * q)],
                        A_eq=sp.csr_array(sp.hstack([A, -eye, eye])), b_eq=b,
                        bounds=x_bounds + [(0.0, u) for u in limit] * 2, method="highs")
    if second.status == 0 and second.x is not None:
        x = second.x[:m]
    ratios[support] = np.clip(x, low, high)
    return ratios


def refit_with_repair(
    problem: CalibrationProblem,
    backend: Any,
    support: np.ndarray,
    start: np.ndarray,
    budget: int,
    *,
    closeness: float = 0.0,
    max_iter: int = 3000,
    rounds: int = 10,
    stop_error: float = 1e-8,
) -> tuple[np.ndarray, PolishReport, int]:
    """Refit ``support``; while targets are missed and records are free, price and add more.

    The gates choose the support by a stochastic objective; at a tight budget the chosen records
    may not be able to meet every target, and the refit then drops some of them (their best
    ratio is 0). Each round spends the free budget (``budget`` minus the records kept) on the
    records outside the support whose weight would lower the loss fastest — the most negative
    entries of :math:`d \\odot M^\\top \\partial L/\\partial\\hat y` (the pricing step of an
    active-set NNLS) — and refits, until every target is met, nothing is free, no record prices
    in, or ``rounds`` are done. Returns the ratios, the last refit's report and the rounds run.
    """
    objective = Objective(problem, "cpu")
    if problem.loss == "max":  # priced by the relative loss, refit to the smallest largest error
        least, report, done = refit_with_repair(
            replace(problem, loss="relative"), backend, support, start, budget,
            closeness=closeness, max_iter=max_iter, rounds=rounds, stop_error=stop_error)
        return minimax_on_support(problem, np.flatnonzero(least)), report, done
    ratios, report = polish(problem, backend, support, start, closeness=closeness,
                            max_iter=max_iter, stop_error=stop_error)
    device = getattr(backend, "device", torch.device("cpu"))
    done = 0
    for done in range(rounds):  # noqa: B007 - the count is reported
        weights = torch.as_tensor(ratios * problem.design, dtype=torch.float64, device=device)
        estimates = problem.shards.comm.sum_tensor(backend.matvec(weights).cpu())[0]
        kept = np.flatnonzero(ratios)
        free = budget - int(problem.total(np.array([float(len(kept))]))[0])
        if float(objective.band(estimates).abs().max()) <= stop_error or free <= 0:
            return ratios, report, done
        _, grad_estimates = objective(estimates)
        price = problem.design * backend.rmatvec(grad_estimates.to(device)).cpu().numpy()
        price[kept] = 0.0
        added = _cheapest(problem, price, free)
        if problem.total(np.array([float(len(added))]))[0] == 0:
            return ratios, report, done
        support = np.union1d(kept, added)
        ratios, report = polish(problem, backend, support, ratios[support], closeness=closeness,
                                max_iter=max_iter, stop_error=stop_error)
    return ratios, report, done + 1


def _cheapest(problem: CalibrationProblem, price: np.ndarray, count: int) -> np.ndarray:
    """The (at most) ``count`` records of most negative price over every rank, ties to the
    lower global index: this rank's among them, sorted."""
    candidates = np.flatnonzero(price < 0)
    return problem.shards.smallest(candidates, price[candidates], count)


def refit_on_support(
    problem: CalibrationProblem,
    support: np.ndarray,
    distance: str = "linear",
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Minimum-distance ratios on ``support`` meeting every target exactly within the bounds.

    The reference weight of a kept record is its design weight times one common level: the
    factor that best scales the support's design weights to the totals (in closed form), or,
    failing that, ``Σd/Σ_S d`` (the weight of a sub-sample; the two agree when the design
    weights are consistent with the totals). Returns the ratios of every record and the
    multipliers, or ``(None, None)`` when the support cannot meet the targets within the bounds.
    """
    if problem.total(np.array([float(len(support))]))[0] == 0:
        return None, None
    b = problem.y / problem.row_scale()
    design = problem.design[support]
    sub = problem.scaled_columns(support)
    scale = problem.common_factor(problem.total(sub @ design))
    if not scale > 0:  # nan or not positive
        all_design, kept_design = problem.total(np.array([problem.design.sum(), design.sum()]))
        scale = all_design / kept_design
    anchor = design * scale
    low, high = problem.bounds
    g_low = np.full(len(support), low / scale)
    g_high = np.full(len(support), high / scale)
    g, lam, report = solve_distance(sub, b, anchor, g_low, g_high, distance,
                                    reduce=problem.total, matrix_free=problem.shards.sharded)
    if not report.converged:
        return None, None
    ratios = np.zeros(problem.n_records)
    ratios[support] = np.clip(g * scale, low, high)
    return ratios, lam
