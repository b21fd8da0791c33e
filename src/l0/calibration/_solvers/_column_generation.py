r"""The capped LP on a working set of records: column generation, priced over every record.

``min c·x  s.t.  lo <= A x <= hi,  0 <= x <= U`` with one column per record needs HiGHS to hold
the whole matrix; at millions of records that is most of the time of a calibration. Its vertex
keeps at most rank(A) records strictly between the bounds, so a *restricted master* over a few
times Q records holds it. :class:`ColumnGenerationLP` solves the master (one ``highspy`` model,
warm between rounds and between caps), reads its row duals :math:`\pi` and prices every record
by its reduced cost :math:`c_j - A_j^\top\pi` (one product :math:`A^\top\pi`); the records that
price in (most negative first) join the master, until none does — which proves the master's
vertex optimal for the whole LP.

The master stays feasible through one elastic pair of columns per row (``+e_i`` and ``-e_i``,
cost ``penalty``); a vertex counts only when they are all zero. Where they are not, once no
record prices in, the penalty grows tenfold (the elastic LP is exact once it exceeds the duals
of the original) until its cap: then no weights meet the rows at this cap. Same interface as
:class:`._highs.WarmLP` (``solve(upper) -> (optimal, x, status)``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._highs import quiet_highs

__all__ = ["ColumnGenerationLP"]

_PRICE_TOL = 1e-9  # a reduced cost below -_PRICE_TOL (relative to the costs' scale) prices in
_SLACK_TOL = 1e-9  # elastic columns below this (relative units) count as zero
_PENALTY_CAP = 1e12


class ColumnGenerationLP:
    """The capped LP over every column of ``A``, solved on a growing working set.

    Parameters
    ----------
    A : sparse matrix, shape (rows, columns)
    row_low, row_high : ndarray
    cost : ndarray, shape (columns,)
        Non-negative costs.
    seed : int, default 0
        Seed of the first working set's random records.
    initial : int, optional
        Size of the first working set (default ``4 * rows``).
    batch : int, optional
        Records priced in per round at most (default ``2 * rows``).
    time_limit : float, optional
        Seconds HiGHS may spend on each master solve.
    """

    def __init__(self, A: sp.sparray, row_low: np.ndarray, row_high: np.ndarray,
                 cost: np.ndarray, *, seed: int = 0, initial: int | None = None,
                 batch: int | None = None, time_limit: float | None = None) -> None:
        import highspy

        self._hs = highspy
        self.A = sp.csr_array(A)
        self.AT = sp.csr_array(self.A.T)  # the pricing product A^T pi, one pass over A
        self.q, self.n = self.A.shape
        self.cost = np.asarray(cost, dtype=np.float64)
        self._scale = float(np.max(np.abs(self.cost))) or 1.0
        self.batch = batch or max(2 * self.q, 64)
        self._highs = quiet_highs(time_limit)
        self._penalty = self._first_penalty = 1e3 * self._scale * max(self.n, 1)
        self._start_model(np.asarray(row_low, float), np.asarray(row_high, float))
        self.columns = np.zeros(0, dtype=np.int64)  # the working set, in model order
        self._in = np.zeros(self.n, dtype=bool)
        first = initial or 4 * self.q
        rng = np.random.default_rng(seed)
        self._add(np.sort(rng.choice(self.n, size=min(first, self.n), replace=False)), np.inf)
        self.rounds = 0  # master solves so far
        self.priced = 0  # records priced in so far

    # ------------------------------------------------------------------ the model
    def _start_model(self, low: np.ndarray, high: np.ndarray) -> None:
        """Rows and the elastic pair of each (columns 0 .. 2q-1)."""
        h, q = self._highs, self.q
        inf = self._hs.kHighsInf
        h.addRows(q, low, high, 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        rows = np.arange(q, dtype=np.int32)
        starts = np.arange(q, dtype=np.int32)
        for sign in (1.0, -1.0):
            h.addCols(q, np.full(q, self._penalty), np.zeros(q), np.full(q, inf), q, starts,
                      rows, np.full(q, sign))

    def _add(self, index: np.ndarray, upper: float) -> None:
        """Records ``index`` join the master (non-basic at 0)."""
        index = index[~self._in[index]]
        if len(index) == 0:
            return
        block = self.AT[index]  # rows of Aᵀ = columns of A, already column-wise (no pass over A)
        bound = self._hs.kHighsInf if not np.isfinite(upper) else float(upper)
        self._highs.addCols(len(index), self.cost[index], np.zeros(len(index)),
                            np.full(len(index), bound), block.nnz,
                            block.indptr[:-1].astype(np.int32), block.indices.astype(np.int32),
                            block.data)
        self._in[index] = True
        self.columns = np.concatenate([self.columns, index])

    def _set_upper(self, upper: float) -> None:
        m = len(self.columns)
        bound = self._hs.kHighsInf if not np.isfinite(upper) else float(upper)
        cols = np.arange(2 * self.q, 2 * self.q + m, dtype=np.int32)
        self._highs.changeColsBounds(m, cols, np.zeros(m), np.full(m, bound))

    def _set_penalty(self, penalty: float) -> None:
        self._penalty = penalty
        cols = np.arange(2 * self.q, dtype=np.int32)
        self._highs.changeColsCost(2 * self.q, cols, np.full(2 * self.q, penalty))

    # ------------------------------------------------------------------ solving
    def _master(self) -> tuple[bool, np.ndarray, np.ndarray, float]:
        """Solve the master: (optimal, its x over the working set, row duals, elastic sum)."""
        h = self._highs
        h.run()
        self.rounds += 1
        if h.getModelStatus() != self._hs.HighsModelStatus.kOptimal:
            return False, np.zeros(0), np.zeros(self.q), np.inf
        solution = h.getSolution()
        values = np.asarray(solution.col_value, dtype=np.float64)
        duals = np.asarray(solution.row_dual, dtype=np.float64)
        return True, values[2 * self.q:], duals, float(values[: 2 * self.q].sum())

    def _price(self, duals: np.ndarray) -> np.ndarray:
        """The records outside the working set with a negative reduced cost, most negative
        first, at most ``batch``."""
        reduced = self.cost - self.AT @ duals
        reduced[self._in] = 0.0
        candidates = np.flatnonzero(reduced < -_PRICE_TOL * self._scale)
        if len(candidates) > self.batch:
            order = np.argsort(reduced[candidates], kind="stable")[: self.batch]
            candidates = candidates[order]
        return np.sort(candidates)

    def solve(self, upper: float) -> tuple[bool, np.ndarray, str]:
        """Solve with every record's upper bound at ``upper`` (``inf`` for none).

        Returns (optimal, x over every record, a status line)."""
        self._set_upper(upper)
        if self._penalty != self._first_penalty:  # raised by an earlier cap: start low again
            self._set_penalty(self._first_penalty)
        while True:
            optimal, values, duals, elastic = self._master()
            if not optimal:
                return False, np.zeros(self.n), self._highs.modelStatusToString(
                    self._highs.getModelStatus())
            entering = self._price(duals)
            if len(entering):
                self.priced += len(entering)
                self._add(entering, upper)
                continue
            if elastic <= _SLACK_TOL:
                x = np.zeros(self.n)
                x[self.columns] = values
                return True, x, "Optimal"
            if self._penalty * 10 > _PENALTY_CAP * self._scale * max(self.n, 1):
                return False, np.zeros(self.n), "Infeasible"
            self._set_penalty(self._penalty * 10)
