"""One frozen problem spec: the problem arguments of a calibration, validated into a problem once.

:func:`~l0.calibration.calibrate`, :func:`~l0.calibration.frontier`, the targets front end
(:class:`~l0.calibration.targets.Targets`), the ``l0`` command and :func:`build_problem` all
describe a problem by one :class:`ProblemSpec` and build it by :meth:`ProblemSpec.build`: the
arguments, their defaults and their checks are written here once. The target warnings are called
here too, above both the problem and the checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .._validation import check_choice, check_real, fail
from ._comm import Communicator, ShardLayout
from ._labels import align_to_labels
from ._matrix import as_csr, as_vector
from ._problem import LOSSES, CalibrationProblem
from ._target_checks import warn_about_targets
from .shards import ColumnShards

__all__ = ["ProblemSpec", "PROBLEM_ARGUMENTS", "build_problem", "group_codes"]


@dataclass(frozen=True, eq=False)
class ProblemSpec:
    """The totals and every problem argument of :func:`~l0.calibration.calibrate` (see there),
    as given; :meth:`build` validates them against a matrix.

    ``normalize_loss`` (default True) scales the loss weights to sum to one; the drop-in
    estimator keeps the raw sums of 0.6.x.
    """

    y: Any
    init_weights: Any = None
    bounds: Any = None
    tolerance: Any = 0.0
    loss: str = "relative"
    target_names: Any = None
    target_groups: Any = None
    normalize_groups: bool = True
    group_multipliers: Mapping[Any, float] | None = None
    target_weights: Any = None
    relative_floor: float = 1.0
    cap: float = 1.0
    normalize_loss: bool = True

    @classmethod
    def take(cls, y: Any, kwargs: dict[str, Any]) -> ProblemSpec:
        """The spec of ``y`` and the problem arguments among ``kwargs``, which are removed from
        it (what is left are a method's settings)."""
        return cls(y, **{name: kwargs.pop(name) for name in PROBLEM_ARGUMENTS if name in kwargs})

    def arguments(self) -> dict[str, Any]:
        """The problem arguments by name (what a method's checks read)."""
        return {name: getattr(self, name) for name in PROBLEM_ARGUMENTS}

    def build(self, M: Any, shards: Any = None) -> CalibrationProblem:
        """Validate against ``M`` (any matrix, or a :class:`ColumnShards` whose block this rank
        loads; ``shards``: the layout of an already loaded block) and warn about unreachable or
        conflicting targets. Raises ``TypeError``/``ValueError`` naming the argument."""
        spec = self
        given = {"y": self.y, **self.arguments()}
        labelled = align_to_labels(M, given)  # labels win over positions
        if any(labelled[k] is not given[k] for k in given):
            spec = _replace(self, **labelled)
        if isinstance(M, ColumnShards):
            M, shards = M.load()
            spec = _replace(self, init_weights=_local_slice(self.init_weights, shards))
        comm = shards.comm if shards is not None else Communicator(False)
        problem, error = None, None
        try:  # a rank's local check fails: every rank must raise, none may wait in a collective
            problem = spec._validated(M, shards)
        except Exception as exc:
            error = exc
        comm.agree(error)  # one process: raises its own error
        warn_about_targets(problem.M, problem.y, problem.achievable(), problem.shards.offset,
                           problem.total)
        return problem

    def _validated(self, M: Any, shards: ShardLayout | None) -> CalibrationProblem:
        """The problem of ``M`` (a whole matrix when ``shards`` is None, else a rank's block of
        records, which may be empty)."""
        M = as_csr(M, "M", allow_no_columns=shards is not None)
        layout = shards if shards is not None else ShardLayout.whole(M.shape[1])
        n_targets, n_records = M.shape
        y = as_vector(self.y, "y").copy()
        if y.shape[0] != n_targets:
            raise fail("y", f"of length {n_targets} (the rows of M, one per target)",
                       f"length {y.shape[0]}")
        loss = check_choice("loss", self.loss, LOSSES)
        cap = check_real("cap", self.cap, low=0.0, low_open=True)
        floor = check_real("relative_floor", self.relative_floor, low=0.0, low_open=True)
        design = _design_weights(self.init_weights, n_records).copy()
        bounds = _check_bounds(self.bounds)
        coef = _loss_coefficients(n_targets, self.target_groups, bool(self.normalize_groups),
                                  self.group_multipliers, self.target_weights)
        if self.normalize_loss:
            coef = coef / coef.sum()
        tol = _tolerances(self.tolerance, n_targets)
        scale = np.ones(n_targets) if loss == "absolute" else np.maximum(np.abs(y), floor)
        names = _target_names(self.target_names, n_targets)
        groups = None if self.target_groups is None else _group_ids(self.target_groups, n_targets)
        for array in (y, design, scale, coef, tol):
            array.setflags(write=False)
        return CalibrationProblem(M, y, design, scale, coef, tol, bounds, loss, cap, floor,
                                  bounds_given=self.bounds is not None, names=names,
                                  groups=groups, shards=layout)


PROBLEM_ARGUMENTS = tuple(f.name for f in fields(ProblemSpec) if f.name not in ("y",
                                                                               "normalize_loss"))


def _replace(spec: ProblemSpec, **changes: Any) -> ProblemSpec:
    return ProblemSpec(**{**{f.name: getattr(spec, f.name) for f in fields(spec)}, **changes})


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
    spec = ProblemSpec(y, init_weights=init_weights, bounds=bounds, tolerance=tolerance,
                       loss=loss, target_names=target_names, target_groups=target_groups,
                       normalize_groups=normalize_groups, group_multipliers=group_multipliers,
                       target_weights=target_weights, relative_floor=relative_floor, cap=cap,
                       normalize_loss=normalize_loss)
    return spec.build(M, shards)


def _local_slice(init_weights: Any, shards: Any) -> Any:
    """This rank's design weights from one value per record of the whole problem."""
    if init_weights is None or (np.isscalar(init_weights) and not isinstance(init_weights, str)):
        return init_weights
    d = as_vector(init_weights, "init_weights", shards.n_total)
    return d[shards.offset: shards.offset + shards.n_local]


def _tolerances(tolerance: Any, n_targets: int) -> np.ndarray:
    if np.isscalar(tolerance) and not isinstance(tolerance, str):
        return np.full(n_targets, check_real("tolerance", tolerance, low=0.0))
    tol = as_vector(tolerance, "tolerance", n_targets)
    if (tol < 0).any():
        raise fail("tolerance", "non-negative", f"minimum {tol.min()}")
    return tol


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
