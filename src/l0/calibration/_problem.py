"""Validate and normalise a calibration problem once, into one immutable object.

Every solver (L0 selection, the exact LP, the classical methods) takes a
:class:`CalibrationProblem`, so checks, warnings, names and the loss weights are written once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .. import diagnostics
from .._validation import check_choice, check_real, fail
from ._matrix import as_csr, as_vector, row_counts
from ._target_checks import warn_about_targets

__all__ = ["CalibrationProblem", "LOSSES", "EXACT", "build_problem", "group_codes"]

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
    shards : ShardLayout or None
        For a distributed calibration: ``M`` and ``design`` are this rank's block of records
        (global indices ``shards.offset`` onwards), and :meth:`total` sums per-target vectors
        over the ranks. None: one process holds every record.
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
    shards: Any = None

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
        return self.n_records if self.shards is None else self.shards.n_total

    def total(self, values: np.ndarray) -> np.ndarray:
        """A per-target (or any fixed-size) vector summed over the record shards."""
        return values if self.shards is None else self.shards.comm.sum(values)

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


def group_codes(target_groups: Any, n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """Group ids (integers, or string labels) → (unique ids, code of each target).

    Fractional floats, booleans and mixtures of labels with other objects are refused.
    """
    if isinstance(target_groups, str):
        raise fail("target_groups", "a 1-D array of group ids (one per target)", target_groups,
                   TypeError)
    module = type(target_groups).__module__
    if module.startswith("torch"):
        target_groups = target_groups.detach().cpu().numpy()
    groups = np.asarray(target_groups)
    if groups.dtype == object and all(isinstance(g, str) for g in groups.ravel()):
        groups = groups.astype(str)
    if groups.dtype == bool or not (np.issubdtype(groups.dtype, np.integer)
                                    or groups.dtype.kind == "U"):
        if groups.dtype.kind == "f" and groups.size and np.all(np.mod(groups, 1) == 0):
            groups = groups.astype(np.int64)
        else:
            raise fail(
                "target_groups",
                "integer group ids or string labels",
                f"dtype {groups.dtype}",
                TypeError,
            )
    if groups.ndim != 1 or groups.shape[0] != n_targets:
        raise fail("target_groups", f"a 1-D array of length {n_targets} (one per target)",
                   f"shape {groups.shape}")
    return np.unique(groups, return_inverse=True)


def _loss_coefficients(
    n_targets: int,
    target_groups: Any,
    normalize_groups: bool,
    group_multipliers: Mapping[Any, float] | None,
    target_weights: Any,
) -> np.ndarray:
    coef = np.ones(n_targets)
    if target_weights is not None:
        coef = as_vector(target_weights, "target_weights", n_targets)
        if (coef < 0).any():
            raise fail("target_weights", "non-negative", f"minimum {coef.min()}")
        if not (coef > 0).any():
            raise fail("target_weights", "not all zero", "all zeros")
    if group_multipliers is not None and target_groups is None:
        raise ValueError("`group_multipliers` requires `target_groups` (group_multipliers "
                         "requires target_groups to be set); got target_groups=None.")
    if target_groups is None:
        return coef
    ids, codes = group_codes(target_groups, n_targets)
    if normalize_groups:
        coef = coef / np.bincount(codes)[codes]
    if group_multipliers is not None:
        if not isinstance(group_multipliers, Mapping):
            raise fail("group_multipliers", "a dict {group id: multiplier}", group_multipliers,
                       TypeError)
        factor = np.ones(len(ids))
        for key, value in group_multipliers.items():
            where = np.flatnonzero(ids == key) if np.isscalar(key) else []
            if len(where) == 0:
                raise ValueError(
                    f"`group_multipliers` must be keyed by ids in target_groups "
                    f"{ids[:10].tolist()}; got key {key!r} (group_multipliers key {key} not "
                    "found in target_groups)."
                )
            factor[where[0]] = check_real(f"group_multipliers[{key!r}]", value, low=0.0)
        coef = coef * factor[codes]
    return coef


def _design_weights(init_weights: Any, n_records: int) -> np.ndarray:
    if init_weights is None:
        return np.ones(n_records)
    if np.isscalar(init_weights) and not isinstance(init_weights, str):
        value = check_real("init_weights", init_weights, low=0.0, low_open=True)
        return np.full(n_records, value)
    d = as_vector(init_weights, "init_weights", n_records)
    if (d <= 0).any():
        k = int(np.flatnonzero(d <= 0)[0])
        raise fail("init_weights", "design weights > 0 (drop records you do not want)",
                   f"{int((d <= 0).sum())} values <= 0, the first {d[k]} at record {k}")
    return d


def _check_bounds(bounds: Any) -> tuple[float, float]:
    if bounds is None:
        return (0.0, math.inf)
    if isinstance(bounds, str) or not hasattr(bounds, "__len__") or len(bounds) != 2:
        raise fail("bounds", "a pair (low, high) of ratios w/d", bounds, TypeError)
    low = check_real("bounds[0]", bounds[0], low=0.0) if bounds[0] is not None else 0.0
    high = bounds[1]
    if high is None or (isinstance(high, float) and math.isinf(high) and high > 0):
        high = math.inf
    else:
        high = check_real("bounds[1]", high, low=0.0, low_open=True)
    if not low < high:
        raise fail("bounds", "(low, high) with low < high", bounds)
    return (low, high)


def build_problem(
    M: Any,
    y: Any,
    *,
    init_weights: Any = None,
    loss: str = "relative",
    target_groups: Any = None,
    normalize_groups: bool = True,
    group_multipliers: Mapping[Any, float] | None = None,
    target_weights: Any = None,
    tolerance: Any = 0.0,
    bounds: Any = None,
    cap: float = 1.0,
    relative_floor: float = 1.0,
    normalize_loss: bool = True,
    target_names: Any = None,
    shards: Any = None,
) -> CalibrationProblem:
    """Validate every input of a calibration and return the :class:`CalibrationProblem`.

    Raises ``TypeError``/``ValueError`` naming the argument on bad input and warns
    (``UserWarning``) about unreachable or conflicting targets.
    """
    validate = functools.partial(
        _validated, M, y, init_weights, loss, target_groups, normalize_groups, group_multipliers,
        target_weights, tolerance, bounds, cap, relative_floor, normalize_loss, target_names,
        shards)
    if shards is None:
        problem = validate()
    else:  # a rank's local check fails: every rank must raise, none may wait in a collective
        problem, error = None, None
        try:
            problem = validate()
        except Exception as exc:
            error = exc
        shards.comm.agree(error)
    warn_about_targets(problem.M, problem.y, problem.achievable(),
                       0 if shards is None else shards.offset, problem.total)
    return problem


def _validated(M: Any, y: Any, init_weights: Any, loss: Any, target_groups: Any,
               normalize_groups: Any, group_multipliers: Any, target_weights: Any,
               tolerance: Any, bounds: Any, cap: Any, relative_floor: Any, normalize_loss: Any,
               target_names: Any, shards: Any) -> CalibrationProblem:
    M = as_csr(M, "M", allow_no_columns=shards is not None)
    n_targets, n_records = M.shape
    y = as_vector(y, "y").copy()
    if y.shape[0] != n_targets:
        raise fail("y", f"of length {n_targets} (the rows of M, one per target)",
                   f"length {y.shape[0]}")
    loss = check_choice("loss", loss, LOSSES)
    cap = check_real("cap", cap, low=0.0, low_open=True)
    floor = check_real("relative_floor", relative_floor, low=0.0, low_open=True)
    design = _design_weights(init_weights, n_records).copy()
    given_bounds = bounds is not None
    bounds = _check_bounds(bounds)
    coef = _loss_coefficients(n_targets, target_groups, bool(normalize_groups), group_multipliers,
                              target_weights)
    if normalize_loss:
        coef = coef / coef.sum()
    if np.isscalar(tolerance) and not isinstance(tolerance, str):
        tol = np.full(n_targets, check_real("tolerance", tolerance, low=0.0))
    else:
        tol = as_vector(tolerance, "tolerance", n_targets)
        if (tol < 0).any():
            raise fail("tolerance", "non-negative", f"minimum {tol.min()}")
    scale = np.ones(n_targets) if loss == "absolute" else np.maximum(np.abs(y), floor)
    names = _target_names(target_names, n_targets)
    groups = None if target_groups is None else _group_ids(target_groups, n_targets)
    for array in (y, design, scale, coef, tol):
        array.setflags(write=False)
    problem = CalibrationProblem(M, y, design, scale, coef, tol, bounds, loss, cap, floor,
                                 bounds_given=given_bounds, names=names, groups=groups,
                                 shards=shards)
    return problem


def _target_names(target_names: Any, n_targets: int) -> list[str] | None:
    if target_names is None:
        return None
    if isinstance(target_names, str) or not hasattr(target_names, "__len__"):
        raise fail("target_names", "a sequence of names (one per target)", target_names,
                   TypeError)
    names = [str(name) for name in target_names]
    if len(names) != n_targets:
        raise fail("target_names", f"{n_targets} names (one per target)", f"{len(names)} names")
    return names


def _group_ids(target_groups: Any, n_targets: int) -> np.ndarray:
    ids, codes = group_codes(target_groups, n_targets)
    groups = ids[codes]
    groups.setflags(write=False)
    return groups
