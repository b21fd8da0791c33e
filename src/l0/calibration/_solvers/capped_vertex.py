r"""The capped LP vertices that fit a record budget.

A vertex of :math:`\{x : |Ax - b| \le \tau,\ 0 \le x \le U\}` keeps the records at the cap
:math:`U` plus at most rank(M) in between, so lowering the cap spreads the weight over more
records, more evenly (the schools: :math:`U = 50` → ~305 records, :math:`U = 5` → ~1,360, all
exact). For a budget :math:`k` the best vertices are those with the lowest caps that still fit in
:math:`k` records. :class:`CappedVertexSearch` finds them on one warm HiGHS model
(:class:`._highs.WarmLP`: a new cap re-solves in milliseconds) by a search on :math:`\log U`
that models the record count as a power of the cap between the solved caps that bracket
:math:`k`, then bisects. It keeps every vertex it solved, so a frontier over many budgets
starts each search from the caps already known (its warm start).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .._problem import CalibrationProblem
from ._column_generation import ColumnGenerationLP
from ._highs import WarmLP
from ._progress import Phase
from .exact import Vertex, clean_ratios

__all__ = ["CappedVertexSearch"]


class CappedVertexSearch:
    """Capped vertices of one problem, solved on demand and remembered.

    Parameters
    ----------
    problem : CalibrationProblem
    max_solves : int, default 40
        LP solves one :meth:`fit` may spend.
    time_limit : float, optional
        Seconds HiGHS may spend on each solve.
    columns : bool, default False
        Solve each capped LP by column generation on a working set of records
        (:class:`._column_generation.ColumnGenerationLP`) instead of on the whole matrix: the
        same optimal value, proved by pricing every record, without HiGHS holding every record.
    """

    def __init__(self, problem: CalibrationProblem, *, max_solves: int = 40,
                 time_limit: float | None = None, columns: bool = False) -> None:
        self.problem = problem
        self.max_solves = max_solves
        self.columns = columns
        A, b, tol = problem.ratio_system()
        lp = ColumnGenerationLP if columns else WarmLP
        self._lp = lp(A, b - tol, b + tol, problem.design / problem.design.sum(),
                      time_limit=time_limit)
        self.solved: dict[float, Vertex] = {}
        self.seconds = 0.0

    def vertex(self, cap: float) -> Vertex:
        """The vertex with ratios in ``[0, cap]`` (any lower bound is left to the refit)."""
        if cap not in self.solved:
            start = time.perf_counter()
            optimal, x, message = self._lp.solve(cap)
            seconds = time.perf_counter() - start
            self.seconds += seconds
            q = self.problem.n_targets
            if optimal:
                v = Vertex(clean_ratios(x, 0.0, cap), "exact", np.zeros(q), seconds, message)
            else:
                v = Vertex(np.zeros(self.problem.n_records), "failed", np.full(q, np.inf),
                           seconds, message)
            self.solved[cap] = v
        return self.solved[cap]

    def fit(self, k: int, candidates: int = 1, progress: bool | None = False) -> list[Vertex]:
        """Up to ``candidates`` vertices with at most ``k`` records, the largest first (empty when
        not even the loosest cap, the upper bound, fits or is feasible). ``progress``: a bar
        or log lines per LP solve (see :mod:`._progress`)."""
        phase = Phase(f"capped vertex for {k:,} records", progress, unit="LP")
        high = self.problem.bounds[1]
        loosest = self._solve_shown(high, phase)
        if loosest.status != "exact" or len(loosest.support) > k:
            phase.close("no capped vertex fits")
            return []
        if math.isinf(high):  # the unbounded vertex's largest ratio caps it just as well
            self.solved.setdefault(float(loosest.ratios.max()), loosest)
        for _ in range(self.max_solves):
            fits, over = self._bracket(k)
            if self._count(fits) == k:
                break
            cap = self._next_cap(fits, over, k)
            if cap is None:
                break
            self._solve_shown(cap, phase)
        fits = min(c for c in self.solved if self._count(c) <= k)
        phase.close(f"cap {fits:.4g}, {self._count(fits):,} records, {len(self.solved)} LP solves")
        fitting = sorted((c for c in self.solved if self._count(c) <= k),
                         key=lambda c: (-self._count(c), c))
        unique, seen = [], set()
        for c in fitting:
            key = tuple(self.solved[c].support[:8]) + (self._count(c),)
            if key not in seen:
                seen.add(key)
                unique.append(self.solved[c])
        return unique[:candidates]

    def _solve_shown(self, cap: float, phase: Phase) -> Vertex:
        vertex = self.vertex(cap)
        facts = {"cap": f"{cap:.4g}", "records": f"{self._count(cap):,}"}
        lp = self._lp
        if self.columns:  # the column generation's own work so far
            facts.update(rounds=lp.rounds, columns=f"{len(lp.columns):,}")
        phase.step(**facts)
        return vertex

    def cap_of(self, vertex: Vertex) -> float:
        """The lowest cap at which ``vertex`` was found."""
        return min(c for c, v in self.solved.items() if v is vertex)

    # ------------------------------------------------------------------ the search
    def _count(self, cap: float) -> float:
        v = self.solved[cap]
        return len(v.support) if v.status == "exact" else math.inf

    def _bracket(self, k: int) -> tuple[float, float | None]:
        """The lowest solved cap that fits ``k`` and the highest one below it that does not."""
        fits = min(c for c in self.solved if self._count(c) <= k)
        over = [c for c in self.solved if c < fits and self._count(c) > k]
        return fits, (max(over) if over else None)

    def _next_cap(self, fits: float, over: float | None, k: int) -> float | None:
        n_fit = self._count(fits)
        if over is None:  # no cap too low yet: records ~ 1 / cap
            cap = fits * max(n_fit, 1) / k * 0.9
        else:
            if fits / over < 1.0 + 1e-6:
                return None
            n_over = self._count(over)
            if not math.isfinite(n_over) or n_fit <= 0:  # infeasible below: bisect
                t = 0.5
            else:
                t = (math.log(k) - math.log(n_fit)) / (math.log(n_over) - math.log(n_fit))
                t = min(max(t, 0.2), 0.8)  # keep clear of the bracket's ends
            cap = math.exp(math.log(fits) + t * (math.log(over) - math.log(fits)))
        if not np.isfinite(cap) or cap <= self.problem.bounds[0] or cap in self.solved:
            return None  # a cap below the lower bound leaves no weight the refit may publish
        return cap
