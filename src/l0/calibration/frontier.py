"""``frontier()``: the records-against-quality trade-off over many budgets, in one table.

Like scikit-learn's ``enet_path`` beside ``ElasticNet``: one call solves a calibration per
budget, warm-started — every capped LP vertex solved for one budget is remembered and brackets
the search of the next — and returns a pandas DataFrame with one row per budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .._validation import check_int, fail
from ._solvers.capped_vertex import CappedVertexSearch
from ._solvers.l0 import VERTEX_UP_TO_NNZ, solve_l0
from ._solvers.methods import METHOD_TABLE
from ._spec import ProblemSpec
from .options import options_for
from .shards import ColumnShards

__all__ = ["frontier", "frontier_spec", "FRONTIER_COLUMNS"]

FRONTIER_COLUMNS = ("budget", "records", "status", "max_error", "mean_error", "ess",
                    "design_effect", "max_ratio", "top1_share", "selection", "seconds")


def frontier(M: Any, y: Any, budgets: Sequence[int], **kwargs: Any) -> Any:
    """Calibrate with ``method="l0"`` at every record budget and tabulate the results.

    Parameters
    ----------
    M, y
        As for :func:`calibrate`.
    budgets : sequence of int
        Values of ``max_records`` (any order; solved from the largest down so that each vertex
        search starts from the caps already solved).
    **kwargs
        Problem arguments and ``method="l0"`` settings of :func:`calibrate` (not
        ``max_records``).

    Returns
    -------
    FrontierTable
        A pandas DataFrame whose ``plot()`` draws the frontier (records against max error and
        ESS). One row per budget, in the order given: ``budget``, ``records`` kept, ``status``,
        ``max_error``, ``mean_error``, ``ess``, ``design_effect``, ``max_ratio`` (largest w/d),
        ``top1_share``, ``selection`` and ``seconds``. ``DataFrame.attrs["results"]`` holds the
        :class:`CalibrationResult` of each budget.

    Examples
    --------
    >>> import numpy as np
    >>> M = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    >>> table = frontier(M, [4.0, 10.0], budgets=[2, 4], progress=False)
    >>> table[["budget", "records", "status"]].to_numpy().tolist()
    [[2, 2, 'exact'], [4, 4, 'exact']]
    """
    return frontier_spec(M, ProblemSpec.take(y, kwargs), budgets, **kwargs)


def frontier_spec(M: Any, spec: ProblemSpec, budgets: Sequence[int], **kwargs: Any) -> Any:
    """:func:`frontier` of a problem given as a :class:`~._spec.ProblemSpec` (``kwargs``: the
    ``method="l0"`` settings)."""
    from ._frontier_table import FrontierTable

    if isinstance(M, ColumnShards):
        raise ValueError("frontier() runs in one process (its vertex search needs the whole "
                         "matrix); got M as ColumnShards — pass the matrix itself, or call "
                         "calibrate(shards, y, max_records=k) for each budget.")
    if kwargs.get("method", "l0") != "l0":
        raise fail("method", "'l0' (the frontier is over record budgets)", kwargs["method"])
    kwargs.pop("method", None)
    if "max_records" in kwargs:
        raise ValueError("`max_records` is set by `budgets` in frontier(); remove it.")
    if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__"):
        raise fail("budgets", "a sequence of ints (record budgets)", budgets, TypeError)
    budgets = [check_int("budgets[]", b, low=1) for b in budgets]
    if not budgets:
        raise fail("budgets", "a non-empty sequence of ints", budgets)
    options = kwargs.pop("options", None)
    base = options_for(METHOD_TABLE["l0"], options, kwargs)
    problem = spec.build(M)
    search = CappedVertexSearch(problem, columns=problem.M.nnz > VERTEX_UP_TO_NNZ)
    results = {}
    for budget in sorted(set(budgets), reverse=True):
        opts = options_for(METHOD_TABLE["l0"], base, {"max_records": budget})
        start = time.perf_counter()
        result = solve_l0(problem, opts, search=search)
        results[budget] = (result, time.perf_counter() - start)
    table = FrontierTable([_row(budget, *results[budget]) for budget in budgets],
                          columns=list(FRONTIER_COLUMNS))
    table.attrs["results"] = [results[b][0] for b in budgets]
    return table


def _row(budget: int, r: Any, seconds: float) -> dict[str, Any]:
    return {"budget": budget, "records": r.n_active, "status": r.status,
            "max_error": r.max_error, "mean_error": r.mean_error, "ess": r.ess,
            "design_effect": r.design_effect, "max_ratio": r.max_ratio,
            "top1_share": r.top1_share, "selection": r.info.get("selection"),
            "seconds": seconds}
