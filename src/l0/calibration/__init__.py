"""Sparse survey calibration: non-negative weights, most of them exactly zero, with ``M @ w ≈ y``.

* :func:`calibrate` — the front: validated problem, L0 gate training with analytic gradients,
  refit of the kept records, a :class:`CalibrationResult` with diagnostics.
* :class:`SparseCalibrationWeights` — the l0-python 0.6.x estimator, drop-in, on the same engine.
"""

from ._calibrate import METHODS, calibrate
from ._gradient import DivergenceError
from ._legacy import SparseCalibrationWeights
from ._problem import LOSSES, CalibrationProblem, build_problem
from .result import CalibrationResult

__all__ = [
    "calibrate",
    "SparseCalibrationWeights",
    "CalibrationResult",
    "CalibrationProblem",
    "build_problem",
    "DivergenceError",
    "METHODS",
    "LOSSES",
]
