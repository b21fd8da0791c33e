"""What a calibration returns, whatever the method: the weights and everything needed to judge them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import diagnostics
from ._problem import EXACT, CalibrationProblem

__all__ = ["CalibrationResult", "STATUSES"]

STATUSES = ("exact", "closest", "infeasible", "not_converged", "failed")


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """Weights of a calibration with their fit and diagnostics.

    Attributes
    ----------
    weights : ndarray of float64
        One weight per record, exactly 0 off the support.
    targets : ndarray
        The totals ``y`` the weights were fit to.
    estimates : ndarray
        ``M @ weights``.
    relative_errors : ndarray
        Signed ``(estimate - y) / max(|y|, relative_floor)`` per target.
    design_weights : ndarray
        The design weights ``d`` (``init_weights``; ones when not given).
    tolerance : ndarray
        Tolerance band of each target (in the loss's units).
    method : str
    status : str
        ``"exact"``: every target within its band (plus a relative 1e-8); ``"closest"``: the
        best weights found miss some target; ``"infeasible"``: no weights within the bounds
        meet the calibration equations (classical methods); ``"not_converged"``; ``"failed"``.
    converged : bool
        Whether the method's own stopping rule fired (gate training, Newton, HiGHS).
    message : str
        Why the fit stopped.
    epochs : int
        Epochs of stochastic training run (0 for methods without).
    history : pandas.DataFrame or None
        One row per check of the gate training.
    target_names : list of str or None
    target_groups : ndarray or None
    achievable : ndarray of bool
        Whether each target can be reached by non-negative weights at all.
    within_tolerance : ndarray of bool
        Whether each target is met (its band plus a relative 1e-8).
    seconds : float
        Wall time of the solve.
    info : dict
        Solver details (selection, LP and refit reports, rank, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from l0.calibration import calibrate
    >>> M = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
    >>> result = calibrate(M, [3.0, 3.0], method="exact")
    >>> result.status, round(result.max_error, 12), result.n_active <= 2
    ('exact', 0.0, True)
    """

    weights: np.ndarray
    targets: np.ndarray
    estimates: np.ndarray
    relative_errors: np.ndarray
    design_weights: np.ndarray
    tolerance: np.ndarray
    method: str
    converged: bool
    message: str
    epochs: int = 0
    history: Any = None
    target_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    status: str = "exact"
    target_groups: np.ndarray | None = None
    achievable: np.ndarray | None = None
    within_tolerance: np.ndarray | None = None
    seconds: float = math.nan

    @classmethod
    def build(
        cls,
        problem: CalibrationProblem,
        weights: np.ndarray,
        *,
        method: str,
        status: str | None = None,
        converged: bool,
        message: str,
        epochs: int = 0,
        history: Any = None,
        info: dict[str, Any] | None = None,
        seconds: float = math.nan,
        estimates: np.ndarray | None = None,
        design: np.ndarray | None = None,
    ) -> CalibrationResult:
        """The result of ``weights`` on ``problem``; the status is derived when not given.

        A sharded problem passes every record's ``weights`` and ``design`` (gathered) and the
        ``estimates`` summed over the ranks."""
        weights = np.asarray(weights, dtype=np.float64)
        if estimates is None:
            estimates = problem.M @ weights
        met = problem.met(estimates)
        if status is None:
            status = "exact" if met.all() else "closest"
        return cls(
            weights=weights,
            targets=np.array(problem.y),
            estimates=estimates,
            relative_errors=problem.relative_errors(estimates),
            design_weights=np.array(problem.design if design is None else design),
            tolerance=np.array(problem.tolerance),
            method=method,
            converged=bool(converged),
            message=message,
            epochs=int(epochs),
            history=history,
            target_names=problem.names,
            info=dict(info or {}),
            status=status,
            target_groups=problem.groups,
            achievable=problem.achievable(),
            within_tolerance=met,
            seconds=float(seconds),
        )

    # ------------------------------------------------------------------ the fit
    @property
    def max_error(self) -> float:
        """Largest absolute relative error over the targets."""
        return float(np.abs(self.relative_errors).max())

    @property
    def mean_error(self) -> float:
        """Mean absolute relative error over the targets."""
        return float(np.abs(self.relative_errors).mean())

    # ------------------------------------------------------------------ the weights
    @property
    def support(self) -> np.ndarray:
        """Indices of the records with a non-zero weight."""
        return np.flatnonzero(self.weights)

    @property
    def n_active(self) -> int:
        """Number of records with a non-zero weight."""
        return int(np.count_nonzero(self.weights))

    @property
    def ess(self) -> float:
        """Kish effective sample size :math:`(\\sum w)^2/\\sum w^2`."""
        return diagnostics.effective_sample_size(self.weights)

    @property
    def design_effect(self) -> float:
        """Kish design effect of the weighting over the kept records (``n_active / ess``)."""
        return diagnostics.design_effect(self.weights)

    @property
    def g_weights(self) -> np.ndarray:
        """Ratios ``w / d`` (0 for dropped records)."""
        return diagnostics.g_weights(self.weights, self.design_weights)

    @property
    def min_ratio(self) -> float:
        """Smallest ``w/d`` over the kept records (nan when none is kept)."""
        g = self.g_weights[self.support]
        return float(g.min()) if len(g) else math.nan

    @property
    def max_ratio(self) -> float:
        """Largest ``w/d`` over the kept records (nan when none is kept)."""
        g = self.g_weights[self.support]
        return float(g.max()) if len(g) else math.nan

    @property
    def top1_share(self) -> float:
        """Share of the total weight held by the heaviest 1 % of the kept records."""
        return diagnostics.top_share(self.weights, 0.01)

    def weight_histogram(self, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Counts of ``w/d`` over the kept records in ``bins`` equal bins, and the bin edges."""
        g = self.g_weights[self.support]
        if len(g) == 0:
            return np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
        return np.histogram(g, bins=bins)

    # ------------------------------------------------------------------ tables and text
    def per_target(self) -> Any:
        """A pandas DataFrame, one row per target: name, group, total, estimate, errors,
        whether it is achievable at all and whether it is met."""
        import pandas as pd

        n = len(self.targets)
        names = self.target_names if self.target_names is not None else list(range(n))
        groups = self.target_groups if self.target_groups is not None else np.full(n, -1)
        achievable = self.achievable if self.achievable is not None else np.ones(n, dtype=bool)
        within = self.within_tolerance if self.within_tolerance is not None else np.abs(
            self.relative_errors) <= EXACT
        return pd.DataFrame(
            {
                "group": groups,
                "target": self.targets,
                "estimate": self.estimates,
                "error": self.estimates - self.targets,
                "relative_error": self.relative_errors,
                "tolerance": self.tolerance,
                "achievable": achievable,
                "within_tolerance": within,
            },
            index=pd.Index(names, name="name"),
        )

    def diagnostics(self) -> dict[str, Any]:
        """The weight and fit diagnostics as plain numbers."""
        counts, edges = self.weight_histogram()
        return {
            "n_records": len(self.weights),
            "n_active": self.n_active,
            "n_targets": len(self.targets),
            "targets_met": int(np.count_nonzero(self.within_tolerance))
            if self.within_tolerance is not None else None,
            "max_error": self.max_error,
            "mean_error": self.mean_error,
            "ess": self.ess,
            "design_effect": self.design_effect,
            "min_ratio": self.min_ratio,
            "max_ratio": self.max_ratio,
            "top1_share": self.top1_share,
            "ratio_histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        }

    def summary(self) -> str:
        """A few lines for a log: status, fit, records kept, weight diagnostics, why it stopped."""
        d = self.diagnostics()
        met = d["targets_met"]
        return (
            f"{self.method} calibration ({self.status}): {d['n_targets']} targets"
            f"{'' if met is None else f' ({met} met)'}, {d['n_active']} of {d['n_records']} "
            f"records kept\n"
            f"  relative error: mean {d['mean_error']:.3e}, max {d['max_error']:.3e}\n"
            f"  ESS {d['ess']:.1f}, design effect {d['design_effect']:.3f}, w/d in "
            f"[{d['min_ratio']:.3g}, {d['max_ratio']:.3g}], top 1% share {d['top1_share']:.1%}\n"
            f"  {f'{self.epochs} epochs, ' if self.epochs else ''}{self.seconds:.2f} s; "
            f"{self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-serialisable Python values (lists, floats, str, bool, None)."""
        return _plain({
            "method": self.method,
            "status": self.status,
            "converged": self.converged,
            "message": self.message,
            "epochs": self.epochs,
            "seconds": self.seconds,
            "diagnostics": self.diagnostics(),
            "weights": self.weights,
            "targets": self.per_target().reset_index().to_dict(orient="list"),
            "history": None if self.history is None else self.history.to_dict(orient="list"),
            "info": self.info,
        })

    def plot(self, *, title: str | None = None) -> Any:
        """Relative error of every target, the kept records' ``w/d`` and the training history
        (matplotlib; see :func:`l0.calibration.plots.plot_result`). Returns the Figure."""
        from .plots import plot_result

        return plot_result(self, title=title)

    def report(self, path: Any, *, title: str = "l0 calibration") -> str:
        """Write a self-contained HTML report (summary, diagnostics, pictures, worst targets);
        returns its absolute path (see :func:`l0.calibration.report.write_report`)."""
        from .report import write_report

        return write_report(self, path, title=title)

    def __repr__(self) -> str:
        return (
            f"CalibrationResult(method={self.method!r}, status={self.status!r}, "
            f"n_active={self.n_active}, max_error={self.max_error:.3e}, ess={self.ess:.1f})"
        )


def _plain(value: Any) -> Any:
    """numpy and pandas values → plain Python (non-finite floats become None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "item"):
        return _plain(value.item())
    return str(value)
