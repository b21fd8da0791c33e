"""THE method table of :func:`~l0.calibration.calibrate`.

:data:`METHOD_TABLE` maps each ``method=`` name to a :class:`Method`: its settings type (from
:mod:`~l0.calibration.options`), its solver and the checks it makes before a problem is built.
:func:`~l0.calibration.calibrate`, :func:`~l0.calibration.options.options_for`, the ``l0``
command's ``--method`` choices, :class:`~l0.calibration.estimator.SparseCalibrator` and
:func:`~l0.calibration.frontier` all read it; a new method is one entry here (and its module).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..options import ClassicalOptions, ExactOptions, L0Options
from ._checks import needs_whole_matrix, no_checks, solves_equations_exactly
from .classical import solve_classical
from .exact import solve_exact
from .l0 import solve_l0

__all__ = ["Method", "METHOD_TABLE"]


@dataclass(frozen=True)
class Method:
    """One calibration method.

    Attributes
    ----------
    name : str
        The ``method=`` name.
    options_type : type
        Its frozen settings type; keyword settings of :func:`calibrate` are its fields.
    solve : callable
        ``solve(problem, options) -> CalibrationResult`` (or None on the ranks that do not
        assemble a sharded result).
    checks : callable
        ``checks(name, arguments, sharded)``: raises on a problem argument that does not apply
        (``arguments`` by name; ``sharded``: the records come as ColumnShards).
    """

    name: str
    options_type: type
    solve: Callable[..., Any]
    checks: Callable[[str, Mapping[str, Any], bool], None] = no_checks

    def check(self, arguments: Mapping[str, Any], sharded: bool) -> None:
        """Run this method's checks on the problem arguments."""
        self.checks(self.name, arguments, sharded)


def _classical(name: str) -> Method:
    return Method(name, ClassicalOptions, functools.partial(solve_classical, method=name),
                  solves_equations_exactly)


METHOD_TABLE: dict[str, Method] = {
    "l0": Method("l0", L0Options, solve_l0),
    "exact": Method("exact", ExactOptions, solve_exact, needs_whole_matrix),
    "linear": _classical("linear"),
    "raking": _classical("raking"),
    "logit": _classical("logit"),
}
