"""The two matrix-vector products, ``M @ x`` and ``M.T @ r``: the only O(nnz) work of an epoch.

Both back-ends take and return float64 torch tensors, so the objective and the optimiser above
them are written once.

* :class:`ScipyBackend` (CPU): one copy of the matrix in scipy. When there are many more records
  than targets, compressed *columns* make both products stream the matrix once while gathering
  from or scattering into the short target vector that stays in cache: faster than compressed
  rows at a million records, for the same bytes (figures in ``docs/benchmarks.md``). Tensors
  cross with zero-copy ``torch.from_numpy``.
* :class:`TorchBackend` (any torch device, e.g. CUDA): torch CSR tensors of ``M`` and ``M.T``.

Both satisfy :class:`Backend`, the protocol the gate engine and the least-loss refit are written
against. A sharded problem uses the same back-ends on its rank's block; the sums over the ranks
are the problem's (``CalibrationProblem.total``) and the engine's, not the back-end's.
"""

from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .._validation import check_choice

__all__ = ["Backend", "ScipyBackend", "TorchBackend", "make_backend", "BACKENDS"]

BACKENDS = ("auto", "scipy", "torch")
_COLUMN_LAYOUT_FROM = 1 << 16  # records; below this the record vector fits in cache anyway


class Backend(Protocol):
    """The matrix products of a calibration: all that the gate engine needs of ``M``."""

    shape: tuple[int, int]
    device: torch.device

    def matvec(self, x: Tensor) -> Tensor:
        """``M @ x`` for a float64 vector of record values on ``device``."""

    def rmatvec(self, r: Tensor) -> Tensor:
        """``M.T @ r`` for a float64 vector of target values on ``device``."""

    def columns(self, index: np.ndarray) -> Backend:
        """The back-end of the sub-matrix of the given records (columns)."""


class ScipyBackend:
    """Products with one scipy copy of ``M`` (CSR for few records, CSC for many)."""

    device = torch.device("cpu")

    def __init__(self, M: sp.csr_array) -> None:
        self.shape = M.shape
        self.matrix = M.tocsc() if M.shape[1] >= _COLUMN_LAYOUT_FROM else M
        self.matrix_t = self.matrix.T

    def matvec(self, x: Tensor) -> Tensor:
        return torch.from_numpy(self.matrix @ x.numpy())

    def rmatvec(self, r: Tensor) -> Tensor:
        return torch.from_numpy(self.matrix_t @ r.numpy())

    def columns(self, index: np.ndarray) -> ScipyBackend:
        """A back-end for the sub-matrix of the given columns."""
        return ScipyBackend(sp.csr_array(self.matrix[:, index]))


def _torch_csr(M: sp.csr_array, device: torch.device) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(M.indptr.astype(np.int64)),
            torch.from_numpy(M.indices.astype(np.int64)),
            torch.from_numpy(M.data),
            M.shape,
            dtype=torch.float64,
            device=device,
        )


class TorchBackend:
    """Products with torch CSR tensors of ``M`` and its transpose on ``device``."""

    def __init__(self, M: sp.csr_array, device: torch.device | str = "cpu") -> None:
        self.shape = M.shape
        self.device = torch.device(device)
        self._source = M
        self.matrix = _torch_csr(M, self.device)
        self.matrix_t = _torch_csr(sp.csr_array(M.T), self.device)

    def matvec(self, x: Tensor) -> Tensor:
        return torch.mv(self.matrix, x)

    def rmatvec(self, r: Tensor) -> Tensor:
        return torch.mv(self.matrix_t, r)

    def columns(self, index: np.ndarray) -> TorchBackend:
        return TorchBackend(sp.csr_array(self._source[:, index]), self.device)


def make_backend(M: sp.csr_array, device: torch.device | str = "cpu",
                 backend: str = "auto") -> Backend:
    """The back-end for ``device``: scipy on CPU, torch elsewhere, unless ``backend`` forces one."""
    backend = check_choice("backend", backend, BACKENDS)
    device = torch.device(device)
    if backend == "scipy" and device.type != "cpu":
        raise ValueError(f"`backend` must be 'torch' or 'auto' on device {device}; got 'scipy'.")
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        return TorchBackend(M, device)
    return ScipyBackend(M)
