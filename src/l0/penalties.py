"""The 0.6.x path of the penalties, statistics and temperature schedules: a re-export file over
:mod:`l0.nn.penalties` and :mod:`l0.nn.schedules`."""

from .nn.penalties import (
    PenaltyTracker,
    compute_l0_penalty,
    compute_l0l2_penalty,
    compute_l2_penalty,
    get_active_parameter_count,
    get_sparsity_stats,
)
from .nn.schedules import TemperatureScheduler, update_temperatures

__all__ = [
    "compute_l0_penalty",
    "compute_l2_penalty",
    "compute_l0l2_penalty",
    "get_sparsity_stats",
    "get_active_parameter_count",
    "PenaltyTracker",
    "TemperatureScheduler",
    "update_temperatures",
]
