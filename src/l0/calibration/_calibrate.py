"""``calibrate()``: the front of the calibration engine."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import functional as F
from .._random import local_generator
from .._validation import check_choice, check_int, check_real, fail
from ..schedules import BudgetController
from ._backends import make_backend
from ._gradient import EngineSettings, GradientEngine
from ._polish import refit_with_repair
from ._problem import CalibrationProblem, build_problem
from ._training import StoppingRule, TrainingLoop
from .result import CalibrationResult

__all__ = ["calibrate", "METHODS"]

METHODS = ("l0",)
_PLANNED = ("exact", "linear", "raking", "logit")


def _fingerprint(problem: CalibrationProblem, *extra: Any) -> str:
    digest = hashlib.sha256()
    for array in (problem.M.indptr, problem.M.indices, problem.M.data, problem.y, problem.design,
                  problem.coef, problem.tolerance):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr((problem.bounds, problem.loss, problem.cap, extra)).encode())
    return digest.hexdigest()[:16]


def _starting_ratio(problem: CalibrationProblem) -> float:
    """The one ratio ``c`` that best scales the design weights to the totals, within the bounds.

    ``argmin_c sum_i coef_i ((c (M d)_i - y_i) / s_i)^2`` in closed form. Starting all weights at
    ``c d`` instead of ``d`` matters when the design weights are far off (say ``d = 1`` for totals
    of millions): the gates would otherwise close, pushed by the L0 penalty, long before Adam's
    bounded steps had grown the weights to scale.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        estimates = problem.M @ problem.design
        a = problem.coef * estimates / problem.scale**2
        denominator = float(a @ estimates)
        ratio = float(a @ problem.y) / denominator if denominator > 0 else 1.0
    if not np.isfinite(ratio) or ratio <= 0:
        ratio = 1.0
    low, high = problem.bounds
    return float(np.clip(ratio, max(low, 1e-300), high))


def _select_support(engine: GradientEngine, max_records: int | None) -> np.ndarray:
    gates = engine.deterministic_gates().cpu().numpy()
    support = np.flatnonzero(gates > 0)
    if max_records is not None and len(support) > max_records:
        logits = engine.log_alpha.detach().cpu().numpy()[support]
        keep = np.argsort(-logits, kind="stable")[:max_records]
        support = np.sort(support[keep])
    return support


def calibrate(
    M: Any,
    y: Any,
    *,
    method: str = "l0",
    init_weights: Any = None,
    max_records: int | None = None,
    bounds: tuple[float, float] | None = None,
    tolerance: float | Sequence[float] = 0.0,
    loss: str = "relative",
    target_groups: Any = None,
    normalize_groups: bool = True,
    group_multipliers: Mapping[Any, float] | None = None,
    target_weights: Any = None,
    lambda_l0: float = 0.01,
    closeness: float = 0.0,
    lr: float = 0.05,
    max_epochs: int = 2000,
    eval_every: int = 10,
    rtol: float = 1e-3,
    patience: int = 20,
    temperature: float = 2 / 3,
    init_keep_prob: float = 0.9,
    relative_floor: float = 1.0,
    cap: float = 1.0,
    refit: bool = True,
    refit_iter: int = 3000,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    backend: str = "auto",
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: str | os.PathLike | None = None,
    target_names: Sequence[str] | None = None,
) -> CalibrationResult:
    """Find sparse non-negative weights ``w`` with ``M @ w`` close to ``y``.

    ``method="l0"`` trains Hard Concrete gates on the records (which to keep) together with the
    log-ratios ``log(w/d)`` (how much each kept record weighs) by Adam with analytic gradients,
    stops when the objective no longer improves, then refits the kept records' weights exactly on
    the same loss (``refit=True``), so the published weights fit the targets.

    Parameters
    ----------
    M : scipy sparse matrix, ndarray, DataFrame or torch tensor, shape (n_targets, n_records)
        What each record contributes to each target.
    y : array-like, shape (n_targets,)
        Target totals.
    method : {"l0"}, default "l0"
        ``"exact"``, ``"linear"``, ``"raking"`` and ``"logit"`` are planned.
    init_weights : float or array-like, shape (n_records,), optional
        Design weights ``d > 0`` (default 1): the weights start at ``d``; ``bounds`` and
        ``closeness`` are on ``w/d``.
    max_records : int, optional
        Keep at most this many records. A multiplicative Lagrange multiplier
        (:class:`l0.schedules.BudgetController`) replaces ``lambda_l0`` and drives the expected
        number of open gates to ``max_records``; the kept set is then cut to the most probable
        ``max_records`` records.
    bounds : (float, float), optional
        Hard bounds ``low <= w/d <= high`` for the kept records (``high`` may be ``inf``).
    tolerance : float or array-like, default 0
        Zero-loss band of each target, in the loss's units (a relative error for the relative
        losses): a target within ``tolerance`` costs nothing.
    loss : {"relative", "absolute", "capped"}, default "relative"
        ``"relative"``: squared ``(ŷ - y)/max(|y|, relative_floor)``; ``"absolute"``: squared
        ``ŷ - y``; ``"capped"``: the relative error, Huber-capped at ``cap``, so that an
        impossible target pulls with a bounded force.
    target_groups : array-like of int, optional
        Group id of each target; with ``normalize_groups`` each group weighs the same in the loss.
    normalize_groups : bool, default True
    group_multipliers : dict {group id: float}, optional
        Extra weight of each group's targets (requires ``target_groups``).
    target_weights : array-like, optional
        Weight of each target in the loss (default 1).
    lambda_l0 : float, default 0.01
        L0 strength per *fraction* of records kept (the loss is a weighted mean of squared
        errors). Ignored when ``max_records`` is given.
    closeness : float, default 0
        Strength of the penalty :math:`\\sum d(w/d - 1)^2/\\sum d` that keeps kept weights near
        their design weights.
    lr : float, default 0.05
        Adam step size.
    max_epochs, eval_every, rtol, patience : int, int, float, int
        Stop after ``max_epochs`` epochs, or when the training objective (averaged over windows
        of ``eval_every`` epochs) improved by less than ``rtol`` (relative) over ``patience``
        windows, or when every target is within ``tolerance`` (if positive).
    temperature : float, default 2/3
        Hard Concrete temperature :math:`\\beta`.
    init_keep_prob : float, default 0.9
        Initial probability that each gate is open.
    relative_floor : float, default 1
        Smallest divisor of a relative error (a target of 0 is fit in absolute terms).
    cap : float, default 1
        Where the ``"capped"`` loss turns linear.
    refit : bool, default True
        Refit the kept records' weights (L-BFGS-B within ``bounds``) after the gate training.
        With ``False`` the weights are the test-time weights ``d e^θ z`` of the gates.
    refit_iter : int, default 3000
        Iteration cap of each of the refit's two passes.
    seed : int or None, default 0
        Seed of the gate noise (a local generator: the global RNG is never used or changed);
        the same seed gives bit-identical weights on CPU.
    device : str or torch.device, default "cpu"
    backend : {"auto", "scipy", "torch"}, default "auto"
        Matrix products: scipy on CPU, torch CSR elsewhere; ``"torch"`` forces torch on CPU.
    progress : bool, default True
        Show a tqdm progress bar (it appears only when the fit lasts more than 2 seconds).
    checkpoint : path, optional
        File to save the training state to, every ``checkpoint_every`` epochs and at the end.
    checkpoint_every : int, optional
    resume : path, optional
        Checkpoint to resume from (same problem and settings); the result is bit-identical to
        an uninterrupted run.
    target_names : sequence of str, optional
        Labels of the targets for :meth:`CalibrationResult.per_target`.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    TypeError, ValueError
        On bad input, naming the argument (see :func:`build_problem`).
    l0.calibration.DivergenceError
        If the loss stops being finite (the parameters of the last finite epoch are kept).

    Warns
    -----
    UserWarning
        For targets that cannot be reached or conflict with each other.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> M = sp.csr_array(np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]]))
    >>> result = calibrate(M, [4.0, 10.0], progress=False)
    >>> bool(result.max_error < 1e-6)
    True
    """
    if method in _PLANNED:
        raise NotImplementedError(f"method={method!r} is planned but not available yet; use 'l0'.")
    check_choice("method", method, METHODS)
    problem = build_problem(
        M, y, init_weights=init_weights, loss=loss, target_groups=target_groups,
        normalize_groups=normalize_groups, group_multipliers=group_multipliers,
        target_weights=target_weights, tolerance=tolerance, bounds=bounds, cap=cap,
        relative_floor=relative_floor,
    )
    n = problem.n_records
    if max_records is not None:
        max_records = check_int("max_records", max_records, low=1, high=n)
    if target_names is not None:
        target_names = [str(name) for name in target_names]
        if len(target_names) != problem.n_targets:
            raise fail("target_names", f"{problem.n_targets} names (one per target)",
                       f"{len(target_names)} names")
    settings = EngineSettings(
        lr=check_real("lr", lr, low=0.0, low_open=True),
        l0_weight=check_real("lambda_l0", lambda_l0, low=0.0) / n,
        closeness=check_real("closeness", closeness, low=0.0),
        temperature=check_real("temperature", temperature, low=0.0, low_open=True),
    )
    rule = StoppingRule(
        max_epochs=check_int("max_epochs", max_epochs, low=0),
        eval_every=check_int("eval_every", eval_every, low=1),
        rtol=check_real("rtol", rtol, low=0.0),
        patience=check_int("patience", patience, low=1),
    )
    keep = check_real("init_keep_prob", init_keep_prob, low=0.0, high=1.0, low_open=True)
    refit_iter = check_int("refit_iter", refit_iter, low=1)
    if checkpoint_every is not None:
        checkpoint_every = check_int("checkpoint_every", checkpoint_every, low=1)
    device = torch.device(device)
    generator = local_generator(seed, device=device)
    theta = torch.full((n,), np.log(_starting_ratio(problem)), dtype=torch.float64, device=device)
    logit = float(F.log_alpha_for_prob_nonzero(keep, settings.temperature))
    log_alpha = torch.full((n,), logit, dtype=torch.float64, device=device)
    engine = GradientEngine(
        problem, make_backend(problem.M, device, backend), theta.requires_grad_(),
        log_alpha.requires_grad_(), generator, settings,
    )
    controller = None
    if max_records is not None:
        # the budget falls from all records to max_records over the first ramp epochs
        controller = BudgetController(max_records, initial=lambda_l0 or 1e-3, start=n,
                                      ramp=rule.ramp_epochs)
    loop = TrainingLoop(
        engine, rule, controller=controller, n_scale=n,
        # hashing M is O(nnz): only runs that save or resume pay for it
        fingerprint=None if checkpoint is None and resume is None else _fingerprint(
            problem, settings, rule.eval_every, rule.ramp_epochs, seed, max_records, keep),
    )
    if resume is not None:
        loop.load(resume)
    loop.run(progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    if checkpoint is not None:
        loop.save(checkpoint)
    return _publish(problem, engine, loop, max_records, refit, refit_iter, target_names, method)


def _publish(
    problem: CalibrationProblem,
    engine: GradientEngine,
    loop: TrainingLoop,
    max_records: int | None,
    refit: bool,
    refit_iter: int,
    target_names: list[str] | None,
    method: str,
) -> CalibrationResult:
    import pandas as pd

    support = _select_support(engine, max_records)
    if len(support) == 0:
        warnings.warn(
            "every gate closed: no record is kept and every estimate is 0. `lambda_l0` "
            f"({engine.settings.l0_weight * problem.n_records:g}) is too strong for this problem; "
            "lower it or ask for a number of records with `max_records`.",
            UserWarning,
            stacklevel=3,
        )
    ratios = (engine.open_weights() * engine.deterministic_gates()).cpu().numpy() / problem.design
    info: dict[str, Any] = {"support_before_refit": len(support)}
    if refit:
        budget = max_records if max_records is not None else len(support)
        ratios, report, rounds = refit_with_repair(
            problem, engine.backend, support, ratios[support], budget,
            closeness=engine.settings.closeness, max_iter=refit_iter,
        )
        info["refit"] = report
        info["repair_rounds"] = rounds
    else:
        mask = np.zeros(problem.n_records, dtype=bool)
        mask[support] = True
        ratios = np.where(mask, ratios, 0.0)
    weights = ratios * problem.design
    estimates = problem.M @ weights
    return CalibrationResult(
        weights=weights,
        targets=np.array(problem.y),
        estimates=estimates,
        relative_errors=problem.relative_errors(estimates),
        design_weights=np.array(problem.design),
        tolerance=np.array(problem.tolerance),
        method=method,
        converged=loop.state.converged,
        message=loop.state.reason,
        epochs=engine.epoch,
        history=pd.DataFrame(loop.state.history),
        target_names=target_names,
        info=info,
    )
