"""``method="l0"`` on records sharded over processes (:class:`~l0.calibration.shards.ColumnShards`).

Every rank holds a contiguous block of records: its columns of ``M``, design weights, log-ratios,
gate logits and Adam state. The selection is the Hard Concrete gates (the LP vertex needs the
whole matrix in one process): an epoch sums the Q estimates (and the expected count) and the
open count over the ranks; the noise of record ``i`` is keyed by its global index
(:class:`._noise.BlockNoise`), so any number of ranks trains the same gates. The support's top-k
cut gathers each rank's k best logits; the minimum-distance refit solves its Newton systems by
conjugate gradients with one Q-length reduction per iteration. The weights are gathered once, at
the end, into one :class:`~l0.calibration.CalibrationResult` (on every rank, or on rank 0).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from typing import Any

import numpy as np

from ..._validation import fail
from .._problem import CalibrationProblem
from ..options import L0Options
from ..result import CalibrationResult
from ._noise import BlockNoise
from .l0 import gate_support, train_gates
from .refit import refit_on_support

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
    if opts.target_error is not None:
        band = opts.target_error
        if problem.loss == "absolute":
            band = band * np.maximum(np.abs(problem.y), problem.relative_floor)
        problem = replace(problem, tolerance=np.maximum(problem.tolerance, band))
    seed = opts.seed if opts.seed is not None else comm.broadcast(secrets.randbits(63))
    noise = BlockNoise(seed, shards.offset, shards.n_local)
    calls, floats, trained = comm.calls, comm.floats, time.perf_counter()
    engine, loop = train_gates(problem, opts, k, noise=noise)
    training = {"seconds": time.perf_counter() - trained, "epochs": engine.epoch,
                "reductions": comm.calls - calls, "floats_reduced": comm.floats - floats}
    support = gate_support(engine, k)
    gate_ratios = (engine.open_weights() * engine.deterministic_gates()).numpy() / problem.design
    low, high = problem.bounds
    info: dict[str, Any] = {"selection": "gates (sharded)", "ranks": comm.world,
                            "support_before_refit": int(comm.total(len(support))[0])}
    ratios = None
    if opts.refit:
        ratios, _ = refit_on_support(problem, support, opts.refit_distance)
        info["refit"] = "minimum distance" if ratios is not None else (
            "none: the support cannot meet every target exactly within the bounds (the "
            "least-loss refit runs in one process only)")
    else:
        info["refit"] = "none"
    if ratios is None:
        ratios = np.zeros(problem.n_records)
        ratios[support] = np.clip(gate_ratios[support], low, high)
    weights = ratios * problem.design
    estimates = problem.estimate(weights)
    info["training"] = training
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
