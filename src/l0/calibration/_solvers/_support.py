"""A support as the least-loss refit sees it: one vector of ratios, whoever holds the records.

:func:`~.refit.polish` optimises the ratios of the kept records with scipy's L-BFGS-B. Every
rank runs the same L-BFGS-B on the *whole* support's vector (every rank's kept records in rank
order, gathered once), and the view turns each evaluation into this rank's share: its slice of
the vector times its columns, summed over the ranks (Q floats), and its slice of the gradient,
gathered (k floats). Every rank sees the same numbers, so every rank takes the same steps; ``M``
itself never moves. In a world of one the slice is the whole vector and the sums and gathers
return their input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .._problem import CalibrationProblem

__all__ = ["SupportView"]


class SupportView:
    """The kept records ``support`` (this rank's local indices) of ``problem`` as one vector;
    this rank owns the slice ``[start, stop)`` of it."""

    def __init__(self, problem: CalibrationProblem, backend: Any, support: np.ndarray) -> None:
        self.problem, self.support = problem, support
        self.comm = problem.shards.comm
        self.sub = backend.columns(support)
        self.device = getattr(self.sub, "device", torch.device("cpu"))
        sizes = self.comm.sizes(len(support))
        self.start = sum(sizes[: self.comm.rank])
        self.stop = self.start + len(support)
        self.design = self.comm.gather(problem.design[support])  # of the whole support vector
        self.total_design = self.comm.total(float(problem.design.sum()))[0]

    @property
    def size(self) -> int:
        """The length of the support vector (every rank's kept records)."""
        return len(self.design)

    def whole(self, local: np.ndarray) -> np.ndarray:
        """This rank's values on the support → the whole support vector."""
        return self.comm.gather(local)

    def mine(self, values: np.ndarray) -> np.ndarray:
        """The whole support vector → this rank's part of it."""
        return values[self.start: self.stop]

    def estimates(self, weights: np.ndarray) -> torch.Tensor:
        """``M_S @ w_S`` (every target) for the whole support vector ``w_S``."""
        w = torch.as_tensor(self.mine(weights), dtype=torch.float64, device=self.device)
        return self.comm.sum_tensor(self.sub.matvec(w).cpu())[0]

    def pull(self, grad_estimates: torch.Tensor) -> np.ndarray:
        """``M_Sᵀ g`` for a target-length ``g``: the whole support vector."""
        return self.whole(self.sub.rmatvec(grad_estimates.to(self.device)).cpu().numpy())

    def squared_row_norms(self, scale: np.ndarray, column_scale: np.ndarray) -> np.ndarray:
        """``Σ_j (M_ij / scale_i · column_scale_j)²`` over the support, entry by entry (1e300
        totals do not overflow)."""
        squared = sp.csr_array(sp.diags_array(1.0 / scale) @ self.problem.M[:, self.support]
                               @ sp.diags_array(self.mine(column_scale)))
        squared.data = squared.data**2
        return self.comm.sum(squared @ np.ones(len(self.support)))

    def ratios(self, x: np.ndarray) -> np.ndarray:
        """The whole support vector of ratios → this rank's ratio of every record."""
        out = np.zeros(self.problem.n_records)
        out[self.support] = self.mine(x)
        return out
