"""The 0.6.x path of the gated layers: a re-export file over :mod:`l0.nn.layers`."""

from .nn.layers import L0Conv2d, L0DepthwiseConv2d, L0Linear, SparseMLP, prune_model

__all__ = ["L0Linear", "L0Conv2d", "L0DepthwiseConv2d", "SparseMLP", "prune_model"]
