r"""The Hard Concrete gates as a selection: their starting point, their training, their support.

The gates start from a ratio per record (its targets' ratios of total to design estimate), not
one common ratio: totals from 1 to 1e12 are all within reach from the first epoch. They train
on the L0 engine (:mod:`._engine`, :mod:`._loop`), a record budget held by a multiplicative
Lagrange multiplier; their support is the open gates cut to the budget, refit by :mod:`.refit`.
The same code runs on any number of ranks: every count and estimate is summed over them.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import torch

from ... import functional as F
from ..._random import local_generator
from ...nn.schedules import BudgetController
from .._backends import make_backend
from .._problem import CalibrationProblem
from .._warn import warn_user
from ..options import L0Options
from ._engine import EngineSettings, GradientEngine
from ._loop import StoppingRule, TrainingLoop, check_checkpoint_path
from .refit import refit_on_support, refit_with_repair

__all__ = ["starting_log_ratios", "train_gates", "gate_support", "gates_candidate",
           "meets_every_target"]


def starting_log_ratios(problem: CalibrationProblem) -> np.ndarray:
    """``log(w/d)`` to start each record from: the weighted mean of the log-ratios
    ``log(y_i / (M d)_i)`` of the targets it contributes to (weights: the target's loss weight
    times the record's squared contribution in relative units), then one common factor fit in
    closed form, clipped into the bounds. Records of no positive target start from the common
    factor. Every product is formed in relative units, so totals up to 1e300 start in reach."""
    d, y = problem.design, problem.y
    scale = problem.row_scale()  # rows in relative units: no square overflows, even at 1e300
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        estimate = problem.estimate(d)
        usable = (estimate > 0) & (y > 0)
        log_ratio = np.where(usable, np.log(np.where(usable, y / estimate, 1.0)), 0.0)
        # entry weights c_i (A_ij)^2 in log space, scaled per record by its largest: the mean
        # over a record's targets is unchanged and (1e-300)^2 no longer underflows to 0. Two
        # passes over blocks of rows, so the temporaries stay a few MB at any size.
        n = problem.n_records
        top = np.full(n, -np.inf)
        for _rows, cols, log_w in _entry_log_weights(problem.M, scale, usable, problem.coef):
            np.maximum.at(top, cols, log_w)
        weight, total = np.zeros(n), np.zeros(n)
        for rows, cols, log_w in _entry_log_weights(problem.M, scale, usable, problem.coef):
            w = np.exp(log_w - top[cols])
            weight += np.bincount(cols, w, minlength=n)
            total += np.bincount(cols, w * log_ratio[rows], minlength=n)
        theta = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), 0.0)
        theta = np.nan_to_num(theta, nan=0.0, posinf=0.0, neginf=0.0)
        factor = problem.common_factor(
            problem.estimate(d * np.exp(np.clip(theta, -700.0, 700.0))) / scale)
    if not factor > 0:  # nan or not positive
        factor = 1.0
    theta = theta + np.log(factor)
    low, high = problem.bounds
    return np.clip(theta, np.log(max(low, 1e-300)), np.log(high) if np.isfinite(high) else 700.0)


def _entry_log_weights(M: Any, scale: np.ndarray, usable: np.ndarray, coef: np.ndarray,
                       block: int = 1 << 20) -> Any:
    """(rows, columns, log(c_i A_ij^2)) of the positive entries of usable targets, with
    ``A_ij = M_ij / scale_i`` formed in log space, a block of about ``block`` stored entries at a
    time (no scaled copy of ``M``)."""
    indptr = M.indptr
    log_coef = np.log(np.where(coef > 0, coef, 1.0)) - 2.0 * np.log(scale)
    start = 0
    while start < M.shape[0]:
        stop = max(start + 1, int(np.searchsorted(indptr, indptr[start] + block, "right")) - 1)
        stop = min(stop, M.shape[0])
        lo, hi = indptr[start], indptr[stop]
        rows = np.repeat(np.arange(start, stop), np.diff(indptr[start: stop + 1]))
        data, cols = M.data[lo:hi], M.indices[lo:hi]
        keep = (data > 0) & usable[rows] & (coef[rows] > 0)
        rows, cols = rows[keep], cols[keep]
        yield rows, cols, log_coef[rows] + 2.0 * np.log(data[keep])
        start = stop


def _fingerprint(problem: CalibrationProblem, *extra: Any) -> str:
    digest = hashlib.sha256()
    for array in (problem.M.indptr, problem.M.indices, problem.M.data, problem.y, problem.design,
                  problem.coef, problem.tolerance):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr((problem.bounds, problem.loss, problem.cap, extra)).encode())
    return digest.hexdigest()[:16]


def train_gates(problem: CalibrationProblem, opts: L0Options, k: int | None, *,
                noise: Any = None) -> tuple[GradientEngine, TrainingLoop]:
    """Train the gates (``noise``: a per-epoch noise source replacing the seeded generator, for
    sharded records); checkpoints of sharded records are one file per rank (``.rank<r>-of-<w>``,
    also in a world of one), of a whole matrix the path itself."""
    n = problem.n_total
    settings = EngineSettings(lr=opts.lr, l0_weight=opts.lambda_l0 / n, closeness=opts.closeness,
                              temperature=opts.temperature)
    rule = StoppingRule(max_epochs=opts.max_epochs, eval_every=opts.eval_every, rtol=opts.rtol,
                        patience=opts.patience)
    device = opts.device
    generator = None if noise is not None else local_generator(opts.seed, device=device)
    theta = torch.tensor(starting_log_ratios(problem), dtype=torch.float64, device=device)
    logit = float(F.log_alpha_for_prob_nonzero(opts.init_keep_prob, settings.temperature))
    log_alpha = torch.full((problem.n_records,), logit, dtype=torch.float64, device=device)
    engine = GradientEngine(problem, make_backend(problem.M, device, opts.backend),
                            theta.requires_grad_(), log_alpha.requires_grad_(), generator, settings,
                            noise=noise)
    checkpoint, resume, where = opts.checkpoint, opts.resume, ()
    if problem.shards.sharded:  # one file per rank, named by rank and world size
        comm = problem.shards.comm
        suffix = f".rank{comm.rank}-of-{comm.world}"
        checkpoint = None if checkpoint is None else f"{checkpoint}{suffix}"
        resume = None if resume is None else f"{resume}{suffix}"
        where = (comm.rank, comm.world, problem.shards.offset)
    controller = None
    if k is not None:  # the budget falls from all records to k over the first ramp epochs
        controller = BudgetController(k, initial=opts.lambda_l0 or 1e-3, start=n,
                                      ramp=rule.ramp_epochs)
    if checkpoint is not None:
        check_checkpoint_path(checkpoint)
    saving = checkpoint is not None or resume is not None
    loop = TrainingLoop(
        engine, rule, controller=controller, n_scale=n,
        # hashing M is O(nnz): only runs that save or resume pay for it
        fingerprint=_fingerprint(problem, settings, rule.eval_every, rule.ramp_epochs, opts.seed,
                                 k, opts.init_keep_prob, *where) if saving else None,
    )
    if resume is not None:
        loop.load(resume)
    loop.run(progress=opts.progress, checkpoint=checkpoint,
             checkpoint_every=opts.checkpoint_every)
    if checkpoint is not None:
        loop.save(checkpoint)
    return engine, loop


def gate_support(engine: GradientEngine, k: int | None) -> np.ndarray:
    """The open gates' records, cut to the ``k`` largest logits (ties: lower global index
    first): each rank offers its own ``k`` best, every rank picks the same global ``k`` from the
    gathered offers, and keeps its own records among them (sorted local indices)."""
    gates = engine.deterministic_gates().cpu().numpy()
    support = np.flatnonzero(gates > 0)
    shards = engine.problem.shards
    count = int(shards.comm.total(len(support))[0])
    if k is None or count <= k:
        return support
    logits = engine.log_alpha.detach().cpu().numpy()[support]
    return shards.smallest(support, -logits, k)


def meets_every_target(problem: CalibrationProblem, ratios: np.ndarray) -> bool:
    """Whether ``ratios`` (this rank's) meet every target within its band (over every rank)."""
    return bool(problem.met(problem.estimate(ratios * problem.design)).all())


def gates_candidate(problem: CalibrationProblem, opts: L0Options, k: int | None, *,
                    noise: Any = None) -> tuple[np.ndarray, dict, GradientEngine, TrainingLoop]:
    """Train the gates, cut their support to ``k``, refit it (minimum distance, else least
    loss with repair, then minimum distance if that became exact). Every count and estimate is
    summed over the ranks (``noise``: the gate noise source of sharded records)."""
    comm = problem.shards.comm
    calls, floats = comm.calls, comm.floats
    trained = time.perf_counter()
    engine, loop = train_gates(problem, opts, k, noise=noise)
    training = {"seconds": time.perf_counter() - trained, "epochs": engine.epoch}
    if problem.shards.sharded:  # what the gate training sent (the benchmark reports it per epoch)
        training.update(reductions=comm.calls - calls, floats_reduced=comm.floats - floats)
    support = gate_support(engine, k)
    n_support = int(problem.total(np.array([float(len(support))]))[0])
    if n_support == 0:
        warn_user(
            "every gate closed: no record is kept and every estimate is 0. `lambda_l0` "
            f"({opts.lambda_l0:g}) is too strong for this problem; lower it or ask for a number "
            "of records with `max_records`.")
    gate_ratios = (engine.open_weights() * engine.deterministic_gates()).cpu().numpy()
    gate_ratios = gate_ratios / problem.design
    info: dict[str, Any] = {"selection": "gates", "support_before_refit": n_support,
                            "training": training}
    low, high = problem.bounds
    if not opts.refit:
        ratios = np.zeros(problem.n_records)
        ratios[support] = np.clip(gate_ratios[support], low, high)
        return ratios, info, engine, loop
    ratios, _ = refit_on_support(problem, support, opts.refit_distance)
    if ratios is not None:
        info["refit"] = "minimum distance"
        return ratios, info, engine, loop
    budget = k if k is not None else n_support
    ratios, report, rounds = refit_with_repair(
        problem, engine.backend, support, gate_ratios[support], budget,
        closeness=opts.closeness, max_iter=opts.refit_iter,
    )
    info.update(refit="least loss", refit_report=report, repair_rounds=rounds)
    if meets_every_target(problem, ratios):  # the repaired support meets the targets: even out
        even, _ = refit_on_support(problem, np.flatnonzero(ratios), opts.refit_distance)
        if even is not None:
            ratios, info["refit"] = even, "least loss, then minimum distance"
    return ratios, info, engine, loop
