"""The 0.6.x path of the gates: ``from l0.gates import L0Gate, SampleGate, ...``.

A re-export file: the gate modules live in :mod:`l0.nn.gates`, the selection gates in
:mod:`l0.selection`.
"""

from .nn.gates import HardConcrete, L0Gate
from .selection import FeatureGate, HybridGate, SampleGate

__all__ = ["HardConcrete", "L0Gate", "SampleGate", "FeatureGate", "HybridGate"]
