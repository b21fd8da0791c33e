r"""Minimum-distance calibration by Newton's method on the dual (Deville & Särndal, 1992).

The weights of records with reference weights :math:`a` are :math:`w = a \odot g(A^\top\lambda)`,
where :math:`g` is the calibration function of a distance of :mod:`.distances` — ``"linear"``
(chi-square, GREG: :math:`g = 1 + u`), ``"raking"`` (:math:`g = e^u`) or ``"logit"`` (bounded
between ``low`` and ``high``) — truncated to per-record bounds ``[low, high]`` on :math:`g`.
The multipliers :math:`\lambda` solve the calibration equations :math:`A w = b`. They maximise
the concave dual

.. math::  D(\lambda) = b^\top\lambda - \sum_j a_j \Phi_j\big((A^\top\lambda)_j\big),
           \qquad \Phi_j' = g_j,

whose gradient is the residual :math:`b - Aw` and whose (generalised) Hessian is
:math:`-A\,\mathrm{diag}(a\,g')\,A^\top`. Each Newton step solves that target-space system (dense
up to a few thousand targets, sparse beyond) and a backtracking line search on :math:`D` keeps it
globally convergent, truncation included (the truncated problem is the bounded quadratic or
entropy program of the distance). Rows of ``A`` are expected scaled (residuals in relative
units), so the stopping tolerance is a relative error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from .distances import DISTANCES

__all__ = ["NewtonReport", "solve_distance"]

_DENSE_UP_TO = 3000  # targets: above this the Newton system is solved as a sparse matrix


@dataclass(frozen=True)
class NewtonReport:
    converged: bool
    iterations: int
    residual: float  # largest |A w - b| (a relative error for scaled rows)
    message: str


def _newton_step(A: sp.csr_array, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Solve ``A diag(v) Aᵀ x = r`` (least squares when the system is singular)."""
    H = (A @ sp.diags_array(v) @ A.T).tocsr()
    if A.shape[0] <= _DENSE_UP_TO:
        H = H.toarray()
        try:
            factor = sl.cho_factor(H, check_finite=False)
            step = sl.cho_solve(factor, r, check_finite=False)
            if np.isfinite(step).all() and np.abs(H @ step - r).max() <= 1e-8 * (np.abs(r).max()):
                return step
        except (sl.LinAlgError, ValueError):
            pass
        return sl.lstsq(H, r, cond=1e-13, lapack_driver="gelsy", check_finite=False)[0]
    diag = H.diagonal()
    ridge = 1e-12 * max(float(diag.max()), 1e-300)
    H = H + sp.diags_array(np.full(H.shape[0], ridge))
    return spl.spsolve(H.tocsc(), r)


def _cg_step(A: sp.csr_array, At: sp.csr_array, v: np.ndarray, r: np.ndarray,
             reduce: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Solve ``(Σ_ranks A diag(v) Aᵀ) x = r`` matrix-free: Jacobi-preconditioned conjugate
    gradients, one target-length reduction per iteration (``A`` is this rank's columns; no Q × Q
    matrix is formed). Rows the support does not touch (zero diagonal) are left out. Returns the
    iterate of smallest residual: near the solution rounding makes later iterates wander."""
    diag = reduce(A.power(2) @ v)
    inverse = np.divide(1.0, diag, out=np.zeros_like(diag), where=diag > 0)
    x = np.zeros_like(r)
    residual = np.where(diag > 0, r, 0.0)
    norm = float(np.linalg.norm(residual))
    target = 1e-11 * norm
    best, best_norm, since_best = x.copy(), norm, 0
    z = inverse * residual
    p, rz = z.copy(), float(residual @ z)
    for _ in range(min(max(50, 2 * len(r)), 2000)):
        Hp = reduce(A @ (v * (At @ p)))
        curvature = float(p @ Hp)
        if not curvature > 0:
            break
        alpha = rz / curvature
        x += alpha * p
        residual -= alpha * Hp
        norm = float(np.linalg.norm(residual))
        if norm < best_norm:
            best, best_norm, since_best = x.copy(), norm, 0
        else:
            since_best += 1
        if norm <= target or since_best >= 25:
            break
        z = inverse * residual
        rz, previous = float(residual @ z), rz
        p = z + (rz / previous) * p
    return best


def _same(values: np.ndarray) -> np.ndarray:
    """The sum over one process: the values themselves."""
    return values


def _smaller(A: sp.csr_array, b: np.ndarray, w: np.ndarray, residual: float,
             total: Callable[[np.ndarray], np.ndarray]) -> bool:
    trial = np.abs(b - total(A @ w)).max()
    return bool(np.isfinite(trial) and trial <= 0.5 * residual)


def solve_distance(
    A: sp.csr_array,
    b: np.ndarray,
    anchor: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    kind: str = "linear",
    *,
    max_iter: int = 100,
    tol: float = 1e-12,
    reduce: Callable[[np.ndarray], np.ndarray] = _same,
    matrix_free: bool = False,
) -> tuple[np.ndarray, np.ndarray, NewtonReport]:
    """The calibrated ``g`` (``w = anchor * g``), the multipliers and a report.

    ``A`` is targets × records (rows scaled), ``anchor`` > 0 the reference weight of each record,
    ``low``/``high`` per-record bounds on ``g``, ``kind`` a name in the distance registry
    (:data:`.distances.DISTANCES`). Stops when ``max |A w - b| <= tol``, when the line search
    cannot raise the dual any more, or after ``max_iter`` steps.

    ``reduce``: the sum over the ranks of a target-length vector when the records are sharded
    over processes (``A`` and ``anchor`` are then this rank's columns); the identity in one
    process. ``matrix_free``: solve the Newton systems by conjugate gradients, one reduction per
    iteration, instead of forming them (how sharded records are refit: every rank takes the same
    steps, however the records are split).
    """
    distance = DISTANCES[kind](low, high)
    At = sp.csr_array(A.T)
    lam = np.zeros(A.shape[0])
    u = np.zeros(A.shape[1])
    total = reduce

    def dual(lam: np.ndarray, u: np.ndarray) -> float:
        return float(b @ lam - total(np.array([anchor @ distance.phi(u)]))[0])

    message = f"reached max_iter={max_iter}"
    with np.errstate(over="ignore", invalid="ignore"):
        for iteration in range(max_iter + 1):
            g = distance.g(u)
            r = b - total(A @ (anchor * g))
            residual = float(np.abs(r).max()) if len(r) else 0.0
            if not np.isfinite(residual):
                message = "the multipliers overflowed: the equations have no solution"
                break
            if residual <= tol:
                return g, lam, NewtonReport(True, iteration, residual, "converged")
            if iteration == max_iter:
                break
            slope = anchor * distance.slope(u)
            step = _cg_step(A, At, slope, r, total) if matrix_free else _newton_step(A, slope, r)
            ascent = float(r @ step)
            if not (np.isfinite(ascent) and ascent > 0):
                message = "no ascent direction: the equations have no solution within the bounds"
                break
            start, t = dual(lam, u), 1.0
            while t >= 1e-12:
                trial = lam + t * step
                u_trial = At @ trial
                value = dual(trial, u_trial)
                if np.isfinite(value) and value >= start + 1e-4 * t * ascent:
                    break
                if t == 1.0 and _smaller(A, b, anchor * distance.g(u_trial), residual, total):
                    break  # near the solution rounding hides the dual's rise; the residual shows it
                t *= 0.5
            else:
                message = f"line search stalled at residual {residual:.3g}"
                break
            lam, u = trial, u_trial
    g = distance.g(u)
    residual = float(np.abs(b - total(A @ (anchor * g))).max()) if len(b) else 0.0
    return g, lam, NewtonReport(residual <= tol, iteration, residual, message)
