"""Calibration: non-negative weights ``w``, most of them exactly zero if asked, with ``M @ w ≈ y``.

* :func:`calibrate` — one front for every method: ``"l0"`` (select, then refit, under a record
  budget or an L0 strength), ``"exact"`` (the HiGHS vertex), ``"linear"``, ``"raking"``,
  ``"logit"`` (classical calibration); one :class:`CalibrationResult` with diagnostics.
* :func:`frontier` — budgets → a table of records kept, errors and effective sample size.
* :class:`SparseCalibrationWeights` — the l0-python 0.6.x estimator, drop-in, on the same engine.
* :class:`SparseCalibrator` — calibration as a scikit-learn estimator (``X``: targets × records),
  importable once scikit-learn is installed.
"""

from ._calibrate import METHODS, calibrate
from ._legacy import SparseCalibrationWeights
from ._problem import LOSSES, CalibrationProblem, build_problem
from ._solvers._engine import DivergenceError
from .frontier import frontier
from .options import ClassicalOptions, ExactOptions, L0Options
from .result import STATUSES, CalibrationResult


def __getattr__(name: str):  # noqa: ANN202 - scikit-learn is optional: import on first use
    if name == "SparseCalibrator":
        from .estimator import SparseCalibrator

        return SparseCalibrator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "calibrate",
    "frontier",
    "SparseCalibrationWeights",
    "CalibrationResult",
    "CalibrationProblem",
    "build_problem",
    "L0Options",
    "ExactOptions",
    "ClassicalOptions",
    "DivergenceError",
    "METHODS",
    "LOSSES",
    "STATUSES",
]
