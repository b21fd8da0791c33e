"""What a calibration returns: the weights and everything needed to judge them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import diagnostics

__all__ = ["CalibrationResult"]


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
    converged : bool
        Whether the stopping rule fired before ``max_epochs``.
    message : str
        Why the fit stopped.
    epochs : int
        Epochs of stochastic training run.
    history : pandas.DataFrame
        One row per check: epoch, windowed training objective, loss/mean/max error/open gates of
        the test-time weights, expected open gates, L0 multiplier.
    target_names : list of str or None
    info : dict
        Solver details (e.g. the refit's iterations and losses).

    Examples
    --------
    >>> import numpy as np
    >>> from l0.calibration import calibrate
    >>> M = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
    >>> result = calibrate(M, [3.0, 3.0], progress=False)
    >>> round(result.max_error, 6), result.per_target().shape
    (0.0, (2, 5))
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
    epochs: int
    history: Any
    target_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

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
    def max_error(self) -> float:
        """Largest absolute relative error over the targets."""
        return float(np.abs(self.relative_errors).max())

    @property
    def mean_error(self) -> float:
        """Mean absolute relative error over the targets."""
        return float(np.abs(self.relative_errors).mean())

    @property
    def g_weights(self) -> np.ndarray:
        """Ratios ``w / d`` (0 for dropped records)."""
        return diagnostics.g_weights(self.weights, self.design_weights)

    def per_target(self) -> Any:
        """A pandas DataFrame with one row per target: total, estimate, errors, within band."""
        import pandas as pd

        index = pd.Index(
            self.target_names if self.target_names is not None else range(len(self.targets)),
            name="target",
        )
        return pd.DataFrame(
            {
                "target": self.targets,
                "estimate": self.estimates,
                "error": self.estimates - self.targets,
                "relative_error": self.relative_errors,
                "tolerance": self.tolerance,
            },
            index=index,
        )

    def summary(self) -> str:
        """A few lines for a log: fit, records kept, ESS and why the fit stopped."""
        return (
            f"{self.method} calibration: {len(self.targets)} targets, {self.n_active} of "
            f"{len(self.weights)} records kept\n"
            f"  relative error: mean {self.mean_error:.3e}, max {self.max_error:.3e}\n"
            f"  ESS {self.ess:.1f}, design effect {self.design_effect:.3f}\n"
            f"  {self.epochs} epochs; {self.message}"
        )

    def __repr__(self) -> str:
        return (
            f"CalibrationResult(method={self.method!r}, n_active={self.n_active}, "
            f"max_error={self.max_error:.3e}, ess={self.ess:.1f})"
        )
