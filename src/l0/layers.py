"""The 0.6.x path of the gated layers: a re-export file over :mod:`l0.nn.layers`, :mod:`l0.nn.conv`."""

from .nn.conv import L0Conv2d, L0DepthwiseConv2d
from .nn.layers import L0Linear, SparseMLP, prune_model

__all__ = ["L0Linear", "L0Conv2d", "L0DepthwiseConv2d", "SparseMLP", "prune_model"]
