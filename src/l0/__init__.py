"""L0 regularization with Hard Concrete gates (Louizos, Welling & Kingma 2017).

Sparse survey calibration, neural-network sparsification and learned selection, built on one
Hard Concrete core (:mod:`l0.functional`). The names below are those of l0-python 0.6.x plus the
new ones; see the README for a tour.
"""

from . import diagnostics, functional
from .calibration import CalibrationResult, SparseCalibrationWeights, calibrate
from .compute import ComputeCost
from .costs import layer_costs
from .distributions import HardConcreteDistribution
from .export import export
from .fused import FusedGates, fuse_gates
from .gates import HardConcrete, L0Gate
from .layers import L0Conv2d, L0DepthwiseConv2d, L0Linear, SparseMLP, prune_model
from .parametrize import l0_gate, remove_gates
from .penalties import (
    PenaltyTracker,
    compute_l0_penalty,
    compute_l0l2_penalty,
    compute_l2_penalty,
    get_active_parameter_count,
    get_sparsity_stats,
)
from .schedules import (
    BudgetController,
    SparsityController,
    TemperatureScheduler,
    update_temperatures,
)
from .selection import FeatureGate, HybridGate, SampleGate
from .sparse import SparseL0Linear

__version__ = "0.7.0.dev0"

__all__ = [
    # core
    "functional",
    "HardConcrete",
    "HardConcreteDistribution",
    "L0Gate",
    # calibration
    "SparseCalibrationWeights",
    "calibrate",
    "CalibrationResult",
    "diagnostics",
    # layers
    "L0Linear",
    "L0Conv2d",
    "L0DepthwiseConv2d",
    "SparseMLP",
    "prune_model",
    "l0_gate",
    "export",
    "layer_costs",
    "ComputeCost",
    "remove_gates",
    "fuse_gates",
    "FusedGates",
    "SparseL0Linear",
    # selection
    "SampleGate",
    "FeatureGate",
    "HybridGate",
    # penalties and schedules
    "compute_l0_penalty",
    "compute_l2_penalty",
    "compute_l0l2_penalty",
    "get_sparsity_stats",
    "get_active_parameter_count",
    "PenaltyTracker",
    "TemperatureScheduler",
    "update_temperatures",
    "SparsityController",
    "BudgetController",
]
