"""The warnings a problem gets when it is built: unreachable and conflicting targets.

The checks take arrays and a sum over the record shards (``total``), not the problem itself, so
this module depends on nothing above it. Both work on a sharded problem with O(Q)
communication: the per-row counts and fingerprints are summed over the ranks, and a record's
fingerprint key depends on its global index only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from ._matrix import row_counts
from ._warn import warn_user

__all__ = ["warn_about_targets", "column_keys"]

def warn_about_targets(M: sp.csr_array, y: np.ndarray, achievable: np.ndarray, offset: int,
                       total: Callable[[np.ndarray], np.ndarray]) -> None:
    """Warn about the targets no non-negative weights reach (``achievable`` false) and about
    two identical rows with different totals. ``M`` holds the records from global index
    ``offset`` on; ``total`` sums a fixed-size vector over the shards (the identity in one
    process). The warnings point at the first frame outside the package: the user's call."""
    unreachable = ~achievable
    if unreachable.any():
        rows = np.flatnonzero(unreachable)
        warn_user(
            f"{len(rows)} target(s) cannot be reached with non-negative weights (a row with no "
            f"entry of the target's sign), e.g. rows {rows[:5].tolist()}; they will keep an error "
            "of 100% or more.")
    _warn_about_conflicts(M, y, offset, total)


def column_keys(start: int, n: int, stream: int) -> np.ndarray:
    """A pseudo-random number in [1, 2) for each global record index ``start .. start + n - 1``
    (SplitMix64 of the index and ``stream``): the same on every rank, however records are split."""
    with np.errstate(over="ignore"):
        x = np.arange(start, start + n, dtype=np.uint64) + np.uint64(
            (stream * 0x9E3779B97F4A7C15) % (1 << 64))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return 1.0 + (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _warn_about_conflicts(M: sp.csr_array, y: np.ndarray, offset: int,
                          total: Callable[[np.ndarray], np.ndarray]) -> None:
    """Warn about two identical non-empty rows with different totals. Each row's fingerprint is
    two random projections of its entries (keyed by global record index, summed over shards):
    identical rows get identical fingerprints, stored zeros do not count, and O(Q) crosses the
    wire when the records are sharded."""
    keys = [column_keys(offset, M.shape[1], stream) for stream in (1, 2)]
    nonzeros = row_counts(M, M.data != 0)
    prints = total(np.concatenate([M @ keys[0], M @ keys[1], nonzeros]))
    q = M.shape[0]
    rows = np.flatnonzero(prints[2 * q:] > 0)
    if len(rows) < 2:
        return
    first, second = prints[:q][rows], prints[q: 2 * q][rows]
    order = np.lexsort((rows, second, first))
    same = (first[order][1:] == first[order][:-1]) & (second[order][1:] == second[order][:-1])
    for at in np.flatnonzero(same):
        j, i = rows[order[at]], rows[order[at + 1]]
        if y[j] != y[i]:
            warn_user(
                f"targets {j} and {i} have identical rows of M but different totals "
                f"({float(y[j])!r} and {float(y[i])!r}): they conflict and cannot both be met.")
            return
