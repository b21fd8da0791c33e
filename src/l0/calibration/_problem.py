"""The calibration problem every solver takes: validated data, immutable, with derived quantities.

Every solver (L0 selection, the exact LP, the classical methods) takes a
:class:`CalibrationProblem`, built once by :meth:`~._spec.ProblemSpec.build`, so checks,
warnings, names and the loss weights are written once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .. import diagnostics
from ._comm import ShardLayout
from ._matrix import row_counts

__all__ = ["CalibrationProblem", "LOSSES", "EXACT"]

LOSSES = ("relative", "absolute", "capped", "max")
EXACT = 1e-8  # a target is met when its relative error is within its band plus this


@dataclass(frozen=True, eq=False)
class CalibrationProblem:
    """A validated calibration problem: find ``w >= 0`` with ``M @ w`` close to ``y``.

    Attributes
    ----------
    M : scipy.sparse.csr_array
        Targets × records, float64, finite.
    y : ndarray
        Target totals.
    design : ndarray
        Design weights ``d > 0``; bounds and closeness are on the ratio ``w / d``.
    scale : ndarray
        Divisor of each target's residual: ``max(|y|, relative_floor)`` for relative losses, 1 for
        ``"absolute"``.
    coef : ndarray
        Weight of each target in the loss (target weights × group normalisation × multipliers),
        scaled to sum to one unless the caller asked for raw sums.
    tolerance : ndarray
        Half-width of the zero-loss band of each target, in units of the scaled residual.
    bounds : (float, float)
        Lower and upper bound of ``w / d`` for records that are kept.
    loss : {"relative", "absolute", "capped", "max"}
    cap : float
        Scaled residual beyond which the ``"capped"`` loss grows linearly.
    relative_floor : float
        Smallest divisor of a relative error (for zero and tiny targets).
    bounds_given : bool
        Whether the caller set ``bounds`` (the linear method is unbounded otherwise).
    names : list of str or None
        A label per target.
    groups : ndarray or None
        The group id of each target (``target_groups``).
    shards : ShardLayout
        Where the records of ``M`` and ``design`` sit: this rank's block (global indices
        ``shards.offset`` onwards) of ``shards.n_total`` records, with :meth:`total` summing
        per-target vectors over the ranks. Always set: a whole matrix in one process is
        ``ShardLayout.whole(n_records)``, a world of one whose sums return their input (the
        default when None is given).
    """

    M: sp.csr_array
    y: np.ndarray
    design: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    tolerance: np.ndarray
    bounds: tuple[float, float]
    loss: str
    cap: float
    relative_floor: float
    bounds_given: bool = False
    names: list[str] | None = None
    groups: np.ndarray | None = None
    shards: ShardLayout = None  # type: ignore[assignment] - None: the whole matrix here

    def __post_init__(self) -> None:
        if self.shards is None:
            object.__setattr__(self, "shards", ShardLayout.whole(self.M.shape[1]))

    @property
    def n_targets(self) -> int:
        return self.M.shape[0]

    @property
    def n_records(self) -> int:
        """The records held here (this rank's block when the problem is sharded)."""
        return self.M.shape[1]

    @property
    def n_total(self) -> int:
        """The records of the whole problem, over every shard."""
        return self.shards.n_total

    def total(self, values: np.ndarray) -> np.ndarray:
        """A per-target (or any fixed-size) vector summed over the record shards (a float64
        copy of it in a world of one)."""
        return self.shards.comm.sum(values)

    def estimate(self, weights: np.ndarray) -> np.ndarray:
        """``M @ w`` over every record (this rank's ``weights`` when sharded)."""
        return self.total(self.M @ weights)

    def relative_errors(self, estimates: np.ndarray) -> np.ndarray:
        """Signed ``(estimate - y) / max(|y|, relative_floor)``, whatever the loss."""
        return diagnostics.relative_errors(estimates, self.y, self.relative_floor)

    def scaled(self) -> tuple[sp.csr_array, np.ndarray]:
        """``(A, b)`` with rows divided by ``max(|y|, relative_floor)``: residuals of ``A w - b``
        are relative errors (what the exact and classical solvers put tolerances on). Computed
        once per problem; treat as read-only."""
        return self._scaled

    @functools.cached_property
    def _scaled(self) -> tuple[sp.csr_array, np.ndarray]:
        s = self.row_scale()
        return sp.csr_array(sp.diags_array(1.0 / s) @ self.M), self.y / s

    def row_scale(self) -> np.ndarray:
        """``max(|y|, relative_floor)``: the divisor that puts each row in relative units."""
        return np.maximum(np.abs(self.y), self.relative_floor)

    def scaled_columns(self, index: np.ndarray) -> sp.csr_array:
        """The scaled rows restricted to some records, without scaling the whole matrix (from
        the cached :meth:`scaled` when it exists)."""
        if "_scaled" in self.__dict__:
            return sp.csr_array(self._scaled[0][:, index])
        return sp.csr_array(sp.diags_array(1.0 / self.row_scale()) @ self.M[:, index])

    def ratio_system(self) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
        """``(A diag(d), b, tau)``: the calibration equations in the ratios ``x = w/d``, rows in
        relative units, with each target's band (what the LP solvers constrain). Computed once."""
        return self._ratio_system

    @functools.cached_property
    def _ratio_system(self) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
        A, b = self.scaled()
        return sp.csr_array(A @ sp.diags_array(self.design)), b, self.relative_tolerance()

    def common_factor(self, scaled_estimate: np.ndarray) -> float:
        """The one factor ``c`` minimising ``sum_i coef_i (c e_i - b_i)^2`` for estimates ``e``
        in relative units (closed form); nan when no estimate is non-zero or it is not finite."""
        weighted = self.coef * scaled_estimate
        with np.errstate(over="ignore", invalid="ignore"):
            numerator = float(weighted @ (self.y / self.row_scale()))
            denominator = float(weighted @ scaled_estimate)
        factor = numerator / denominator if denominator > 0 else math.nan
        return factor if math.isfinite(factor) else math.nan

    def met(self, estimates: np.ndarray, tol: float = EXACT) -> np.ndarray:
        """Whether each target is within its tolerance band plus ``tol`` (relative)."""
        excess = np.abs(self.relative_errors(estimates)) - self.relative_tolerance()
        return excess <= tol

    def relative_tolerance(self) -> np.ndarray:
        """The tolerance band of each target as a relative error."""
        if self.loss != "absolute":
            return self.tolerance
        return self.tolerance / np.maximum(np.abs(self.y), self.relative_floor)

    def achievable(self) -> np.ndarray:
        """Whether each target can be reached by non-negative weights at all (its row has an
        entry of the target's sign, or the target is 0). Computed once."""
        return self._achievable

    @functools.cached_property
    def _achievable(self) -> np.ndarray:
        counts = self.total(np.concatenate([row_counts(self.M, self.M.data > 0),
                                            row_counts(self.M, self.M.data < 0)]))
        has_positive, has_negative = counts[: self.n_targets] > 0, counts[self.n_targets:] > 0
        return ~(((self.y > 0) & ~has_positive) | ((self.y < 0) & ~has_negative))
