"""One HiGHS model kept alive between solves, so that changing the column bounds re-solves warm.

``scipy.optimize.linprog`` builds and solves a model from scratch each call; the search for the
cap that fits a budget solves the *same* LP with other upper bounds a dozen times. ``highspy``
keeps the model and its basis: after the first solve a new cap costs a few dual-simplex
iterations (figures in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["WarmLP", "quiet_highs", "silent_stdout"]

_BANNER_SHOWN = False


@contextlib.contextmanager
def silent_stdout():  # noqa: ANN202
    """HiGHS prints a copyright banner from C++ on its first construction in a process."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        yield
        return
    _BANNER_SHOWN = True
    try:
        fd = os.dup(1)
    except OSError:  # pragma: no cover - no real stdout
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)


def quiet_highs(time_limit: float | None = None) -> Any:
    """A silent ``highspy.Highs`` with the tight feasibility tolerances every LP here uses."""
    import highspy

    with silent_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("primal_feasibility_tolerance", 1e-10)
    h.setOptionValue("dual_feasibility_tolerance", 1e-10)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    return h


class WarmLP:
    """``min cost·x  s.t.  row_low <= A x <= row_high,  0 <= x <= upper`` with a warm basis.

    Parameters
    ----------
    A : sparse matrix, shape (rows, columns)
    row_low, row_high : ndarray
    cost : ndarray
    time_limit : float, optional
        Seconds per solve.
    """

    def __init__(self, A: sp.sparray, row_low: np.ndarray, row_high: np.ndarray,
                 cost: np.ndarray, time_limit: float | None = None) -> None:
        import highspy

        self._highs = h = quiet_highs(time_limit)
        A = sp.csc_array(A)
        self.n = A.shape[1]
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
        lp.col_cost_ = np.asarray(cost, dtype=np.float64)
        lp.col_lower_ = np.zeros(self.n)
        lp.col_upper_ = np.full(self.n, highspy.kHighsInf)
        lp.row_lower_ = np.asarray(row_low, dtype=np.float64)
        lp.row_upper_ = np.asarray(row_high, dtype=np.float64)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = A.indptr.astype(np.int32)
        lp.a_matrix_.index_ = A.indices.astype(np.int32)
        lp.a_matrix_.value_ = A.data
        h.passModel(lp)
        self._inf = highspy.kHighsInf
        self._optimal = highspy.HighsModelStatus.kOptimal
        self._columns = np.arange(self.n, dtype=np.int32)

    def solve(self, upper: float) -> tuple[bool, np.ndarray, str]:
        """Solve with every column's upper bound at ``upper`` (``inf`` for none).

        Returns (optimal, x, HiGHS's model status).
        """
        h = self._highs
        bound = self._inf if not np.isfinite(upper) else float(upper)
        h.changeColsBounds(self.n, self._columns, np.zeros(self.n), np.full(self.n, bound))
        h.run()
        status = h.getModelStatus()
        x = np.asarray(h.getSolution().col_value, dtype=np.float64)
        return status == self._optimal, x, h.modelStatusToString(status)
