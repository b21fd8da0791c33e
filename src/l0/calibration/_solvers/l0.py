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

The gates start from a ratio per record (its targets' ratios of total to design estimate), not
one common ratio: totals from 1 to 1e12 are all within reach from the first epoch.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ... import functional as F
from ..._random import local_generator
from ..._validation import fail
from ...diagnostics import effective_sample_size as ess
from ...schedules import BudgetController
from .._backends import make_backend
from .._objective import Objective
from .._problem import CalibrationProblem
from ..options import L0Options
from ..result import CalibrationResult
from ._engine import EngineSettings, GradientEngine
from ._loop import StoppingRule, TrainingLoop, check_checkpoint_path
from .capped_vertex import CappedVertexSearch
from .exact import lp_vertex
from .prune import prune_to_budget
from .refit import refit_on_support, refit_with_repair

__all__ = ["solve_l0", "starting_log_ratios", "train_gates", "gate_support", "gates_candidate",
           "with_error_band", "VERTEX_UP_TO_NNZ"]

VERTEX_UP_TO_NNZ = 5_000_000  # selection="auto" uses the LP vertex up to this many non-zeros
_PRUNE_STEPS = (0.2, 0.1, 0.05)  # fractions of the support dropped per step of the descent
_PRUNE_ITER = 300  # L-BFGS-B iterations of each intermediate refit of the descent


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
    a sharded problem); checkpoints of a sharded problem are one file per rank."""
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
    if problem.shards is not None:  # one file per rank, named by rank and world size
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
    """The open gates' records, cut to the ``k`` largest logits (ties: lower index first).

    Sharded: each rank offers its own ``k`` best, every rank picks the same global ``k`` from
    the gathered offers, and keeps its own records among them (local indices)."""
    gates = engine.deterministic_gates().cpu().numpy()
    support = np.flatnonzero(gates > 0)
    shards = engine.problem.shards
    count = len(support) if shards is None else int(shards.comm.total(len(support))[0])
    if k is None or count <= k:
        return support
    logits = engine.log_alpha.detach().cpu().numpy()[support]
    if shards is not None:
        return shards.smallest(support, -logits, k)
    return np.sort(support[np.argsort(-logits, kind="stable")[:k]])


def _exact(problem: CalibrationProblem, ratios: np.ndarray) -> bool:
    return bool(problem.met(problem.estimate(ratios * problem.design)).all())


def _vertex_candidate(problem: CalibrationProblem, k: int | None, opts: L0Options,
                      search: CappedVertexSearch | None) -> tuple[np.ndarray, dict] | None:
    """Refit ratios on the capped vertex that fits ``k`` (or the band's vertex for
    ``target_error``), with the free budget priced in; None when no vertex serves.

    The few largest vertices that fit are each refit and the most even result (highest ESS)
    is kept: neighbouring caps give different supports, and a refit costs milliseconds."""
    if k is None:  # target_error alone: the L1 vertex of the band
        vertex = lp_vertex(problem, elastic=False)
        if vertex.status != "exact":
            return None
        vertices = [vertex]
        info = {"selection": "band vertex", "lp_seconds": vertex.seconds}
    else:
        search = search or CappedVertexSearch(problem)
        vertices = search.fit(k, candidates=1 if not opts.refit else 12)
        if not vertices:
            return None
        info = {"selection": "capped vertex", "lp_solves": len(search.solved),
                "lp_seconds": search.seconds}
    low = problem.bounds[0]
    best = None
    for vertex in vertices:
        support = vertex.support
        ratios = None
        if opts.refit:
            ratios, lam = refit_on_support(problem, support, opts.refit_distance)
            if ratios is not None and k is not None and np.count_nonzero(ratios) < k:
                ratios = _price_in(problem, ratios, lam, k, opts)
        if ratios is None:  # the vertex's own weights: they meet every band
            if low > 0 and (vertex.ratios[support] < low).any():
                continue  # the vertex ran from 0; only a refit lifts its ratios to the bound
            ratios = vertex.ratios.copy()
        quality = ess(ratios * problem.design)
        if best is None or quality > best[0]:
            best = (quality, ratios, vertex)
    if best is None:
        return None
    _, ratios, vertex = best
    info["support_before_refit"] = len(vertex.support)
    if not opts.refit or not np.array_equal(ratios, vertex.ratios):
        info["refit"] = "minimum distance" if opts.refit else "none"
    else:
        info["refit"] = "none (the vertex's own weights meet the bands)"
    if k is not None:
        info["vertex_cap"] = search.cap_of(vertex)
    return ratios, info


def _pruned_candidate(problem: CalibrationProblem, k: int, opts: L0Options,
                      search: CappedVertexSearch | None) -> tuple[np.ndarray, dict] | None:
    """A budget below every exact support: descend from the (capped, or closest) vertex."""
    vertex = (search or CappedVertexSearch(problem)).vertex(problem.bounds[1])
    if vertex.status != "exact":
        vertex = lp_vertex(problem, elastic=True, semicontinuous=False)
        if vertex.status == "failed":
            return None
    backend = make_backend(problem.M)
    best = None
    for step in _PRUNE_STEPS:  # the descent is greedy: its step size moves the result
        ratios = prune_to_budget(problem, backend, vertex, k, closeness=opts.closeness,
                                 max_iter=min(opts.refit_iter, _PRUNE_ITER), step=step)
        ratios, report, rounds = refit_with_repair(
            problem, backend, np.flatnonzero(ratios), ratios[ratios > 0], k,
            closeness=opts.closeness, max_iter=opts.refit_iter)
        score = _score(problem, ratios)
        if best is None or score < best[0]:
            best = (score, ratios, {"selection": "pruned vertex",
                                    "vertex_records": len(vertex.support), "prune_step": step,
                                    "refit": "least loss", "refit_report": report,
                                    "repair_rounds": rounds})
    return best[1], best[2]


def _loss(problem: CalibrationProblem, ratios: np.ndarray) -> float:
    estimates = torch.from_numpy(problem.M @ (ratios * problem.design))
    return Objective(problem).loss(estimates)


def _score(problem: CalibrationProblem, ratios: np.ndarray) -> tuple[float, float]:
    """The loss, then (for ties of the ``"max"`` loss) the relative loss."""
    relative = problem if problem.loss != "max" else replace(problem, loss="relative")
    return _loss(problem, ratios), _loss(relative, ratios)


def _price_in(problem: CalibrationProblem, ratios: np.ndarray, lam: np.ndarray, k: int,
              opts: L0Options) -> np.ndarray:
    """Spend the free budget on the records the refit's multipliers value most (the largest
    ``(Aᵀλ)_j``: the weight they would take in the refit) when that raises the ESS."""
    kept = np.flatnonzero(ratios)
    A, _ = problem.scaled()
    price = A.T @ lam
    price[kept] = -np.inf
    free = k - len(kept)
    order = np.argsort(-price, kind="stable")[:free]
    order = order[np.isfinite(price[order]) & (price[order] > -1.0)]
    if len(order) == 0:
        return ratios
    more, _ = refit_on_support(problem, np.union1d(kept, order), opts.refit_distance)
    if more is None or np.count_nonzero(more) > k:
        return ratios
    better = ess(more * problem.design) > ess(ratios * problem.design)
    return more if better else ratios


def gates_candidate(problem: CalibrationProblem, opts: L0Options, k: int | None, *,
                    noise: Any = None) -> tuple[np.ndarray, dict, GradientEngine, TrainingLoop]:
    """Train the gates, cut their support to ``k``, refit it (minimum distance, else least
    loss with repair, then minimum distance if that became exact). Sharded problems too: every
    count and estimate is summed over the ranks (``noise``: their gate noise source)."""
    comm = None if problem.shards is None else problem.shards.comm
    calls, floats = (comm.calls, comm.floats) if comm is not None else (0, 0)
    trained = time.perf_counter()
    engine, loop = train_gates(problem, opts, k, noise=noise)
    training = {"seconds": time.perf_counter() - trained, "epochs": engine.epoch}
    if comm is not None:  # what the gate training sent (the benchmark reports it per epoch)
        training.update(reductions=comm.calls - calls, floats_reduced=comm.floats - floats)
    support = gate_support(engine, k)
    n_support = int(problem.total(np.array([float(len(support))]))[0])
    if n_support == 0:
        warnings.warn(
            "every gate closed: no record is kept and every estimate is 0. `lambda_l0` "
            f"({opts.lambda_l0:g}) is too strong for this problem; lower it or ask for a number "
            "of records with `max_records`.",
            UserWarning,
            stacklevel=4,
        )
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
    if _exact(problem, ratios):  # the repaired support meets the targets: even its weights out
        even, _ = refit_on_support(problem, np.flatnonzero(ratios), opts.refit_distance)
        if even is not None:
            ratios, info["refit"] = even, "least loss, then minimum distance"
    return ratios, info, engine, loop


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
        ``"auto"``: the capped vertex that fits (at most :data:`VERTEX_UP_TO_NNZ` non-zeros),
        else the better by loss of the pruned vertex and the gates; ``"gates"``: the gates, the
        vertex only when their support misses a target.
    refit, refit_distance, refit_iter
        How the selected support's weights are published (:mod:`.refit`).
    lr, max_epochs, eval_every, rtol, patience, temperature, init_keep_prob, closeness, seed,
    device, backend, progress, checkpoint, checkpoint_every, resume
        The gate training (:func:`train_gates`).

    Returns
    -------
    CalibrationResult
        ``info["selection"]`` names the candidate that won (``"capped vertex"``, ``"band
        vertex"``, ``"pruned vertex"``, ``"gates"``), with its refit report.
    """
    start = time.perf_counter()
    n = problem.n_records
    k = opts.max_records
    if k is not None and k > n:
        raise fail("max_records", f"an int in [1, {n}] (at most the number of records)", k)
    problem = with_error_band(problem, opts.target_error)
    use_vertex = (k is not None or opts.target_error is not None) and (
        search is not None or problem.M.nnz <= VERTEX_UP_TO_NNZ)
    candidate = pruned = None
    if use_vertex and opts.selection == "auto":
        candidate = _vertex_candidate(problem, k, opts, search)
        if candidate is None and k is not None:
            pruned = _pruned_candidate(problem, k, opts, search)
    engine = loop = None
    if candidate is None:
        ratios, info, engine, loop = gates_candidate(problem, opts, k)
        message = loop.state.reason
        if use_vertex and opts.selection == "gates" and not _exact(problem, ratios):
            fallback = _vertex_candidate(problem, k, opts, search)
            if fallback is not None:
                missed = int((~problem.met(problem.M @ (ratios * problem.design))).sum())
                ratios, info = fallback
                info["gates_missed"] = missed
                message = (f"support from the {info['selection']} (the gates' support missed "
                           f"{missed} targets)")
        if pruned is not None:
            gates_score, pruned_score = _score(problem, ratios), _score(problem, pruned[0])
            if pruned_score < gates_score:
                ratios, info = pruned
                message = (f"support from the {info['selection']} (loss {pruned_score[0]:.3g}; "
                           f"the gates' support: {gates_score[0]:.3g})")
            info["losses"] = {"gates": gates_score[0], "pruned vertex": pruned_score[0]}
    else:
        ratios, info = candidate
        message = f"support from the {info['selection']}"
        if opts.checkpoint is not None or opts.resume is not None:
            warnings.warn(
                f"the support came from the {info['selection']}: no gate training ran, so "
                "`checkpoint`/`resume` were not used (pass selection='gates' to train the gates)",
                UserWarning, stacklevel=3)
    weights = ratios * problem.design
    import pandas as pd

    return CalibrationResult.build(
        problem, weights, method="l0",
        converged=True if loop is None else loop.state.converged,
        message=message,
        epochs=0 if engine is None else engine.epoch,
        history=None if loop is None else pd.DataFrame(loop.state.history),
        info=info, seconds=time.perf_counter() - start,
    )
