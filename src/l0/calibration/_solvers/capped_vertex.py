r"""The capped LP vertex that fits a record budget.

A vertex of :math:`\{x : Ax = b,\ 0 \le x \le U\}` keeps the records at the cap :math:`U` plus at
most rank(M) in between, so lowering the cap spreads the weight over more records, more evenly
(the schools: :math:`U = 50` → 304 records, :math:`U = 5` → 1,361, all exact). For a budget
:math:`k` the best vertex is the one with the lowest cap that still fits in :math:`k` records.
:class:`CappedVertexSearch` finds it by a search on :math:`\log U` that models the record count
as a power of the cap (interpolating between the solved caps that bracket :math:`k`), and keeps
every vertex it solved, so a frontier over many budgets reuses them (its warm start).
"""

from __future__ import annotations

import math

import numpy as np

from .._problem import CalibrationProblem
from .exact import Vertex, lp_vertex

__all__ = ["CappedVertexSearch"]


class CappedVertexSearch:
    """Capped vertices of one problem, solved on demand and remembered.

    Parameters
    ----------
    problem : CalibrationProblem
    max_solves : int, default 10
        LP solves one :meth:`fit` may spend.
    fill : float, default 0.97
        A vertex with at least ``fill * k`` records ends the search for budget ``k``.
    """

    def __init__(self, problem: CalibrationProblem, *, max_solves: int = 10,
                 fill: float = 0.97, time_limit: float | None = None) -> None:
        self.problem = problem
        self.max_solves = max_solves
        self.fill = fill
        self.time_limit = time_limit
        self.solved: dict[float, Vertex] = {}
        self.seconds = 0.0

    def vertex(self, cap: float) -> Vertex:
        """The vertex with ratios in ``[0, cap]`` (any lower bound is left to the refit)."""
        if cap not in self.solved:
            v = lp_vertex(self.problem, cap, elastic=False, semicontinuous=False,
                          time_limit=self.time_limit)
            self.solved[cap] = v
            self.seconds += v.seconds
        return self.solved[cap]

    def fit(self, k: int) -> Vertex | None:
        """The vertex with the lowest cap found that keeps at most ``k`` records (None when not
        even the loosest cap, the upper bound, fits or is feasible)."""
        high = self.problem.bounds[1]
        loosest = self.vertex(high)
        if loosest.status != "exact" or len(loosest.support) > k:
            return None
        if math.isinf(high):  # the unbounded vertex's largest ratio caps it just as well
            high = float(loosest.ratios.max())
            self.solved.setdefault(high, loosest)
        for _ in range(self.max_solves):
            fits, over = self._bracket(k)
            best = self.solved[fits]
            if len(best.support) >= self.fill * k:
                break
            cap = self._next_cap(fits, over, k)
            if cap is None:
                break
            self.vertex(cap)
        return self.solved[self._bracket(k)[0]]

    # ------------------------------------------------------------------ the search
    def _count(self, cap: float) -> float:
        v = self.solved[cap]
        return len(v.support) if v.status == "exact" else math.inf

    def _bracket(self, k: int) -> tuple[float, float | None]:
        """The lowest solved cap that fits ``k`` and the highest one below it that does not."""
        fitting = [c for c in self.solved if self._count(c) <= k]
        fits = min(fitting)
        over = [c for c in self.solved if c < fits and self._count(c) > k]
        return fits, (max(over) if over else None)

    def _next_cap(self, fits: float, over: float | None, k: int) -> float | None:
        n_fit = self._count(fits)
        if over is None:  # no cap too low yet: records ~ 1 / cap
            cap = fits * n_fit / k * 0.98
        else:
            n_over = self._count(over)
            if not math.isfinite(n_over):  # infeasible below: bisect in log space
                cap = math.sqrt(fits * over)
            else:
                t = (math.log(k) - math.log(n_fit)) / (math.log(n_over) - math.log(n_fit))
                t = min(max(t, 0.1), 0.9)  # keep clear of the bracket's ends
                cap = math.exp(math.log(fits) + t * (math.log(over) - math.log(fits)))
            if fits / over < 1.0 + 1e-3:
                return None
        low = self.problem.bounds[0]
        if cap <= low or not np.isfinite(cap) or cap in self.solved:
            return None
        return cap
