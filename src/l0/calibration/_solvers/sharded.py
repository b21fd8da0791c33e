"""``method="l0"`` on records sharded over processes (:class:`~l0.calibration.shards.ColumnShards`).

Every rank holds a contiguous block of records: its columns of ``M``, design weights, log-ratios,
gate logits and Adam state. The selection is the Hard Concrete gates (the LP vertex needs the
whole matrix in one process), run by the same code as one process
(:func:`.l0.gates_candidate`) on a problem whose sums run over the ranks: an epoch sums the Q
estimates and then the expected and open counts; the noise of record ``i`` is keyed by its
global index (:class:`._noise.BlockNoise`), so any number of ranks trains the same gates. The
top-k cut and the repair's pricing gather each rank's best candidates; the minimum-distance refit
solves its Newton systems by conjugate gradients (one Q-length sum per iteration); the least-loss
refit runs the same L-BFGS-B on every rank over the gathered support vector. The weights are
gathered once, at the end, into one :class:`~l0.calibration.CalibrationResult` (on every rank, or
on rank 0).
"""

from __future__ import annotations

import secrets
import time

from ..._validation import fail
from .._problem import CalibrationProblem
from ..options import L0Options
from ..result import CalibrationResult
from ._noise import BlockNoise
from .l0 import gates_candidate, with_error_band

__all__ = ["solve_l0_sharded"]


def solve_l0_sharded(problem: CalibrationProblem, opts: L0Options) -> CalibrationResult | None:
    start = time.perf_counter()
    shards = problem.shards
    comm = shards.comm
    n, k = problem.n_total, opts.max_records
    if k is not None and k > n:
        raise fail("max_records", f"an int in [1, {n}] (at most the number of records)", k)
    if opts.device.type != "cpu":
        raise fail("device", "'cpu' for a sharded calibration (gloo; GPUs are not supported yet)",
                   str(opts.device))
    if problem.loss == "max":
        raise fail("loss", "'relative', 'absolute' or 'capped' for a sharded calibration (the "
                   "'max' loss refits by a linear program in one process)", "max")
    problem = with_error_band(problem, opts.target_error)
    seed = opts.seed if opts.seed is not None else comm.broadcast(secrets.randbits(63))
    ratios, info, engine, loop = gates_candidate(
        problem, opts, k, noise=BlockNoise(seed, shards.offset, shards.n_local))
    info.update(selection="gates (sharded)", ranks=comm.world)
    weights = ratios * problem.design
    estimates = problem.estimate(weights)
    info["communication"] = {"reductions": comm.calls, "floats_reduced": comm.floats}
    root_only = opts.result_on == "root"
    all_weights = comm.gather(weights, root_only=root_only)
    all_design = comm.gather(problem.design, root_only=root_only)
    if all_weights is None:
        return None
    import pandas as pd

    return CalibrationResult.build(
        problem, all_weights, method="l0", converged=loop.state.converged,
        message=f"{loop.state.reason}; support from the gates on {comm.world} rank(s)",
        epochs=engine.epoch, history=pd.DataFrame(loop.state.history), info=info,
        seconds=time.perf_counter() - start, estimates=estimates, design=all_design)
