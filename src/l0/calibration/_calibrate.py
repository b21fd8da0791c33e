"""``calibrate()``: the problem spec, the method's table entry, the problem built once, its solver."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._validation import check_choice
from ._solvers.methods import METHOD_TABLE
from ._spec import ProblemSpec
from .options import options_for
from .result import CalibrationResult
from .shards import ColumnShards

__all__ = ["calibrate", "calibrate_spec", "METHODS"]

METHODS = tuple(METHOD_TABLE)  # the method names, in the table's order


def calibrate(
    M: Any,
    y: Any,
    *,
    method: str = "l0",
    init_weights: Any = None,
    bounds: tuple[float, float] | None = None,
    tolerance: float | Sequence[float] = 0.0,
    loss: str = "relative",
    target_names: Sequence[str] | None = None,
    target_groups: Any = None,
    normalize_groups: bool = True,
    group_multipliers: Mapping[Any, float] | None = None,
    target_weights: Any = None,
    relative_floor: float = 1.0,
    cap: float = 1.0,
    options: Any = None,
    **settings: Any,
) -> CalibrationResult:
    """Find non-negative weights ``w`` with ``M @ w`` close to ``y``, by the chosen method.

    Methods:

    * ``"l0"`` (default) — *select, then refit*: choose a support (under ``max_records=k`` the
      capped LP vertex that fits in ``k`` records — HiGHS on the whole matrix, or column
      generation on a working set of records when the matrix is large — otherwise Hard
      Concrete gates trained by Adam with analytic gradients), then publish the
      minimum-distance weights on it that meet every target within ``bounds`` (or, when the
      support cannot, the least-loss weights, pricing records into the free budget).
      Settings: :class:`~l0.calibration.options.L0Options`.
    * ``"exact"`` — a vertex of ``{M w = y, w/d within bounds}`` by HiGHS: at most rank(M)
      records; when no exact weights exist, the closest in weighted L1 (``status="closest"``).
      Settings: :class:`~l0.calibration.options.ExactOptions`.
    * ``"linear"``, ``"raking"``, ``"logit"`` — classical calibration of every record
      (Deville & Särndal): GREG's chi-square distance (truncated with ``bounds``), raking,
      logit within ``bounds``. Settings: :class:`~l0.calibration.options.ClassicalOptions`.

    Parameters
    ----------
    M : scipy sparse matrix, ndarray, DataFrame or torch tensor, shape (n_targets, n_records)
        What each record contributes to each target; or a
        :class:`~l0.calibration.shards.ColumnShards` from every process of a
        ``torch.distributed`` job: each rank loads its block of records and ``method="l0"`` runs
        sharded (gates for the selection; ``init_weights`` then has one value per record of the
        whole problem, or is a number).
    y : array-like, shape (n_targets,)
        Target totals.
    method : {"l0", "exact", "linear", "raking", "logit"}, default "l0"
    init_weights : float or array-like, shape (n_records,), optional
        Design weights ``d > 0`` (default 1); ``bounds`` are on ``w/d``.
    bounds : (float, float), optional
        ``low <= w/d <= high`` for every kept record (``high`` may be ``inf``). Without bounds
        the ``"linear"`` method may return negative weights (the textbook GREG); every other
        method keeps ``w >= 0``.
    tolerance : float or array-like, default 0
        Half-width of each target's band, in the loss's units (relative errors for the relative
        losses): a target within its band is met.
    loss : {"relative", "absolute", "capped", "max"}, default "relative"
        How misses are scored where a method minimises a loss (the gate training, the least-loss
        refit, the exact method's closest fit): squared ``(ŷ - y)/max(|y|, relative_floor)``;
        squared ``ŷ - y``; the relative error Huber-capped at ``cap``; or ``"max"``, the largest
        relative error (minimised exactly by linear programs; the gates train on the relative
        loss).
    target_names : sequence of str, optional
        A label per target, carried into every result table.
    target_groups : array-like of int, optional
        Group id of each target; with ``normalize_groups`` each group weighs the same.
    normalize_groups : bool, default True
    group_multipliers : dict {group id: float}, optional
        Extra weight of each group's targets (requires ``target_groups``).
    target_weights : array-like, optional
        Weight of each target in the loss (default 1).
    relative_floor : float, default 1
        Smallest divisor of a relative error.
    cap : float, default 1
        Where the ``"capped"`` loss turns linear.
    options : L0Options, ExactOptions or ClassicalOptions, optional
        The method's settings as one object; keyword ``settings`` override its fields.
    **settings
        The method's settings by name (e.g. ``max_records=800``, ``seed=0``, ``max_iter=50``);
        a name the method does not have is a ``ValueError``.

    Returns
    -------
    CalibrationResult
        Weights, estimates, ``status`` (``"exact"``, ``"closest"``, ``"infeasible"``, ...),
        per-target table and weight diagnostics.

    Raises
    ------
    TypeError, ValueError
        On bad input or a setting that does not apply to the method, naming it.
    l0.calibration.DivergenceError
        If the gate training's loss stops being finite.

    Warns
    -----
    UserWarning
        For targets that cannot be reached or conflict with each other.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> M = sp.csr_array(np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]]))
    >>> calibrate(M, [4.0, 10.0], method="exact").n_active  # a vertex: at most rank(M) records
    2
    >>> result = calibrate(M, [4.0, 10.0], max_records=3, progress=False)
    >>> result.status, result.n_active <= 3
    ('exact', True)
    >>> round(float(calibrate(M, [4.0, 10.0], method="raking").weights.sum()), 10)
    4.0
    """
    spec = ProblemSpec(y, init_weights=init_weights, bounds=bounds, tolerance=tolerance,
                       loss=loss, target_names=target_names, target_groups=target_groups,
                       normalize_groups=normalize_groups, group_multipliers=group_multipliers,
                       target_weights=target_weights, relative_floor=relative_floor, cap=cap)
    return calibrate_spec(M, spec, method=method, options=options, **settings)


def calibrate_spec(M: Any, spec: ProblemSpec, *, method: str = "l0", options: Any = None,
                   **settings: Any) -> CalibrationResult | None:
    """:func:`calibrate` of a problem given as a :class:`~._spec.ProblemSpec`: the method's
    table entry, its options, its checks, the problem built once, its solver."""
    check_choice("method", method, tuple(METHOD_TABLE))
    entry = METHOD_TABLE[method]
    opts = options_for(entry, options, settings)
    entry.check(spec.arguments(), isinstance(M, ColumnShards))
    return entry.solve(spec.build(M), opts)
