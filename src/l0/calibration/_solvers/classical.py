r"""``method="linear" | "raking" | "logit"``: classical calibration of every record (Deville & Särndal).

The weights :math:`w = d \odot g(M^\top\lambda)` meet the totals exactly, moving the design
weights as little as the distance allows: ``"linear"`` is the GREG estimator's chi-square distance
(:math:`g = 1 + u`; with ``bounds`` the truncated linear method, without them weights may be
negative, as in the textbook), ``"raking"`` the multiplicative one (:math:`g = e^u`, positive;
truncated at ``bounds``), ``"logit"`` keeps :math:`g` strictly inside ``bounds = (L, U)`` with
``L < 1 < U``. Newton's method on the dual (:mod:`._newton`); when it cannot meet the equations,
an LP decides whether any weights within the bounds can (status ``"infeasible"`` if not).
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.optimize as so

from .._problem import CalibrationProblem
from ..options import ClassicalOptions
from ..result import CalibrationResult
from ._newton import solve_distance
from .distances import DISTANCES

__all__ = ["solve_classical"]


def _feasible(problem: CalibrationProblem, low: float, high: float) -> bool:
    """Whether some ratios within ``[low, high]`` meet every target (an LP, HiGHS)."""
    A, b, _ = problem.ratio_system()
    bounds = (None if math.isinf(low) else low, None if math.isinf(high) else high)
    result = so.linprog(np.zeros(problem.n_records), A_eq=A, b_eq=b, bounds=bounds,
                        method="highs")
    return result.status == 0


def solve_classical(problem: CalibrationProblem, options: ClassicalOptions,
                    method: str) -> CalibrationResult:
    """``method="linear" | "raking" | "logit"``: the minimum-distance weights of every record
    that meet the calibration equations, by Newton's method on the dual.

    Parameters
    ----------
    problem : CalibrationProblem
        The whole matrix in one process; no tolerance, loss or loss weights (the method's
        checks refuse them).
    options : ClassicalOptions
    method : {"linear", "raking", "logit"}
        The distance.

    Options
    -------
    max_iter : int
        Newton steps at most.
    tol : float
        Largest relative error of the equations at convergence.

    Returns
    -------
    CalibrationResult
        ``status`` ``"exact"``; ``"not_converged"`` when Newton stopped but an LP finds weights
        within the bounds; ``"infeasible"`` when none exist. ``info``: ``iterations``,
        ``residual``, ``multipliers`` (one per target, in the totals' units).
    """
    start = time.perf_counter()
    low, high = DISTANCES[method].ratio_bounds(problem.bounds, problem.bounds_given)
    A, b = problem.scaled()
    n = problem.n_records
    g, lam, report = solve_distance(A, b, problem.design, np.full(n, low), np.full(n, high),
                                    method, max_iter=options.max_iter, tol=options.tol)
    if report.converged:
        status, message = "exact", f"Newton converged in {report.iterations} steps"
    elif _feasible(problem, low, high):
        status = "not_converged"
        message = (f"Newton stopped after {report.iterations} steps at relative error "
                   f"{report.residual:.3g} ({report.message})")
    else:
        status = "infeasible"
        message = ("no weights with w/d within the bounds meet every target "
                   f"(Newton: {report.message})")
    info = {"iterations": report.iterations, "residual": report.residual,
            "multipliers": lam / np.maximum(np.abs(problem.y), problem.relative_floor)}
    return CalibrationResult.build(
        problem, problem.design * g, method=method, status=status,
        converged=report.converged, message=message, info=info,
        seconds=time.perf_counter() - start,
    )
