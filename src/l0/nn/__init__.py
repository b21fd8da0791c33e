"""Network sparsification with Hard Concrete gates: gates, gate sites, penalties, controllers,
compute costs and export.

Every gated module — the layers (:class:`L0Linear`, :class:`L0Conv2d`,
:class:`L0DepthwiseConv2d`) and any tensor gated by :func:`l0_gate` — is a :class:`GateSite`: its
gate, the masks it puts on a weight and a bias, the units it covers and its plain (exported)
form. Penalties, statistics, costs and export read only that protocol (:func:`gate_sites`,
:func:`site_of`), so a new gate structure is one class.
"""

from .compute import ComputeCost
from .conv import L0Conv2d, L0DepthwiseConv2d
from .costs import layer_costs
from .export import export
from .fused import FusedGates, fuse_gates
from .gates import HardConcrete, L0Gate, gate_parameters, split_parameters
from .layers import L0Linear, SparseMLP, prune_model
from .parametrize import L0Parametrization, l0_gate, remove_gates
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
    anneal,
    update_temperatures,
)
from .sites import GateSite, gate_sites, site_of
from .sparse import SparseL0Linear

__all__ = [
    "HardConcrete",
    "L0Gate",
    "gate_parameters",
    "split_parameters",
    "L0Linear",
    "L0Conv2d",
    "L0DepthwiseConv2d",
    "SparseMLP",
    "SparseL0Linear",
    "prune_model",
    "l0_gate",
    "remove_gates",
    "L0Parametrization",
    "GateSite",
    "gate_sites",
    "site_of",
    "fuse_gates",
    "FusedGates",
    "export",
    "layer_costs",
    "ComputeCost",
    "compute_l0_penalty",
    "compute_l2_penalty",
    "compute_l0l2_penalty",
    "get_sparsity_stats",
    "get_active_parameter_count",
    "PenaltyTracker",
    "anneal",
    "TemperatureScheduler",
    "update_temperatures",
    "SparsityController",
    "BudgetController",
]
