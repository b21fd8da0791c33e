"""The solvers behind :func:`~l0.calibration.calibrate`, one module per method.

``l0`` (select, then refit), ``exact`` (HiGHS vertex), ``classical`` (linear, raking, logit);
``refit`` and ``capped_vertex`` are shared by ``l0`` and ``exact``; ``_newton`` is the
minimum-distance Newton solver the refit and the classical methods share.
"""

from .classical import solve_classical
from .exact import solve_exact
from .l0 import solve_l0

__all__ = ["solve_classical", "solve_exact", "solve_l0"]
