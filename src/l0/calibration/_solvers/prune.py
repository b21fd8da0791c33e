r"""From the LP vertex down to a budget smaller than any exact support: backward elimination.

Below the size of the smallest exact support some targets must be missed. Starting from the
vertex (exact, at most rank(M) records, or the capped vertex within the bounds), the records that
contribute least — the smallest :math:`w_j\,\lVert A_{\cdot j}\rVert` in relative units — are
dropped a fraction ``step`` at a time and the rest refit on the calibration loss within the
bounds (:func:`.refit.polish`), until the budget is met (the caller tries a few steps: the
descent is greedy). Each refit starts from the previous weights, so
the whole descent costs a few refits of a few hundred records.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._problem import CalibrationProblem
from .exact import Vertex
from .refit import polish

__all__ = ["prune_to_budget"]


def prune_to_budget(
    problem: CalibrationProblem,
    backend: Any,
    vertex: Vertex,
    budget: int,
    *,
    closeness: float = 0.0,
    max_iter: int = 3000,
    step: float = 0.1,
) -> np.ndarray:
    """Ratios ``w/d`` of at most ``budget`` records, descended from ``vertex``."""
    A, _ = problem.scaled()
    column_norm = np.sqrt(np.asarray(A.multiply(A).sum(axis=0)).ravel())
    support = vertex.support
    x = vertex.ratios[support]
    low = problem.bounds[0]
    while len(support) > budget:
        drop = max(1, min(len(support) - budget, int(step * len(support))))
        contribution = problem.design[support] * x * column_norm[support]
        keep = np.sort(np.argsort(-contribution, kind="stable")[:len(support) - drop])
        support, x = support[keep], np.maximum(x[keep], low)
        ratios, _ = polish(problem, backend, support, x, closeness=closeness, max_iter=max_iter)
        x = ratios[support]
        alive = x > 0
        support, x = support[alive], x[alive]
    ratios = np.zeros(problem.n_records)
    ratios[support] = x
    return ratios
