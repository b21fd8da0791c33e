"""``ColumnShards``: the records (columns) of ``M`` split over processes, loaded block by block.

Pass a ``ColumnShards`` as ``M`` to :func:`~l0.calibration.calibrate` from every process of a
``torch.distributed`` job (e.g. ``torchrun --nproc_per_node=N script.py``): each rank loads only
its contiguous block of records — never the whole matrix — and ``method="l0"`` runs with the
work split by records and O(Q) communication per epoch. Without an initialised process group the
same call runs in one process with the same algorithm (and the same answer).

Three sources:

* :meth:`ColumnShards.from_files` — a list of column-block files written by
  ``scipy.sparse.save_npz`` (COO, CSR or CSC; all with the same rows), in record order; the
  files are dealt to the ranks in contiguous runs of about equal numbers of records.
* :meth:`ColumnShards.from_callable` — ``loader(rank, world)`` returns the rank's block; blocks
  follow rank order.
* :meth:`ColumnShards.from_matrix` — a whole matrix that every rank holds, each using its slice
  (for tests and for problems that fit anyway).
"""

from __future__ import annotations

import atexit
import os
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import fail
from ._comm import Communicator, ShardLayout, communicator
from ._matrix import as_csr

__all__ = ["ColumnShards", "init_distributed"]


class ColumnShards:
    """Where each process finds its block of records; build with a ``from_*`` class method."""

    def __init__(self, kind: str, source: Any) -> None:
        self.kind, self.source = kind, source

    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike]) -> ColumnShards:
        """Column blocks in ``.npz`` files (``scipy.sparse.save_npz``), in record order."""
        if isinstance(paths, (str, bytes, os.PathLike)) or not hasattr(paths, "__len__"):
            raise fail("paths", "a list of .npz files (one column block each)", paths, TypeError)
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise fail("paths", "at least one .npz file", "an empty list")
        return cls("files", paths)

    @classmethod
    def from_callable(cls, loader: Callable[[int, int], Any]) -> ColumnShards:
        """``loader(rank, world)`` → that rank's block (any matrix :func:`calibrate` accepts)."""
        if not callable(loader):
            raise fail("loader", "a callable (rank, world) -> matrix block", loader, TypeError)
        return cls("callable", loader)

    @classmethod
    def from_matrix(cls, M: Any) -> ColumnShards:
        """A whole matrix; each rank keeps an even, contiguous slice of its columns."""
        return cls("matrix", as_csr(M, "M"))

    def __repr__(self) -> str:
        count = len(self.source) if self.kind == "files" else None
        return f"ColumnShards({self.kind}{'' if count is None else f', {count} files'})"

    # ------------------------------------------------------------------ loading
    def load(self, comm: Communicator | None = None) -> tuple[sp.csr_array, ShardLayout]:
        """This rank's block (CSR, float64, finite) and where it sits among all records."""
        comm = comm or communicator()
        block, error = None, None
        try:
            block = self._local_block(comm)
        except Exception as exc:  # every rank must learn of it before the next collective
            error = exc
        comm.agree(error)
        rows = comm.sizes(block.shape[0])
        if len(set(rows)) != 1:
            raise ValueError(f"Every block must have the same rows (targets); the ranks' blocks "
                             f"have {rows} rows.")
        sizes = comm.sizes(block.shape[1])
        offset = sum(sizes[: comm.rank])
        return block, ShardLayout(comm, offset, block.shape[1], sum(sizes))

    def _local_block(self, comm: Communicator) -> sp.csr_array:
        if self.kind == "files":
            return self._load_files(comm)
        if self.kind == "callable":
            return as_csr(self.source(comm.rank, comm.world), f"loader({comm.rank}, "
                          f"{comm.world})", allow_no_columns=True)
        bounds = _even_bounds(self.source.shape[1], comm.world)
        return sp.csr_array(self.source[:, bounds[comm.rank]: bounds[comm.rank + 1]])

    def _load_files(self, comm: Communicator) -> sp.csr_array:
        shapes = [_npz_shape(path) for path in self.source]
        rows = {shape[0] for shape in shapes}
        if len(rows) != 1:
            raise ValueError(f"Every column-block file must have the same rows (targets); got "
                             f"{sorted(rows)} among {len(shapes)} files.")
        columns = np.array([shape[1] for shape in shapes])
        first, last = _file_runs(columns, comm.world)[comm.rank]
        mine = self.source[first:last]
        n_rows = rows.pop()
        if not mine:
            return sp.csr_array((n_rows, 0))
        return as_csr(_rows_of_blocks(mine, n_rows, columns[first:last]),
                      f"the blocks of {mine[0]!r}..", allow_no_columns=True)


def _row_sorted(path: str) -> sp.coo_array:
    """A block's entries, duplicates summed, sorted by row then column."""
    block = sp.csr_array(sp.load_npz(path))
    block.sum_duplicates()
    return block.tocoo()


def _rows_of_blocks(paths: list[str], n_rows: int, widths: np.ndarray) -> sp.csr_array:
    """The CSR matrix of column blocks side by side, written straight into its final arrays:
    one pass counts each row's entries, a second copies each block's rows into place (blocks
    come in column order, so every row's columns stay sorted). Peak memory: the matrix and one
    block — no COO of the whole, no concatenation, no sort."""
    counts = np.zeros(n_rows, dtype=np.int64)
    for path in paths:
        counts += np.bincount(_row_sorted(path).row, minlength=n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    nnz, n_cols = int(indptr[-1]), int(widths.sum())
    index_dtype = np.int32 if max(nnz, n_cols) < np.iinfo(np.int32).max else np.int64
    indices = np.empty(nnz, dtype=index_dtype)
    data = np.empty(nnz, dtype=np.float64)
    fill = indptr[:-1].copy()
    offset = 0
    for path, width in zip(paths, widths, strict=True):
        block = _row_sorted(path)
        per_row = np.bincount(block.row, minlength=n_rows)
        first = np.cumsum(per_row) - per_row  # where each row starts within the block
        at = fill[block.row] + (np.arange(block.nnz) - first[block.row])
        indices[at] = block.col + offset
        data[at] = block.data
        fill += per_row
        offset += int(width)
    M = sp.csr_array((data, indices, indptr.astype(index_dtype)), shape=(n_rows, n_cols))
    M.has_sorted_indices = True
    return M


def _even_bounds(n: int, world: int) -> list[int]:
    return [n * r // world for r in range(world + 1)]


def _file_runs(columns: np.ndarray, world: int) -> list[tuple[int, int]]:
    """Contiguous runs of files, one per rank, with about ``sum / world`` records each."""
    boundaries = np.concatenate([[0], np.cumsum(columns)])  # records before each file
    targets = boundaries[-1] * np.arange(world + 1) / world
    cuts = np.abs(boundaries[None, :] - targets[:, None]).argmin(axis=1)  # nearest boundary
    cuts[0], cuts[-1] = 0, len(columns)
    cuts = np.maximum.accumulate(cuts)
    return [(int(cuts[r]), int(cuts[r + 1])) for r in range(world)]


def _npz_shape(path: str) -> tuple[int, int]:
    """The shape stored in a ``save_npz`` file, read without loading its arrays."""
    if not os.path.isfile(path):
        raise ValueError(f"Column-block file {path!r} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            shape = tuple(int(v) for v in archive["shape"])
            archive["format"]  # noqa: B018 - a save_npz file names its format
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"Column-block file {path!r} is not a scipy.sparse.save_npz file "
                         f"({type(exc).__name__}: {exc}).") from None
    if len(shape) != 2:
        raise ValueError(f"Column-block file {path!r} holds shape {shape}, not a matrix.")
    return shape  # type: ignore[return-value]


def init_distributed(backend: str = "gloo", *, timeout: float = 60.0) -> Communicator:
    """Join the ``torch.distributed`` job described by the environment (``torchrun`` sets
    ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), failing with a clear error —
    not a hang — when the other ranks do not join within ``timeout`` seconds."""
    import datetime

    import torch.distributed as dist

    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if v not in os.environ]
    if missing:
        raise RuntimeError(f"init_distributed needs the torchrun environment; {missing} are not "
                           "set (launch with `torchrun --nproc_per_node=N script.py`).")
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        except Exception as exc:  # the store raises RuntimeError/DistStoreError on a timeout
            raise RuntimeError(
                f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']} could not join the "
                f"process group at {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within "
                f"{timeout:g} s ({type(exc).__name__}): another rank failed to start or the "
                "address is wrong.") from None
        # the process group this call made is taken down while the interpreter still runs: left
        # to the interpreter's own teardown, gloo's threads can abort the process after the
        # work is done ("terminate called without an active exception", exit code -6)
        atexit.register(_leave_process_group)
    return communicator()


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
