"""L0 regularization with Hard Concrete gates (Louizos, Welling & Kingma 2017).

Sparse survey calibration, neural-network sparsification and learned selection, built on one
Hard Concrete core (:mod:`l0.functional`). The names below are those of l0-python 0.6.x plus the
new ones; see the README for a tour.
"""

from . import diagnostics, functional, nn
from ._distribution import HardConcreteDistribution
from .calibration import CalibrationResult, SparseCalibrationWeights, calibrate
from .nn import (
    BudgetController,
    ComputeCost,
    FusedGates,
    HardConcrete,
    L0Conv2d,
    L0DepthwiseConv2d,
    L0Gate,
    L0Linear,
    PenaltyTracker,
    SparseL0Linear,
    SparseMLP,
    SparsityController,
    TemperatureScheduler,
    compute_l0_penalty,
    compute_l0l2_penalty,
    compute_l2_penalty,
    export,
    fuse_gates,
    gate_parameters,
    get_active_parameter_count,
    get_sparsity_stats,
    l0_gate,
    layer_costs,
    prune_model,
    remove_gates,
    split_parameters,
    update_temperatures,
)
from .selection import FeatureGate, HybridGate, SampleGate

__version__ = "0.7.0.dev0"

__all__ = [
    # core
    "functional",
    "nn",
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
    "gate_parameters",
    "split_parameters",
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
