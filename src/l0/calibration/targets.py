"""``Targets``: a calibration problem built from a description (margins, a targets table, clones).

It unpacks as ``M, y, names, groups`` and runs :func:`~l0.calibration.calibrate` or
:func:`~l0.calibration.frontier` with its names, groups and design weights; weights map back to
the records' index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import fail

__all__ = ["Targets"]


@dataclass
class Targets:
    """A calibration problem built from margins: unpack as ``M, y, names, groups = targets``.

    Attributes
    ----------
    matrix : scipy.sparse.csr_array, shape (n_targets, n_records)
    totals : ndarray, shape (n_targets,)
    names : list of str
    groups : ndarray of str
        One label per target (the margin it comes from); pass as ``target_groups`` so that each
        margin weighs the same in the loss.
    dropped : pandas.DataFrame
        Targets left out with ``unmatched="drop"`` (``name``, ``group``, ``value``, ``reason``).
    records : pandas.Index
        The records' index, so weights map back to rows: :meth:`weights_series`.
    init_weights : ndarray or None
        The records' design weights (``init_weights=`` of :func:`build_targets`), used by
        :meth:`calibrate` unless it is given others.
    """

    matrix: Any
    totals: np.ndarray
    names: list[str]
    groups: np.ndarray
    dropped: Any
    records: Any = field(repr=False)
    init_weights: np.ndarray | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.matrix, self.totals, self.names, self.groups))

    def __len__(self) -> int:
        return len(self.totals)

    def problem_arguments(self) -> dict[str, Any]:
        """``M``, ``y``, ``target_names`` and ``target_groups`` as keyword arguments."""
        return {"M": self.matrix, "y": self.totals, "target_names": self.names,
                "target_groups": self.groups, "init_weights": self.init_weights}

    def _spec(self, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The problem spec of these targets (totals, names, groups, design weights), with the
        problem arguments in ``kwargs`` overriding; and the rest of ``kwargs`` (the method and
        its settings)."""
        from ._spec import ProblemSpec

        rest = {"target_names": self.names, "target_groups": self.groups,
                "init_weights": self.init_weights, **kwargs}
        return ProblemSpec.take(self.totals, rest), rest

    def calibrate(self, **kwargs: Any) -> Any:
        """:func:`~l0.calibration.calibrate` on these targets (names, groups and design weights
        included; any keyword overrides them)."""
        from ._calibrate import calibrate_spec

        spec, rest = self._spec(kwargs)
        return calibrate_spec(self.matrix, spec, **rest)

    def frontier(self, budgets: Sequence[int], **kwargs: Any) -> Any:
        """:func:`~l0.calibration.frontier` on these targets (as :meth:`calibrate`)."""
        from .frontier import frontier_spec

        spec, rest = self._spec(kwargs)
        return frontier_spec(self.matrix, spec, budgets, **rest)

    def weights_series(self, weights: Any) -> Any:
        """A result's (or any) weight vector as a pandas Series on the records' index."""
        import pandas as pd

        w = np.asarray(getattr(weights, "weights", weights), dtype=np.float64)
        if w.shape != (len(self.records),):
            raise fail("weights", f"{len(self.records)} weights (one per record)",
                       f"shape {w.shape}")
        return pd.Series(w, index=self.records, name="weight")

    def table(self) -> Any:
        """The targets as a DataFrame: name, group, value and the number of records touched."""
        import pandas as pd

        touched = np.diff(self.matrix.indptr)
        return pd.DataFrame({"group": self.groups, "value": self.totals, "records": touched},
                            index=pd.Index(self.names, name="name"))
