r"""``method="l0"``: choose the records, then refit their weights (select-then-refit).

Selection:

* under a record budget ``max_records = k`` (``selection="auto"``): the capped LP vertex with the
  lowest cap that fits in ``k`` records (:mod:`.capped_vertex`) — exact by construction — when
  the problem is small enough for HiGHS; otherwise, or when no vertex fits, the Hard Concrete
  gates trained by the L0 engine (:mod:`._engine`, :mod:`._loop`) with the budget held by a
  multiplicative Lagrange multiplier. ``selection="gates"`` always trains the gates and falls
  back to the vertex only when their support cannot meet the targets.
* without a budget: the gates with the L0 strength ``lambda_l0``.
* ``target_error = ε``: a tolerance band of ε on every target; the band's LP vertex (few
  records: the L1 optimum) or, failing that, the gates trained inside the band.

Publication (:mod:`.refit`): the minimum-distance weights on the support that meet every target
exactly within ``bounds`` (the highest effective sample size the support allows under the linear
distance); when the support cannot, the least-loss weights, with records priced into the free
budget by the loss gradient (active-set pricing). Every published ratio lies within ``bounds``.

The candidates and the rule that picks one live in :mod:`.candidates`; the gates in
:mod:`.gate_selection`. One code path for any number of processes: records given as
:class:`~l0.calibration.shards.ColumnShards` (``problem.shards.sharded``, in a world of one
too) are selected by the gates alone — the vertices need the whole matrix — with noise keyed by
global record index (:class:`._noise.BlockNoise`), so any number of ranks trains the same gates;
their weights are gathered once, at the end, into one result (on every rank, or on rank 0).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

import numpy as np

from ..._validation import fail
from .._problem import CalibrationProblem
from .._warn import warn_user
from ..options import L0Options
from ..result import CalibrationResult
from ._noise import BlockNoise
from .candidates import Candidate, Contest, choose, loss_score, run, strategies
from .capped_vertex import CappedVertexSearch

__all__ = ["solve_l0", "with_error_band", "VERTEX_UP_TO_NNZ"]

VERTEX_UP_TO_NNZ = 5_000_000  # selection="auto" uses the LP vertex up to this many non-zeros


def with_error_band(problem: CalibrationProblem, target_error: float | None) -> CalibrationProblem:
    """``target_error = ε``: every target's band widened to at least ε (in the loss's units)."""
    if target_error is None:
        return problem
    band = target_error
    if problem.loss == "absolute":
        band = band * np.maximum(np.abs(problem.y), problem.relative_floor)
    return replace(problem, tolerance=np.maximum(problem.tolerance, band))


def solve_l0(problem: CalibrationProblem, opts: L0Options, *,
             search: CappedVertexSearch | None = None) -> CalibrationResult:
    """``method="l0"``: select the records (capped LP vertex, pruned vertex or Hard Concrete
    gates), then refit their weights.

    Parameters
    ----------
    problem : CalibrationProblem
    opts : L0Options
    search : CappedVertexSearch, optional
        A vertex search of this problem shared between calls (:func:`frontier`: its solved
        vertices warm-start the next budget).

    Options
    -------
    max_records, target_error, lambda_l0
        The budget: at most ``max_records`` records, every target within ``target_error``, or
        the L0 strength.
    selection : {"auto", "gates"}
        ``"auto"``: the capped vertex that fits (HiGHS on the whole matrix up to
        :data:`VERTEX_UP_TO_NNZ` non-zeros, column generation above), else the better by loss
        of the pruned vertex (whole matrix only) and the gates; ``"gates"``: the gates, the
        vertex only when their support misses a target.
    refit, refit_distance, refit_iter
        How the selected support's weights are published (:mod:`.refit`).
    lr, max_epochs, eval_every, rtol, patience, temperature, init_keep_prob, closeness, seed,
    device, backend, progress, checkpoint, checkpoint_every, resume
        The gate training (:func:`.gate_selection.train_gates`).

    Returns
    -------
    CalibrationResult
        ``info["selection"]`` names the candidate that won (``"capped vertex"``, ``"band
        vertex"``, ``"pruned vertex"``, ``"gates"``), with its refit report.
    """
    start = time.perf_counter()
    _check(problem, opts)
    problem = with_error_band(problem, opts.target_error)
    sharded = problem.shards.sharded
    use_vertex = not sharded and (opts.max_records is not None or opts.target_error is not None) \
        and (search is not None or problem.M.nnz <= VERTEX_UP_TO_NNZ)
    if not use_vertex and not sharded and opts.max_records is not None and search is None:
        # too large for HiGHS on the whole matrix: the capped vertex by column generation
        search, use_vertex = CappedVertexSearch(problem, columns=True), True
    contest = Contest(problem, opts, opts.max_records, search,
                      noise=_block_noise(problem, opts) if sharded else None)
    winner = choose(run(contest, strategies(opts, use_vertex,
                                            whole=search is None or not search.columns)),
                    lambda candidate: loss_score(problem, candidate.ratios))
    if winner.loop is None and (opts.checkpoint is not None or opts.resume is not None):
        warn_user(
            f"the support came from the {winner.info['selection']}: no gate training ran, so "
            "`checkpoint`/`resume` were not used (pass selection='gates' to train the gates)")
    return _result(problem, opts, winner, start)


def _check(problem: CalibrationProblem, opts: L0Options) -> None:
    """The budget fits the records; sharded records refuse what needs one process."""
    n, k = problem.n_total, opts.max_records
    if k is not None and k > n:
        raise fail("max_records", f"an int in [1, {n}] (at most the number of records)", k)
    if not problem.shards.sharded:
        return
    if opts.device.type != "cpu":
        raise fail("device", "'cpu' for a sharded calibration (gloo; GPUs are not supported yet)",
                   str(opts.device))
    if problem.loss == "max":
        raise fail("loss", "'relative', 'absolute' or 'capped' for a sharded calibration (the "
                   "'max' loss refits by a linear program in one process)", "max")


def _block_noise(problem: CalibrationProblem, opts: L0Options) -> BlockNoise:
    """Gate noise by global record index, from a seed every rank shares."""
    shards = problem.shards
    seed = opts.seed if opts.seed is not None else shards.comm.broadcast(secrets.randbits(63))
    return BlockNoise(seed, shards.offset, shards.n_local)


def _result(problem: CalibrationProblem, opts: L0Options, winner: Candidate,
            start: float) -> CalibrationResult | None:
    """The winner's weights of every record, gathered (on every rank, or on rank 0 only with
    ``result_on="root"``: the other ranks get None), with the estimates summed over the ranks."""
    comm = problem.shards.comm
    weights = winner.ratios * problem.design
    estimates = problem.estimate(weights)
    info = winner.info
    if problem.shards.sharded:
        info = {**info, "communication": {"reductions": comm.calls, "floats_reduced": comm.floats}}
    root_only = opts.result_on == "root"
    all_weights = comm.gather(weights, root_only=root_only)
    all_design = comm.gather(problem.design, root_only=root_only)
    if all_weights is None:
        return None
    import pandas as pd

    engine, loop = winner.engine, winner.loop
    return CalibrationResult.build(
        problem, all_weights, method="l0",
        converged=True if loop is None else loop.state.converged,
        message=winner.message,
        epochs=0 if engine is None else engine.epoch,
        history=None if loop is None else pd.DataFrame(loop.state.history),
        info=info, seconds=time.perf_counter() - start, estimates=estimates, design=all_design,
    )
