r"""``method="exact"``: a vertex of the calibration polytope, found by HiGHS.

In ratios :math:`x = w/d` the exact problem is the linear program

.. math::  \min \textstyle\sum_j d_j x_j / \sum_j d_j \quad\text{s.t.}\quad
           |(A x - b)_i| \le \tau_i,\; \ell \le x \le u,

with rows scaled to relative errors (``A = diag(1/s) M diag(d)``, ``b = y/s``) and the tolerance
bands :math:`\tau`. A basic solution keeps at most rank(M) records off their bounds (plus the
records at a finite cap), which is why HiGHS's simplex answer is sparse. A lower bound
:math:`\ell > 0` applies to kept records only: each ratio is then *semi-continuous*
(:math:`x = 0` or :math:`\ell \le x \le u`), solved as a mixed-integer program. When no
weights meet every target the elastic program (slack :math:`p - n` on every target, minimum
weighted L1 of the relative errors; with ``loss="max"`` the smallest largest error) gives the
closest weights, with status ``"closest"`` and the targets carrying slack named.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

from .._problem import CalibrationProblem
from ..options import ExactOptions
from ..result import CalibrationResult
from .refit import minimax_on_support, refit_on_support

__all__ = ["Vertex", "clean_ratios", "lp_vertex", "solve_exact", "matrix_rank"]

_RANK_UP_TO = 20_000_000  # entries of the dense matrix for which the rank is computed


@dataclass(frozen=True)
class Vertex:
    """A solution of the (elastic) LP: ratios ``w/d`` of every record and what it cost."""

    ratios: np.ndarray
    status: str  # "exact", "closest" or "failed"
    slack: np.ndarray  # relative error beyond the band of each target (0 when exact)
    seconds: float
    message: str

    @property
    def support(self) -> np.ndarray:
        return np.flatnonzero(self.ratios)


def _highs_options(time_limit: float | None) -> dict:
    options = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    return options


def lp_vertex(
    problem: CalibrationProblem,
    high: float | None = None,
    *,
    elastic: bool = True,
    time_limit: float | None = None,
    semicontinuous: bool = True,
) -> Vertex:
    """The LP vertex for ratio bounds ``(problem.bounds[0], high or problem.bounds[1])``.

    With ``semicontinuous=False`` a positive lower bound is dropped (the ratios run from 0).
    """
    start = time.perf_counter()
    A, b, tol = problem.ratio_system()
    n = problem.n_records
    low = problem.bounds[0]
    high = problem.bounds[1] if high is None else high
    cost = problem.design / problem.design.sum()
    upper = None if math.isinf(high) else high
    if low > 0 and semicontinuous:
        ratios, message = _semicontinuous(A, b, tol, cost, low, high, time_limit)
    else:
        ratios, message = _linear(A, b, tol, cost, upper, time_limit)
    if ratios is not None:
        ratios = clean_ratios(ratios, low if semicontinuous else 0.0, high)
        return Vertex(ratios, "exact", np.zeros(len(b)), time.perf_counter() - start, message)
    if not elastic:
        return Vertex(np.zeros(n), "failed", np.full(len(b), np.inf), time.perf_counter() - start,
                      message)
    q = len(b)
    if problem.loss == "max":  # the closest in the largest relative error
        ratios = minimax_on_support(problem, np.arange(n))
        slack = np.maximum(np.abs(A @ ratios - b) - tol, 0.0)
        slack[slack < 1e-12] = 0.0
        return Vertex(clean_ratios(ratios, 0.0, high), "closest", slack,
                      time.perf_counter() - start,
                      "no weights within the bounds meet every target: the smallest largest error")
    # elastic: A x + p - n within the band, minimise the weighted slack
    eye = sp.identity(q, format="csr")
    big = sp.csr_array(sp.hstack([A, eye, -eye], format="csr"))
    weight = problem.coef / problem.coef.max()
    full_cost = np.concatenate([np.zeros(n), weight, weight])
    bounds = [(0.0, upper)] * n + [(0.0, None)] * (2 * q)
    result = _linprog(full_cost, big, b, tol, bounds, time_limit)
    if result.status != 0 or result.x is None:
        return Vertex(np.zeros(n), "failed", np.full(q, np.inf), time.perf_counter() - start,
                      f"HiGHS: {result.message}")
    ratios = clean_ratios(result.x[:n], 0.0, high)
    slack = result.x[n:n + q] + result.x[n + q:]
    slack[slack < 1e-12] = 0.0
    return Vertex(ratios, "closest", slack, time.perf_counter() - start,
                  "no weights within the bounds meet every target: the closest in weighted L1")


def _linprog(cost, A, b, tol, bounds, time_limit):  # noqa: ANN001, ANN202
    options = _highs_options(time_limit)
    if (tol > 0).any():
        A_ub = sp.csr_array(sp.vstack([A, -A], format="csr"))
        b_ub = np.concatenate([b + tol, tol - b])
        return so.linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs",
                          options=options)
    return so.linprog(cost, A_eq=A, b_eq=b, bounds=bounds, method="highs", options=options)


def _linear(A, b, tol, cost, upper, time_limit):  # noqa: ANN001, ANN202
    result = _linprog(cost, A, b, tol, (0.0, upper), time_limit)
    if result.status == 0 and result.x is not None:
        return result.x, "HiGHS simplex vertex"
    return None, f"HiGHS: {result.message}"


def _semicontinuous(A, b, tol, cost, low, high, time_limit):  # noqa: ANN001, ANN202
    options = {} if time_limit is None else {"time_limit": float(time_limit)}
    # HiGHS needs a finite upper bound on a semi-continuous variable
    upper = high if math.isfinite(high) else max(1e6, 1e3 * low)
    result = so.milp(cost, constraints=so.LinearConstraint(A, b - tol, b + tol),
                     integrality=np.full(A.shape[1], 2), bounds=so.Bounds(low, upper),
                     options=options)
    if result.status == 0 and result.x is not None:
        return result.x, "HiGHS mixed-integer (semi-continuous ratios)"
    return None, f"HiGHS: {result.message}"


def clean_ratios(ratios: np.ndarray, low: float, high: float) -> np.ndarray:
    """Solver round-off off the support set to 0; kept ratios inside their bounds."""
    ratios = np.asarray(ratios, dtype=np.float64).copy()
    floor = max(1e-12, 0.5 * low)
    ratios[ratios < floor] = 0.0
    kept = ratios > 0
    ratios[kept] = np.clip(ratios[kept], low, high)
    return ratios


def matrix_rank(problem: CalibrationProblem) -> int | None:
    """rank(M) when the dense matrix is small enough to factor, else None."""
    q, n = problem.M.shape
    if q * n > _RANK_UP_TO:
        return None
    A, _ = problem.scaled()
    return int(np.linalg.matrix_rank(A.toarray()))


def solve_exact(problem: CalibrationProblem, options: ExactOptions) -> CalibrationResult:
    """``method="exact"``: a vertex of ``{w : M w = y, w/d within bounds}`` by HiGHS, then
    (optionally) the minimum-distance refit of its records.

    Parameters
    ----------
    problem : CalibrationProblem
        The whole matrix in one process.
    options : ExactOptions

    Options
    -------
    refit : bool
        Refit the vertex's records by the linear minimum distance within the bounds.
    time_limit : float or None
        Seconds HiGHS may spend on each solve.

    Returns
    -------
    CalibrationResult
        ``status`` ``"exact"``, or ``"closest"`` (the elastic LP; ``info["slack_targets"]``
        names the targets carrying slack), or ``"failed"``. ``info``: ``rank``,
        ``vertex_records``, ``lp_seconds``, ``refit``.
    """
    start = time.perf_counter()
    vertex = lp_vertex(problem, time_limit=options.time_limit)
    ratios = vertex.ratios
    info: dict = {"rank": matrix_rank(problem), "vertex_records": len(vertex.support),
                  "lp_seconds": vertex.seconds}
    if vertex.status == "exact" and options.refit:
        refit, _ = refit_on_support(problem, vertex.support)
        if refit is not None:
            ratios = refit
        info["refit"] = refit is not None
    if vertex.status == "closest":
        carrying = np.flatnonzero(vertex.slack > 0)
        info["slack_targets"] = [problem.names[i] if problem.names else int(i) for i in carrying]
    return CalibrationResult.build(
        problem, ratios * problem.design, method="exact", status=vertex.status,
        converged=vertex.status == "exact", message=vertex.message, info=info,
        seconds=time.perf_counter() - start,
    )
