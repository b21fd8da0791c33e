"""Reductions over record shards: the only communication of a distributed calibration.

A calibration split by records needs three collective operations, all on ``torch.distributed``:
sums of target-length vectors (estimates, with a few scalars packed behind them), a gather of
each rank's small candidate lists (the top-k cut of the support), and the final gather of the
weights. :class:`Communicator` wraps them and counts what crosses the wire (``calls``,
``floats``) for the benchmark; with one process (``torch.distributed`` not initialised) every
operation is the identity, so the same code runs on one process or many.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["Communicator", "ShardLayout", "communicator"]


class Communicator:
    """Sum, gather and broadcast across the ranks of the default process group (or none)."""

    def __init__(self, distributed: bool) -> None:
        if distributed:
            import torch.distributed as dist

            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            self._dist = dist
        else:
            self.rank, self.world = 0, 1
        self.calls = 0  # sums (all-reduces) so far
        self.floats = 0  # floats summed so far (their count, not bytes)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``values`` over the ranks (a new float64 array)."""
        out = np.array(values, dtype=np.float64, copy=True)
        if self.world > 1:
            tensor = torch.from_numpy(out)
            self._dist.all_reduce(tensor)
            self.calls += 1
            self.floats += out.size
        return out

    def sum_with(self, vector: np.ndarray, *scalars: float) -> tuple[np.ndarray, list[float]]:
        """Sum a vector and a few scalars in one reduction."""
        packed = self.sum(np.concatenate([np.asarray(vector, dtype=np.float64).ravel(),
                                          np.asarray(scalars, dtype=np.float64)]))
        n = packed.size - len(scalars)
        return packed[:n], [float(s) for s in packed[n:]]

    def sum_tensor(self, values: torch.Tensor, *scalars: float) -> tuple[torch.Tensor, list[float]]:
        """A tensor (on any device) and a few scalars summed over the ranks in one reduction;
        with one process the tensor itself, with no copy and no trip to the CPU."""
        if self.world == 1:
            return values, list(scalars)
        summed, totals = self.sum_with(values.cpu().numpy(), *scalars)
        return torch.from_numpy(summed).to(values.device), totals

    def total(self, *scalars: float) -> list[float]:
        """Sums of scalars over the ranks, in one reduction."""
        if self.world == 1:
            return [float(s) for s in scalars]
        return [float(s) for s in self.sum(np.asarray(scalars, dtype=np.float64))]

    def gather(self, values: np.ndarray, *, root_only: bool = False) -> np.ndarray | None:
        """Every rank's 1-D array, concatenated in rank order — on every rank, or on rank 0
        only (``root_only``: the other ranks get None)."""
        values = np.ascontiguousarray(values)
        if self.world == 1:
            return values.copy()
        if not values.flags.writeable:  # torch.from_numpy wants a writable array
            values = values.copy()
        sizes = self.sizes(values.size)
        padded = torch.zeros(max(sizes), dtype=torch.from_numpy(np.empty(0, values.dtype)).dtype)
        padded[: values.size] = torch.from_numpy(values)
        if root_only:
            parts = [torch.empty_like(padded) for _ in range(self.world)] if self.rank == 0 \
                else None
            self._dist.gather(padded, parts, dst=0)
            if self.rank != 0:
                return None
        else:
            parts = [torch.empty_like(padded) for _ in range(self.world)]
            self._dist.all_gather(parts, padded)
        return np.concatenate([p[:s].numpy() for p, s in zip(parts, sizes, strict=True)])

    def agree(self, error: BaseException | None) -> None:
        """Raise on every rank if any rank failed a local step (so none waits in a collective
        the failing rank will never reach): a rank's own error, or a ``ValueError`` quoting the
        first failing rank's message."""
        if self.world == 1:
            if error is not None:
                raise error
            return
        messages: list[str | None] = [None] * self.world
        text = None if error is None else f"{type(error).__name__}: {error}"
        self._dist.all_gather_object(messages, text)
        if error is not None:
            raise error
        for rank, message in enumerate(messages):
            if message is not None:
                raise ValueError(f"rank {rank} of {self.world} failed: {message}")

    def broadcast(self, value: object) -> object:
        """Rank 0's ``value`` on every rank (a small picklable object)."""
        if self.world == 1:
            return value
        box = [value]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def sizes(self, n: int) -> list[int]:
        """Every rank's ``n``, in rank order."""
        if self.world == 1:
            return [int(n)]
        out = [None] * self.world
        self._dist.all_gather_object(out, int(n))
        return [int(v) for v in out]


def communicator() -> Communicator:
    """The communicator of the default process group if one is initialised, else one process."""
    import torch.distributed as dist

    return Communicator(dist.is_available() and dist.is_initialized())


class ShardLayout:
    """Where a rank's records sit: global index ``offset`` onwards, ``n_total`` records overall.

    Every problem has one. A whole matrix in one process is :meth:`whole` (a world of one, the
    identity :class:`Communicator`). ``sharded`` says the records came as
    :class:`~l0.calibration.shards.ColumnShards`: then the answer must not depend on how they
    are split — the gates draw their noise by global record index, the minimum-distance refit
    never forms its Newton systems, nothing needs the whole matrix, checkpoints are one file per
    rank — and that holds in a world of one too (the same answer as on any number of ranks).
    """

    def __init__(self, comm: Communicator, offset: int, n_local: int, n_total: int, *,
                 sharded: bool = True) -> None:
        self.comm, self.offset, self.n_local, self.n_total = comm, offset, n_local, n_total
        self.sharded = sharded

    @classmethod
    def whole(cls, n_records: int) -> ShardLayout:
        """Every record in this process, on a world of one (whatever process group exists)."""
        return cls(Communicator(False), 0, n_records, n_records, sharded=False)

    def smallest(self, index: np.ndarray, score: np.ndarray, count: int) -> np.ndarray:
        """Of every rank's candidates (sorted local ``index``, ``score[i]`` that of
        ``index[i]``), the ``count`` of smallest score over all ranks, ties to the lower global
        index: this rank's among them, as sorted local indices. Each rank offers at most
        ``count``; O(count · ranks) numbers move."""
        order = np.argsort(score, kind="stable")[:count]
        offered = self.comm.gather(score[order])
        where = self.comm.gather(index[order] + self.offset)
        chosen = where[np.lexsort((where, offered))[:count]]
        mine = chosen[(chosen >= self.offset) & (chosen < self.offset + self.n_local)]
        return np.sort(mine - self.offset)

    def __repr__(self) -> str:
        return (f"ShardLayout(rank={self.comm.rank}, world={self.comm.world}, "
                f"offset={self.offset}, n_local={self.n_local}, n_total={self.n_total}, "
                f"sharded={self.sharded})")
