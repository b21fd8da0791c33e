"""Calibration: non-negative weights ``w``, most of them exactly zero if asked, with ``M @ w ≈ y``.

* :func:`calibrate` — one front for every method: ``"l0"`` (select, then refit, under a record
  budget or an L0 strength), ``"exact"`` (the HiGHS vertex), ``"linear"``, ``"raking"``,
  ``"logit"`` (classical calibration); one :class:`CalibrationResult` with diagnostics.
* :func:`frontier` — budgets → a table of records kept, errors and effective sample size.
* :func:`build_targets` — a records DataFrame and margins (:class:`Count`, :class:`Total`) or a
  long targets table → :class:`Targets` (``M, y, names, groups``).
* :func:`clone_into_areas` — records cloned into areas, with area and aggregate targets →
  :class:`ClonedTargets`, whose weights map back to (record, area).
* :class:`ColumnShards` — the records split over the processes of a ``torch.distributed`` job
  (pass it as ``M``); :func:`init_distributed` joins a ``torchrun`` job with a timeout.
* :class:`SparseCalibrationWeights` — the l0-python 0.6.x estimator, drop-in, on the same engine.
* :class:`SparseCalibrator` — calibration as a scikit-learn estimator (``X``: targets × records),
  importable once scikit-learn is installed.
"""

from ._calibrate import METHODS, calibrate
from ._legacy import SparseCalibrationWeights
from ._problem import LOSSES, CalibrationProblem
from ._solvers._engine import DivergenceError
from ._spec import build_problem
from .frontier import frontier
from .geography import ClonedTargets, clone_into_areas
from .margins import Count, Total, build_targets
from .options import ClassicalOptions, ExactOptions, L0Options
from .result import STATUSES, CalibrationResult
from .shards import ColumnShards, init_distributed
from .targets import Targets


def __getattr__(name: str):  # noqa: ANN202 - scikit-learn is optional: import on first use
    if name == "SparseCalibrator":
        from .estimator import SparseCalibrator

        return SparseCalibrator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "calibrate",
    "frontier",
    "build_targets",
    "clone_into_areas",
    "Count",
    "Total",
    "Targets",
    "ClonedTargets",
    "ColumnShards",
    "init_distributed",
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
