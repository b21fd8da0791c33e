"""The refusals a method makes before any problem is built: arguments that do not apply to it.

Each takes the problem arguments by name (``tolerance``, ``loss``, ...) and whether the records
come as :class:`~l0.calibration.shards.ColumnShards`; :data:`~._solvers.METHOD_TABLE` names the
checks of each method.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["no_checks", "needs_whole_matrix", "solves_equations_exactly"]


def no_checks(method: str, arguments: Mapping[str, Any], sharded: bool) -> None:
    """Every problem argument applies (``method="l0"``)."""


def needs_whole_matrix(method: str, arguments: Mapping[str, Any], sharded: bool) -> None:
    """Refuse records split over processes: the method needs the whole matrix in one process."""
    if sharded:
        raise ValueError(
            f"`method` must be 'l0' for a matrix in ColumnShards; got {method!r}, which needs "
            "the whole matrix in one process (pass the matrix itself, e.g. "
            "scipy.sparse.hstack of the blocks).")


def solves_equations_exactly(method: str, arguments: Mapping[str, Any], sharded: bool) -> None:
    """The classical methods meet the calibration equations exactly: no bands, no loss, no loss
    weights; and they need the whole matrix."""
    given = {"tolerance": not _zero(arguments.get("tolerance", 0.0)),
             "loss": arguments.get("loss", "relative") != "relative",
             "target_weights": arguments.get("target_weights") is not None,
             "group_multipliers": arguments.get("group_multipliers") is not None}
    for name, set_ in given.items():
        if set_:
            raise ValueError(
                f"`{name}` does not apply to method={method!r}: it solves the calibration "
                "equations exactly (use method='l0' or 'exact' for bands and loss weights)."
            )
    needs_whole_matrix(method, arguments, sharded)


def _zero(tolerance: Any) -> bool:
    try:
        return bool(np.all(np.asarray(tolerance, dtype=float) == 0))
    except (TypeError, ValueError):
        return False
