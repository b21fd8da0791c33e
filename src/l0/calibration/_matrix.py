"""Turn whatever matrix a user hands us into one finite float64 scipy CSR matrix.

Accepted: any scipy sparse matrix or array, a dense numpy array, a pandas DataFrame, a torch tensor
(strided or sparse), a nested list of numbers. Anything else is a ``TypeError`` naming the
argument; NaN or inf entries are a ``ValueError`` that says where the first one is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import fail

__all__ = ["as_csr", "as_vector", "row_counts"]

_MATRIX_TYPES = ("a 2-D scipy sparse matrix, numpy array, pandas DataFrame, torch tensor or "
                 "nested list")


def _to_numpy_or_sparse(M: Any, name: str) -> Any:
    if sp.issparse(M):
        return M
    if isinstance(M, np.ndarray):
        return M
    if isinstance(M, (list, tuple)):  # nested lists of numbers, as a user types them
        try:
            return np.asarray(M, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise fail(name, "a rectangular nested list of numbers", M, TypeError) from exc
    module = type(M).__module__
    if module.startswith("pandas"):
        return M.to_numpy()
    if module.startswith("torch"):
        import torch

        if M.layout != torch.strided:
            coo = M.detach().to_sparse_coo().coalesce().cpu()
            rows, cols = coo.indices().numpy()
            return sp.csr_array((coo.values().double().numpy(), (rows, cols)), shape=tuple(coo.shape))
        return M.detach().cpu().double().numpy()
    raise fail(name, _MATRIX_TYPES, M, TypeError)


def as_csr(M: Any, name: str = "M", *, allow_no_columns: bool = False) -> sp.csr_array:
    """``M`` as a canonical float64 CSR array; no copy when it already is one.

    ``allow_no_columns``: a rank's block of a sharded matrix may hold no records.

    Raises
    ------
    TypeError
        If ``M`` is not a matrix type we read, or holds non-numeric entries.
    ValueError
        If ``M`` is not 2-D, is empty, or holds NaN or inf.
    """
    M = _to_numpy_or_sparse(M, name)
    if not sp.issparse(M):
        numeric = M.dtype == bool or np.issubdtype(M.dtype, np.number)
        if M.dtype == object or not numeric or np.iscomplexobj(M):
            raise fail(name, "a real numeric matrix", f"dtype {M.dtype}", TypeError)
        if M.ndim != 2:
            raise fail(name, _MATRIX_TYPES, f"an array with shape {M.shape}")
        M = sp.csr_array(M.astype(np.float64, copy=False))
    if M.ndim != 2:
        raise fail(name, _MATRIX_TYPES, f"a sparse array with shape {M.shape}")
    if M.dtype != bool and (np.iscomplexobj(M) or not np.issubdtype(M.dtype, np.number)):
        raise fail(name, "a real numeric matrix", f"dtype {M.dtype}", TypeError)
    if M.shape[0] == 0 or (M.shape[1] == 0 and not allow_no_columns):
        raise fail(name, "a matrix with at least one row and one column", f"shape {M.shape}")
    csr = M if (M.format == "csr" and M.dtype == np.float64) else sp.csr_array(M, dtype=np.float64)
    if not isinstance(csr, sp.csr_array):
        csr = sp.csr_array(csr)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    bad = ~np.isfinite(csr.data)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(csr.indptr, k, side="right") - 1)
        raise fail(
            name,
            "finite (no NaN or inf)",
            f"{int(bad.sum())} non-finite entries, the first {csr.data[k]} at row {row}, "
            f"column {int(csr.indices[k])}",
        )
    return csr


def as_vector(values: Any, name: str, length: int | None = None) -> np.ndarray:
    """``values`` as a finite 1-D float64 array (of ``length`` if given), or raise."""
    if isinstance(values, str) or values is None:
        raise fail(name, "a 1-D array of numbers", values, TypeError)
    module = type(values).__module__
    if module.startswith("torch"):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged input
        raise fail(name, "a 1-D array of numbers", values, TypeError) from exc
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise fail(name, "a 1-D array of numbers", f"dtype {array.dtype}", TypeError)
    if np.iscomplexobj(array):
        raise fail(name, "a 1-D array of real numbers", f"dtype {array.dtype}", TypeError)
    array = array.astype(np.float64).reshape(-1) if array.ndim == 2 and 1 in array.shape else array
    if array.ndim != 1:
        raise fail(name, "a 1-D array", f"shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise fail(name, f"of length {length}", f"length {array.shape[0]}")
    array = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise fail(
            name, "finite (no NaN or inf)", f"{int(bad.sum())} non-finite values, the first at {first}"
        )
    return array


def row_counts(M: sp.csr_array, mask: np.ndarray) -> np.ndarray:
    """How many stored entries of each row ``mask`` (one flag per stored entry) holds for
    (a running count over the entries: 4 bytes per entry, not a row index of 8)."""
    dtype = np.int32 if M.nnz < np.iinfo(np.int32).max else np.int64
    running = np.concatenate([np.zeros(1, dtype), np.cumsum(mask, dtype=dtype)])
    return (running[M.indptr[1:]] - running[M.indptr[:-1]]).astype(np.float64)
