"""The settings of each calibration method, one small frozen type per method, checked on creation.

:func:`~l0.calibration.calibrate` takes the settings of its ``method`` either as keyword arguments
(``calibrate(M, y, method="l0", max_records=800)``) or as one options object
(``calibrate(M, y, options=L0Options(max_records=800))``); a setting that the method does not
have is a ``ValueError`` naming it, so adding a method never grows one long signature (as
``scipy.optimize.minimize(method=, options=)`` does it).

Examples
--------
>>> L0Options(max_records=800).max_records
800
>>> ExactOptions(refit=False)
ExactOptions(refit=False, time_limit=None)
>>> L0Options(lr=0)
Traceback (most recent call last):
...
ValueError: `lr` must be a float > 0.0; got 0.0.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from .._validation import check_choice, check_device, check_int, check_real, fail
from ._backends import BACKENDS
from ._solvers.distances import REFIT_DISTANCES

__all__ = ["L0Options", "ExactOptions", "ClassicalOptions", "options_for", "SELECTIONS",
           "REFIT_DISTANCES"]

SELECTIONS = ("auto", "gates")
RESULT_ON = ("all", "root")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class L0Options:
    """Settings of ``method="l0"``: select the records, then refit their weights.

    Parameters
    ----------
    max_records : int, optional
        Keep at most this many records. With ``selection="auto"`` the support is the capped LP
        vertex with the largest cap that fits the budget (exact whenever any capped vertex fits);
        otherwise the Hard Concrete gates choose it, a multiplicative Lagrange multiplier
        (:class:`l0.nn.schedules.BudgetController`) driving the expected number of open gates to
        ``max_records`` in place of ``lambda_l0``.
    target_error : float, optional
        Keep as few records as possible with every target within this relative error (a
        tolerance band on every target for the selection; the published weights are refit to
        the totals themselves where the support allows).
    selection : {"auto", "gates"}, default "auto"
        How the support is chosen under a budget (or ``target_error``): ``"auto"`` the capped
        LP vertex (HiGHS) when one fits in ``max_records`` and the matrix has at most 5 M
        non-zeros, the L0 gates otherwise; ``"gates"`` the gates first, the vertex only when
        the gates' support cannot meet every target.
    lambda_l0 : float, default 0.01
        L0 strength per *fraction* of records kept (ignored with ``max_records``).
    closeness : float, default 0
        Strength of :math:`\\sum d(w/d - 1)^2/\\sum d` during the gate training and a loss refit.
    lr, max_epochs, eval_every, rtol, patience, temperature, init_keep_prob
        Adam step, stopping rule (the windowed objective improving by less than ``rtol`` over
        ``patience`` checks of ``eval_every`` epochs, or ``max_epochs``), Hard Concrete
        temperature and initial probability that a gate is open.
    refit : bool, default True
        Publish weights refit on the selected support: the minimum-distance (``refit_distance``)
        weights that meet every target within ``bounds`` when the support allows it, else the
        least-loss weights within ``bounds`` (records priced in while the budget has room). With
        ``False`` the weights are the gates' test-time weights, clipped into ``bounds``.
    refit_distance : {"linear", "raking"}, default "linear"
        Distance of the refit from equal ratios ``w/d`` on the support (linear maximises the
        effective sample size).
    refit_iter : int, default 3000
        Iteration cap of each pass of the least-loss refit.
    seed : int or None, default 0
        Seed of the gate noise (a local generator; the global RNG is never used or changed).
    device : str or torch.device, default "cpu"
    backend : {"auto", "scipy", "torch"}, default "auto"
    progress : bool or None, default None
        ``None``: a tqdm bar (for fits longer than two seconds) when stderr is a terminal, else
        a few plain lines on the ``"l0"`` logger (INFO); ``True`` always the bar; ``False``
        nothing.
    checkpoint, checkpoint_every, resume
        Save the gate training every ``checkpoint_every`` epochs and at its end (the folder is
        checked before training); resume from a checkpoint of the same problem and settings, bit
        for bit. Checkpoints hold tensors and plain containers only and are read with
        ``weights_only=True``. A support taken from the LP vertex trains no gates (a warning
        says so). With :class:`~l0.calibration.shards.ColumnShards`, one file per rank
        (``<checkpoint>.rank<r>-of-<world>``).
    result_on : {"all", "root"}, default "all"
        With :class:`~l0.calibration.shards.ColumnShards`: assemble the result (every record's
        weight) on every rank, or on rank 0 only (the other ranks return None).
    """

    max_records: int | None = None
    target_error: float | None = None
    selection: str = "auto"
    lambda_l0: float = 0.01
    closeness: float = 0.0
    lr: float = 0.05
    max_epochs: int = 2000
    eval_every: int = 10
    rtol: float = 1e-3
    patience: int = 20
    temperature: float = 2 / 3
    init_keep_prob: float = 0.9
    refit: bool = True
    refit_distance: str = "linear"
    refit_iter: int = 3000
    seed: int | None = 0
    device: Any = "cpu"
    backend: str = "auto"
    progress: bool | None = None
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int | None = None
    resume: str | os.PathLike | None = None
    result_on: str = "all"

    def __post_init__(self) -> None:
        check_choice("result_on", self.result_on, RESULT_ON)
        if self.max_records is not None:
            _set(self, "max_records", check_int("max_records", self.max_records, low=1))
        if self.target_error is not None:
            _set(self, "target_error", check_real("target_error", self.target_error, low=0.0))
        check_choice("selection", self.selection, SELECTIONS)
        _set(self, "lambda_l0", check_real("lambda_l0", self.lambda_l0, low=0.0))
        _set(self, "closeness", check_real("closeness", self.closeness, low=0.0))
        _set(self, "lr", check_real("lr", self.lr, low=0.0, low_open=True))
        _set(self, "max_epochs", check_int("max_epochs", self.max_epochs, low=0))
        _set(self, "eval_every", check_int("eval_every", self.eval_every, low=1))
        _set(self, "rtol", check_real("rtol", self.rtol, low=0.0))
        _set(self, "patience", check_int("patience", self.patience, low=1))
        _set(self, "temperature", check_real("temperature", self.temperature, low=0.0,
                                             low_open=True))
        _set(self, "init_keep_prob", check_real("init_keep_prob", self.init_keep_prob, low=0.0,
                                                high=1.0, low_open=True))
        _set(self, "refit", _check_bool("refit", self.refit))
        check_choice("refit_distance", self.refit_distance, REFIT_DISTANCES)
        _set(self, "refit_iter", check_int("refit_iter", self.refit_iter, low=1))
        if self.seed is not None:
            _set(self, "seed", check_int("seed", self.seed, low=0))
        _set(self, "device", check_device("device", self.device))
        check_choice("backend", self.backend, BACKENDS)
        if self.progress is not None:
            _set(self, "progress", _check_bool("progress", self.progress))
        if self.checkpoint_every is not None:
            _set(self, "checkpoint_every", check_int("checkpoint_every", self.checkpoint_every,
                                                     low=1))


@dataclass(frozen=True)
class ExactOptions:
    """Settings of ``method="exact"``: a vertex of ``{w : M w = y, w/d within bounds}`` (HiGHS).

    Parameters
    ----------
    refit : bool, default True
        Refit the vertex's records by the linear minimum-distance calibration within ``bounds``
        (same records, more even weights, residuals at rounding level).
    time_limit : float, optional
        Seconds HiGHS may spend on each solve.
    """

    refit: bool = True
    time_limit: float | None = None

    def __post_init__(self) -> None:
        _set(self, "refit", _check_bool("refit", self.refit))
        if self.time_limit is not None:
            _set(self, "time_limit", check_real("time_limit", self.time_limit, low=0.0,
                                                low_open=True))


@dataclass(frozen=True)
class ClassicalOptions:
    """Settings of ``method="linear" | "raking" | "logit"`` (Newton on the calibration equations).

    Parameters
    ----------
    max_iter : int, default 100
        Newton steps at most.
    tol : float, default 1e-12
        Largest relative error of the calibration equations at convergence.
    """

    max_iter: int = 100
    tol: float = 1e-12

    def __post_init__(self) -> None:
        _set(self, "max_iter", check_int("max_iter", self.max_iter, low=1))
        _set(self, "tol", check_real("tol", self.tol, low=0.0, low_open=True))


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(name, "True or False", value, TypeError)
    return value


def options_for(method: Any, options: Any, settings: dict[str, Any]) -> Any:
    """The options object of ``method`` (an entry of the method table: its ``name`` and
    ``options_type``) from an options object and/or keyword settings."""
    kind = method.options_type
    names = [f.name for f in dataclasses.fields(kind)]
    for name in settings:
        if name not in names:
            raise ValueError(
                f"`{name}` is not a setting of method={method.name!r}; its settings are "
                f"{', '.join(names)}."
            )
    if options is None:
        return kind(**settings)
    if not isinstance(options, kind):
        raise fail("options", f"a {kind.__name__} for method={method.name!r}", options,
                   TypeError)
    return dataclasses.replace(options, **settings) if settings else options
