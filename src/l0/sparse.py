"""The 0.6.x path of ``SparseL0Linear``: a re-export file over :mod:`l0.nn.sparse`."""

from .nn.sparse import SparseL0Linear

__all__ = ["SparseL0Linear"]
