r"""The selection contest of ``method="l0"``: candidate strategies and the one rule that chooses.

Each strategy proposes a support with its published ratios as a :class:`Candidate`, or None:

* :func:`vertex` — the capped LP vertex that fits the budget (:mod:`.capped_vertex`), or the
  band's L1 vertex for ``target_error``: exact by construction, so it ends the contest;
* :func:`pruned_vertex` — below every exact support: backward elimination from the vertex
  (:mod:`.prune`), the best of a few step sizes by loss;
* :func:`gates` — the Hard Concrete gates (:mod:`.gate_selection`), on any number of ranks;
* :func:`gates_then_vertex` — ``selection="gates"``: the vertex when the gates' support misses
  a target.

:func:`strategies` lists those that apply, :func:`run` tries them in order until a decisive one
has been found, and :func:`choose` picks the winner. A new selection candidate is one strategy
here and its place in :func:`strategies`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ...diagnostics import effective_sample_size as ess
from .._backends import make_backend
from .._objective import Objective
from .._problem import CalibrationProblem
from ..options import L0Options
from ._engine import GradientEngine
from ._loop import TrainingLoop
from .capped_vertex import CappedVertexSearch
from .exact import lp_vertex
from .gate_selection import gates_candidate, meets_every_target
from .prune import prune_to_budget
from .refit import refit_on_support, refit_with_repair

__all__ = ["Candidate", "Contest", "vertex", "pruned_vertex", "gates", "gates_then_vertex",
           "strategies", "run", "choose", "loss_score"]

_PRUNE_STEPS = (0.2, 0.1, 0.05)  # fractions of the support dropped per step of the descent
_PRUNE_ITER = 300  # L-BFGS-B iterations of each intermediate refit of the descent


@dataclass(frozen=True)
class Candidate:
    """A selected support and its published ratios, proposed by one strategy.

    Attributes
    ----------
    ratios : ndarray
        ``w/d`` of this rank's records, 0 off the support.
    info : dict
        The strategy's report (``info["selection"]`` names it): the result's ``info``.
    message : str
        Why this support: the result's ``message``.
    engine, loop : GradientEngine, TrainingLoop or None
        The gate training that ran for it (the result's epochs, history and convergence).
    decisive : bool
        A vertex that fits: exact by construction, it ends the contest and wins.
    """

    ratios: np.ndarray
    info: dict[str, Any]
    message: str
    engine: GradientEngine | None = None
    loop: TrainingLoop | None = None
    decisive: bool = False


@dataclass(frozen=True)
class Contest:
    """What every strategy reads: the (banded) problem, the settings, the budget ``k``, a shared
    vertex search (or None: each vertex strategy starts its own) and the gates' noise source
    (None: the seeded generator)."""

    problem: CalibrationProblem
    opts: L0Options
    k: int | None
    search: CappedVertexSearch | None = None
    noise: Any = None


Strategy = Callable[[Contest, Sequence[Candidate]], "Candidate | None"]


# ------------------------------------------------------------------------------ strategies
def vertex(contest: Contest, so_far: Sequence[Candidate]) -> Candidate | None:
    """The vertex that fits the budget (or the band's vertex), refit; decisive."""
    found = _vertex_candidate(contest.problem, contest.k, contest.opts, contest.search)
    if found is None:
        return None
    ratios, info = found
    return Candidate(ratios, info, f"support from the {info['selection']}", decisive=True)


def pruned_vertex(contest: Contest, so_far: Sequence[Candidate]) -> Candidate | None:
    """Under a budget below every exact support: the vertex pruned down to it."""
    if contest.k is None:
        return None
    found = _pruned_candidate(contest.problem, contest.k, contest.opts, contest.search)
    if found is None:
        return None
    ratios, info = found
    return Candidate(ratios, info, f"support from the {info['selection']}")


def gates(contest: Contest, so_far: Sequence[Candidate]) -> Candidate:
    """The gates' support, refit (sharded records: labelled with the number of ranks)."""
    problem = contest.problem
    ratios, info, engine, loop = gates_candidate(problem, contest.opts, contest.k,
                                                 noise=contest.noise)
    message = loop.state.reason
    if problem.shards.sharded:
        world = problem.shards.comm.world
        info.update(selection="gates (sharded)", ranks=world)
        message = f"{message}; support from the gates on {world} rank(s)"
    return Candidate(ratios, info, message, engine, loop)


def gates_then_vertex(contest: Contest, so_far: Sequence[Candidate]) -> Candidate | None:
    """After the gates (``selection="gates"``): the vertex, when their support misses a target;
    decisive, and it reports the gate training that ran."""
    problem, trained = contest.problem, so_far[-1]
    if meets_every_target(problem, trained.ratios):
        return None
    found = _vertex_candidate(problem, contest.k, contest.opts, contest.search)
    if found is None:
        return None
    missed = int((~problem.met(problem.M @ (trained.ratios * problem.design))).sum())
    ratios, info = found
    info["gates_missed"] = missed
    return Candidate(ratios, info, f"support from the {info['selection']} (the gates' support "
                     f"missed {missed} targets)", trained.engine, trained.loop, decisive=True)


def strategies(opts: L0Options, use_vertex: bool, whole: bool = True) -> list[Strategy]:
    """The strategies that apply, in the order they are tried (``whole``: the LPs may hold the
    whole matrix; without it, the vertex comes from column generation and the pruned vertex,
    whose elastic LP needs every record in one model, is not tried)."""
    if not use_vertex:  # no budget (or target_error alone above the limit), or sharded records
        return [gates]
    if opts.selection == "auto":
        return [vertex, pruned_vertex, gates] if whole else [vertex, gates]
    return [gates, gates_then_vertex]


def run(contest: Contest, tried: Sequence[Strategy]) -> list[Candidate]:
    """The candidates of the strategies, in order, until a decisive one is found."""
    found: list[Candidate] = []
    for strategy in tried:
        if any(c.decisive for c in found):
            break
        candidate = strategy(contest, found)
        if candidate is not None:
            found.append(candidate)
    return found


# ------------------------------------------------------------------------------ the rule
def choose(candidates: Sequence[Candidate],
           score: Callable[[Candidate], tuple[float, float]]) -> Candidate:
    """The contest's one rule. A decisive candidate wins. Otherwise the gates' candidate (the
    one whose training ran) wins unless a rival has a strictly lower ``score``; then the rival
    of lowest score (the first among equals) wins, carrying the gate training and a message
    comparing the two, and the winner's ``info["losses"]`` holds every candidate's loss."""
    for candidate in candidates:
        if candidate.decisive:
            return candidate
    trained = next(c for c in candidates if c.loop is not None)
    rivals = [c for c in candidates if c is not trained]
    if not rivals:
        return trained
    scores = [score(c) for c in rivals]
    trained_score = score(trained)
    losses = {"gates": trained_score[0]}
    losses.update({c.info["selection"]: s[0] for c, s in zip(rivals, scores, strict=True)})
    best = min(range(len(rivals)), key=lambda i: scores[i])
    if scores[best] < trained_score:
        rival = rivals[best]
        return replace(rival, info={**rival.info, "losses": losses}, engine=trained.engine,
                       loop=trained.loop,
                       message=(f"support from the {rival.info['selection']} (loss "
                                f"{scores[best][0]:.3g}; the gates' support: "
                                f"{trained_score[0]:.3g})"))
    return replace(trained, info={**trained.info, "losses": losses})


def loss_score(problem: CalibrationProblem, ratios: np.ndarray) -> tuple[float, float]:
    """The loss, then (for ties of the ``"max"`` loss) the relative loss."""
    relative = problem if problem.loss != "max" else replace(problem, loss="relative")
    return _loss(problem, ratios), _loss(relative, ratios)


def _loss(problem: CalibrationProblem, ratios: np.ndarray) -> float:
    estimates = torch.from_numpy(problem.M @ (ratios * problem.design))
    return Objective(problem).loss(estimates)


# ------------------------------------------------------------------------------ the vertices
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
        vertices = search.fit(k, candidates=1 if not opts.refit else 12, progress=opts.progress)
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
        found = loss_score(problem, ratios)
        if best is None or found < best[0]:
            best = (found, ratios, {"selection": "pruned vertex",
                                    "vertex_records": len(vertex.support), "prune_step": step,
                                    "refit": "least loss", "refit_report": report,
                                    "repair_rounds": rounds})
    return best[1], best[2]


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
